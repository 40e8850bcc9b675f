"""Unsloth backend: FastLanguageModel loading (4-bit by default) and Unsloth's own generate.

Needs a CUDA GPU and the `[unsloth]` extra. Unsloth's generate always uses its own dynamic
KV cache (it overrides cache_implementation), so the engines differ from the transformers
backend's:
- static: Unsloth's CUDA-graph replay of the decode step (UNSLOTH_DECODE_CUDA_GRAPHS=1),
  which removes most of the per-step launch overhead while its attention runs over the true
  KV length; off by default in Unsloth outside RL training.
- dynamic: Unsloth's plain fast generate, as the notebook ran it (but batched).
- auto: static; falls back to dynamic if the graphed step fails.
`model.chat_template` may name an Unsloth template (`llama-3.1`, `qwen-2.5`, `gemma2`, ...),
applied with unsloth.chat_templates.get_chat_template as the notebook did.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from synthgen.backends import transformers as hf
from synthgen.backends.base import ModelSpec


def check(spec: ModelSpec, runtime: bool = True) -> None:
    """Before anything loads: unsloth installed and a CUDA GPU present (skipped in dry runs)."""
    if spec.dtype not in hf.DTYPES:
        raise ValueError(f"model.dtype: {spec.dtype!r} is not one of {', '.join(hf.DTYPES)}")
    if not runtime:
        return
    if importlib.util.find_spec("unsloth") is None:
        raise ValueError(
            "model.backend: unsloth is not installed (pip install -e '.[unsloth]', CUDA GPU only); "
            "or use model.backend=transformers"
        )
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "model.backend: unsloth needs a CUDA GPU; use model.backend=transformers on CPU"
        )


class Backend(hf.Backend):
    check = staticmethod(check)

    def __init__(self, **kwargs: Any) -> None:
        check(
            ModelSpec.from_kwargs(
                {k: v for k, v in kwargs.items() if k not in ("engine", "prefill_chunk_size")}
            )
        )
        super().__init__(**kwargs)

    def attention(self) -> str:
        return "sdpa"  # Unsloth patches attention itself

    def _load(self) -> tuple[Any, Any]:
        # unsloth must be imported before transformers touches the model classes
        import unsloth  # noqa: F401
        from unsloth import FastLanguageModel

        from synthgen import models

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=models.resolve(self.spec.name_or_path),
            max_seq_length=self.spec.max_seq_length,
            load_in_4bit=self.spec.load_in_4bit,
            dtype=None if self.spec.dtype == "auto" else self.dtype,
        )
        template = self.spec.chat_template
        if template and "{" not in template:  # an Unsloth template name
            from unsloth.chat_templates import get_chat_template

            tokenizer = get_chat_template(tokenizer, chat_template=template)
        elif template:
            tokenizer.chat_template = template
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        FastLanguageModel.for_inference(model)
        self.dtype = model.dtype
        return tokenizer, model

    def _generate_static(self, batch: list[list[int]], params: Any) -> list[Any]:
        os.environ["UNSLOTH_DECODE_CUDA_GRAPHS"] = "1"  # read by Unsloth at each generate call
        return self._generate(batch, params, pad_to=None, rows=len(batch), static=False)

    def _generate(
        self, batch: list[list[int]], params: Any, pad_to: int | None, rows: int, static: bool
    ) -> list[Any]:
        if self.engine == "dynamic":
            os.environ["UNSLOTH_DECODE_CUDA_GRAPHS"] = "0"
        return super()._generate(batch, params, pad_to=pad_to, rows=rows, static=False)

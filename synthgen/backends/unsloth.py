"""Unsloth backend: the notebook's loader, with the engine picked for speed.

Needs a CUDA GPU and the `[unsloth]` extra. Engines (`engine`):
- vllm: Unsloth's fast path, `FastLanguageModel.from_pretrained(..., fast_inference=True)`,
  which starts vLLM inside Unsloth (bf16, or vLLM's bitsandbytes 4-bit); synthgen drives
  the engine Unsloth keeps as `model.vllm_engine` with its own vLLM driver
  (synthgen/backends/vllm_engine.py), or `model.fast_generate` where that is all there is.
  Unsloth builds it with `enable_lora=True` and its own `max_num_seqs` estimate, so it is not
  the same engine as the transformers backend's plain `vllm.LLM`: the benchmark runs both.
- static: synthgen's static engine (fixed shapes, compiled decode, flex_attention) on the
  same checkpoint loaded by transformers (+ bitsandbytes nf4 in 4-bit). Not Unsloth's own
  graphed decode: that pre-allocates its buffers, filled an 80 GB H100 at batch 256 and 128
  and ran at 628-692 tok/s (benchmarks/RESULTS.md), a third of the static engine in 4-bit.
- continuous: synthgen's continuous engine (synthgen/backends/continuous.py) on the same
  weights as static.
- dynamic: Unsloth's own generate (its dynamic KV cache, no CUDA graphs), as the notebook
  ran it but batched.
- auto: vllm where it is installed, else static.
`model.chat_template` may name an Unsloth template (`llama-3.1`, `qwen-2.5`, `gemma2`, ...),
applied with unsloth.chat_templates.get_chat_template as the notebook did.
"""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace
from typing import Any

from synthgen.backends import transformers as hf
from synthgen.backends.base import ModelSpec, eos_ids, use_chat_template
from synthgen.errors import ConfigError


def check(spec: ModelSpec, runtime: bool = True) -> None:
    """Before anything loads: unsloth installed and a CUDA GPU present (skipped in dry runs)."""
    hf.check_values(spec)
    if not runtime:
        return
    if importlib.util.find_spec("unsloth") is None:
        raise ConfigError(
            "model.backend: unsloth is not installed (pip install -e '.[unsloth]', CUDA GPU only); "
            "or use model.backend=transformers"
        )
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "model.backend: unsloth needs a CUDA GPU; use model.backend=transformers on CPU"
        )


class Backend(hf.Backend):
    """The transformers backend's engines on Unsloth's loader, through its loading hooks."""

    check = staticmethod(check)
    name = "unsloth"

    def before_load(self) -> None:
        # unsloth patches transformers when imported: before anything touches a model class
        import unsloth  # noqa: F401

    def attention(self) -> str:
        # the static engine runs on transformers' own model classes; Unsloth's own generate
        # (dynamic) patches attention itself
        return super().attention() if self.engine in ("static", "continuous") else "sdpa"

    def _from_pretrained(self, **extra: Any) -> tuple[Any, Any]:
        """Unsloth's (model, tokenizer), the configured chat template applied."""
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=self.path,  # resolved by synthgen/backends/models.py (hub id or folder)
            max_seq_length=self.spec.max_seq_length,
            load_in_4bit=bool(self.spec.load_in_4bit),
            dtype=None if self.spec.dtype == "auto" else self.dtype,
            **extra,
        )
        return model, use_chat_template(tokenizer, self.spec)

    def load_model(self) -> tuple[Any, Any]:
        if self.engine in ("static", "continuous"):  # transformers' loading, synthgen's engine
            return super().load_model()
        from unsloth import FastLanguageModel

        model, tokenizer = self._from_pretrained()
        FastLanguageModel.for_inference(model)
        os.environ["UNSLOTH_DECODE_CUDA_GRAPHS"] = "0"  # read by Unsloth at each generate call
        self.dtype = model.dtype
        return tokenizer, model

    def load_vllm(self) -> tuple[Any, Any]:
        """Unsloth's fast_inference=True: vLLM started by Unsloth, driven by synthgen."""
        from synthgen.backends import vllm_engine

        note = vllm_engine.spawn_workers()  # Unsloth builds the engine: same rule as make_llm
        if note:
            self.notes.append(note)
        model, tokenizer = self._from_pretrained(
            fast_inference=True,
            gpu_memory_utilization=float(self.options["gpu_memory_utilization"]),
            enable_prefix_caching=bool(self.options["enable_prefix_caching"]),
        )
        self.eos = eos_ids(tokenizer, self.spec, getattr(model, "generation_config", None))
        self.model = model
        llm = getattr(model, "vllm_engine", None)
        feed = self.options["feed"]
        if llm is None or not hasattr(llm, "llm_engine"):
            fast = getattr(model, "fast_generate", None)
            if fast is None:
                raise ConfigError(
                    "engine: Unsloth started no vLLM engine (no model.vllm_engine "
                    "or model.fast_generate); is vllm importable? else use engine=static"
                )
            llm, feed = SimpleNamespace(generate=fast), "waves"  # LLM.generate's signature
            self.notes.append("Unsloth gave model.fast_generate only: fed in waves")
        return tokenizer, vllm_engine.VllmRunner(llm, tokenizer, self.eos, feed)

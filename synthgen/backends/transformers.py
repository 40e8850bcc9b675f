"""Plain transformers backend: AutoModelForCausalLM + batched, left-padded `generate`.

Works on CPU and GPU, with hub ids and local folders alike (from_pretrained takes both).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from synthgen.backends.base import (
    Generated,
    GenParams,
    ModelSpec,
    OutOfMemory,
    eos_ids,
    load_tokenizer,
)

log = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")


def check(spec: ModelSpec) -> None:
    """Cheap checks before any weights load; raises ValueError('key: why')."""
    if spec.dtype not in DTYPES:
        raise ValueError(f"model.dtype: {spec.dtype!r} is not one of {', '.join(DTYPES)}")
    if spec.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError("model.load_in_4bit: needs bitsandbytes (pip install bitsandbytes)")
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                "model.load_in_4bit: 4-bit weights need a CUDA GPU; set model.load_in_4bit=false"
            )


def torch_dtype(name: str, cuda: bool) -> Any:
    import torch

    if name == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, name)


class Backend:
    """Loads tokenizer and weights once; `generate` runs one batch of token-id prompts."""

    check = staticmethod(check)

    def __init__(self, **kwargs: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.spec = ModelSpec.from_kwargs(kwargs)
        check(self.spec)
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.tokenizer = load_tokenizer(self.spec)
        load_kwargs: dict[str, Any] = {"dtype": torch_dtype(self.spec.dtype, self.cuda)}
        if self.spec.load_in_4bit:
            from transformers import BitsAndBytesConfig

            load_kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=load_kwargs["dtype"],
            )
            load_kwargs["device_map"] = {"": 0}
        self.model = AutoModelForCausalLM.from_pretrained(self.spec.name_or_path, **load_kwargs)
        if not self.spec.load_in_4bit:
            self.model.to(self.device)
        self.model.eval()
        self.eos = eos_ids(self.tokenizer, self.spec, self.model.generation_config)
        self.pad = self.tokenizer.pad_token_id
        log.info("loaded %s on %s (%s)", self.spec.name_or_path, self.device, load_kwargs["dtype"])

    def set_seed(self, seed: int) -> None:
        from transformers import set_seed

        set_seed(seed)

    def generate(self, batch: list[list[int]], params: GenParams) -> list[Generated]:
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):  # left padding: the new tokens line up on the right
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        sampling = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    max_new_tokens=params.max_new_tokens,
                    min_new_tokens=params.min_new_tokens or None,
                    eos_token_id=self.eos,
                    pad_token_id=self.pad,
                    **sampling,
                )
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            raise OutOfMemory(str(e)) from e
        return [self._decode(row) for row in out[:, width:].tolist()]

    def _decode(self, new: list[int]) -> Generated:
        """Cut at the first end-of-turn token; the rest is padding after the row finished."""
        end = next((i for i, t in enumerate(new) if t in self.eos), None)
        kept = new if end is None else new[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Generated(text=text, tokens=len(kept) + (end is not None), finished=end is not None)

    def close(self) -> None:
        del self.model
        if self.cuda:
            import torch

            torch.cuda.empty_cache()

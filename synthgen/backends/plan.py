"""What to run on this machine: the generation engine and the weight precision.

Pure decisions over numbers and flags, so CPU tests can check them; `probe()` and
`weight_bytes()` read the machine and the model's config.json. Each decision comes with a
short reason that goes into summary.json.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthgen.checks import need
from synthgen.errors import ConfigError
from synthgen.schema import engine as schema_engine

log = logging.getLogger(__name__)

GiB = 2**30
ENGINES = tuple(schema_engine.ENGINES)  # auto, vllm, continuous, static, dynamic

# load_in_4bit=auto keeps bf16 when the card holds the bf16 weights plus at least as much
# again (and at least MIN_CACHE) for the KV cache and activations. Measured on an 80 GB H100
# with Llama-3.1-8B in bf16 (16 GB of weights), static engine, ~660-token cache
# (../shared/gpu/README.md): batch 128 peaked at 34 GB (18 GB over the weights), batch 256 at
# 53 GB (37 GB over). Less than the weights' size again leaves batches far below 128 rows,
# where 4-bit with a big batch is faster. So an 8B model stays bf16 from ~32 GiB free (A100
# 40 GB, H100, H200) and goes 4-bit on the notebook's 16-24 GB cards.
CACHE_OVER_WEIGHTS = 1.0  # KV cache + activations room, as a multiple of the bf16 weights
MIN_CACHE = 4 * GiB  # ... and never less than this (bytes)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def probe() -> tuple[bool, bool]:
    """(vllm installed, CUDA present). find_spec only: importing vllm takes many seconds."""
    return importlib.util.find_spec("vllm") is not None, cuda_available()


def choose_engine(requested: str, has_vllm: bool, cuda: bool, backend: str) -> tuple[str, str]:
    """(engine, reason); engine=vllm without vLLM or CUDA raises ConfigError('key: why').

    auto: vLLM where it is installed and CUDA is present, else the static engine on CUDA, else
    dynamic. For backend=unsloth `static` means synthgen's static engine on the weights
    loaded by transformers (never Unsloth's pre-allocated graphed decode), `dynamic` Unsloth's
    own generate.
    """
    if requested not in ENGINES:
        raise ConfigError(f"engine: {requested!r} is not one of {', '.join(ENGINES)}")
    if requested == "vllm":
        missing = vllm_missing(has_vllm, cuda)
        if missing:
            raise ConfigError(f"engine: vllm {missing}")
        return "vllm", "engine=vllm"
    if requested != "auto":
        return requested, f"engine={requested}"
    if has_vllm and cuda:
        how = "Unsloth's fast_inference" if backend == "unsloth" else "vllm.LLM"
        return "vllm", f"auto: vLLM is installed and CUDA is present ({how})"
    if cuda:
        return "static", "auto: CUDA without vLLM (pip install -e '.[vllm]' for vLLM)"
    return "dynamic", "auto: no CUDA GPU"


def vllm_missing(has_vllm: bool, cuda: bool) -> str | None:
    """What keeps vLLM from running here, as the end of a sentence, or None."""
    if not has_vllm:
        return "is not installed (pip install -e '.[vllm]'); or use engine=auto"
    if not cuda:
        return "needs a CUDA GPU; use engine=auto (dynamic on a CPU)"
    return None


def check_engine(cfg: DictConfig) -> None:
    """engine=vllm needs vLLM and CUDA (not in dry runs; the group's keys are the schema's
    check). Here beside vllm_missing: config.check calls it."""
    if cfg.engine.name == "vllm" and not cfg.dry_run:
        has_vllm = importlib.util.find_spec("vllm") is not None
        missing = vllm_missing(has_vllm, has_vllm and cuda_available())
        need(missing is None, f"engine: vllm {missing}")


def choose_4bit(
    setting: bool | str,
    bf16_bytes: int | None,
    available: int | None,
    cuda: bool,
    prequantized: bool = False,
) -> tuple[bool, str]:
    """(load in 4-bit, reason) for model.load_in_4bit = true | false | auto.

    bf16_bytes: the weights in 16 bits (bytes); available: the memory the engine may use
    (bytes), i.e. free memory, and for vLLM at most engine.gpu_memory_utilization x total.
    """
    if setting is True or setting is False:
        return setting, f"model.load_in_4bit={str(setting).lower()}"
    if setting != "auto":
        raise ConfigError(f"model.load_in_4bit: must be true, false or auto, got {setting!r}")
    if prequantized:
        return True, "auto: the checkpoint is already quantized (quantization_config)"
    if not cuda:
        return False, "auto: no CUDA GPU (4-bit weights need one)"
    if bf16_bytes is None or available is None:
        return False, "auto: weight size unknown (config.json without the usual keys): bf16"
    room = max(int(CACHE_OVER_WEIGHTS * bf16_bytes), MIN_CACHE)
    need = bf16_bytes + room
    figures = (
        f"{bf16_bytes / GiB:.1f} GiB of bf16 weights + {room / GiB:.1f} GiB for the KV cache, "
        f"{available / GiB:.1f} GiB available"
    )
    if need <= available:
        return False, f"auto: bf16 fits ({figures})"
    return True, f"auto: 4-bit, bf16 does not fit ({figures})"


# --- the size of the weights -------------------------------------------------------------------


def param_count(config: dict[str, Any]) -> int | None:
    """Parameters of a decoder-only transformer from its config.json, or None.

    Embeddings, attention (GQA, explicit head_dim), a gated MLP (or MoE experts of it), norms,
    and an untied output head. Biases are left out (<0.1%).
    """
    c = config.get("text_config") or config
    try:
        vocab, hidden = int(c["vocab_size"]), int(c["hidden_size"])
        layers, heads = int(c["num_hidden_layers"]), int(c["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return None
    inter = c.get("intermediate_size") or 4 * hidden
    kv = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or hidden // heads
    attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2  # q, o; k, v
    experts = c.get("num_local_experts") or c.get("num_experts") or 1
    moe_inter = c.get("moe_intermediate_size") or inter
    mlp = 3 * hidden * (moe_inter if experts > 1 else inter) * experts
    if experts > 1:
        mlp += hidden * experts  # the router
    per_layer = attn + mlp + 2 * hidden
    tied = c.get("tie_word_embeddings", config.get("tie_word_embeddings", True))
    head = 0 if tied else vocab * hidden
    return vocab * hidden + layers * per_layer + hidden + head


def _itemsize(dtype: Any) -> int:
    return 4 if str(dtype).replace("torch.", "") == "float32" else 2


def safetensors_params(folder: Path, stored_dtype: Any) -> int | None:
    """Parameters from a local folder's safetensors index (total_size) or file sizes, or None."""
    index = folder / "model.safetensors.index.json"
    total = None
    if index.is_file():
        try:
            total = int(json.loads(index.read_text())["metadata"]["total_size"])
        except (KeyError, TypeError, ValueError):
            total = None
    if total is None:
        files = sorted(folder.glob("*.safetensors"))
        total = sum(f.stat().st_size for f in files) if files else None
    return None if total is None else total // _itemsize(stored_dtype)


def read_config(name_or_path: str) -> dict[str, Any] | None:
    """config.json of a local folder, or of a hub model through transformers' cache; or None."""
    local = Path(name_or_path).expanduser()
    if (local / "config.json").is_file():
        return json.loads((local / "config.json").read_text())
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name_or_path).to_dict()
    except Exception as e:  # offline, gated: the loader will say so with its own error
        log.warning("config.json of %s not read (%s)", name_or_path, type(e).__name__)
        return None


def weight_info(name_or_path: str, dtype: str) -> tuple[int | None, bool]:
    """(bytes of the weights in `dtype` (auto = 16 bits), already quantized?)."""
    config = read_config(name_or_path)
    if config is None:
        return None, False
    prequantized = bool(config.get("quantization_config"))
    n = param_count(config)
    local = Path(name_or_path).expanduser()
    if n is None and local.is_dir():
        n = safetensors_params(local, config.get("torch_dtype") or config.get("dtype"))
    return (None if n is None else n * _itemsize(dtype)), prequantized

"""The generate task's model: load the backend `model._target_` names (the one place a
component is swapped by config), and the generation settings of each stage."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.backends.base import GenParams, ModelSpec
from synthgen.config import ConfigError, ModelLoadError, SynthgenError
from synthgen.dataset import prompting


def load_model_part(name_or_path: str, load: Any) -> Any:
    """Call `load()`; a missing, gated or unreachable model becomes one clear line.

    Nothing is generated before this, so failing here loses no work.
    """
    try:
        return load()
    except (SynthgenError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:
        while e.__cause__ is not None and type(e).__name__ == "InstantiationException":
            e = e.__cause__  # hydra wraps the constructor's error
        if isinstance(e, SynthgenError):  # already one line naming its key (synthgen/models.py)
            raise e from None
        first = " ".join(str(e).split())[:300]
        if isinstance(e, ValueError) and first.startswith(("model.", "generation.")):
            raise ConfigError(first) from None  # a backend's own check, already "key: why"
        hint = " (offline? run with the hub reachable once, or point to a local folder)"
        hint = hint if isinstance(e, OSError) else ""
        raise ModelLoadError(
            f"model.name_or_path: cannot load {name_or_path!r}{hint}: {type(e).__name__}: {first}"
        ) from None


def prepare_model(cfg: DictConfig) -> None:
    """The backend's `prepare(spec)`, where it has one: find or fetch what the model needs."""
    from hydra.utils import get_class

    prepare = getattr(get_class(cfg.model._target_), "prepare", None)
    if prepare is not None:
        spec = ModelSpec.from_kwargs(OmegaConf.to_container(cfg.model, resolve=True))
        load_model_part(spec.name_or_path, lambda: prepare(spec))


def load_backend(cfg: DictConfig) -> Any:
    """The backend named by model._target_ (hydra instantiate), engine settings passed along."""
    from hydra.utils import instantiate

    return load_model_part(
        cfg.model.name_or_path,
        lambda: instantiate(
            cfg.model,
            engine=cfg.generation.engine,
            prefill_chunk_size=cfg.generation.prefill_chunk_size,
            vllm=vllm_options(cfg),
        ),
    )


def stage_params(cfg: DictConfig, spec: ModelSpec) -> dict[str, GenParams]:
    """Generation settings per stage: `generation.*`, with the model's stop strings and token
    cap for the stage (a base model's: it never stops on its own). A list prompt
    ({num_questions}) wants several questions from one reply, so what is meant to end one
    question (a "?", a short cap) does not apply to it."""
    keys = ("temperature", "top_p", "do_sample", "seed")
    base = {k: cfg.generation[k] for k in keys}
    out = {}
    pair = prompting.reply_mode(cfg.prompt) == "qa_pair"  # a question reply holds its answer
    for stage in ("question", "answer"):
        one = stage == "answer" or not (pair or prompting.asks_for_list(cfg.prompt.question))
        cap = int(cfg.generation.max_new_tokens)
        if one and spec.max_new_tokens.get(stage):
            cap = min(cap, int(spec.max_new_tokens[stage]))
        out[stage] = GenParams(
            **base,
            max_new_tokens=cap,
            min_new_tokens=min(int(cfg.generation.min_new_tokens), cap),
            stop_strings=list(spec.stop_strings.get(stage) or []) if one else [],
        )
    return out


def vllm_options(cfg: DictConfig) -> dict[str, Any]:
    """The generation.* settings only the vllm engine reads."""
    g = cfg.generation
    return {
        "gpu_memory_utilization": float(g.get("gpu_memory_utilization", 0.9)),
        "enable_prefix_caching": bool(g.get("enable_prefix_caching", True)),
        "feed": str(g.get("vllm_feed", "stream")),
        "seed": int(g.seed),
    }


def batch_size(cfg: DictConfig, backend: Any) -> int:
    """generation.batch_size, or what the backend can hold (auto)."""
    if hasattr(backend, "reserve_new"):  # the continuous engine sizes its KV slots with it
        backend.reserve_new = int(cfg.generation.max_new_tokens)
    bs = cfg.generation.batch_size
    if bs == "auto":
        auto = getattr(backend, "auto_batch_size", None)
        longest = cfg.model.max_seq_length - cfg.generation.max_new_tokens
        return auto(cfg.generation.max_new_tokens, min(longest, 1024)) if auto else 8
    return int(bs)

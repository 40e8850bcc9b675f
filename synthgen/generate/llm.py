"""The generate task's model: load the backend `model._target_` names (the one place a
component is swapped by config), and the generation settings of each stage."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.backends.base import BaseBackend, BaseSpec, GenParams
from synthgen.errors import ModelLoadError, SynthgenError
from synthgen.settings import Settings


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
        if isinstance(e, SynthgenError):  # already one line naming its key (a backend's check)
            raise e from None
        first = " ".join(str(e).split())[:300]
        hint = " (offline? run with the hub reachable once, or point to a local folder)"
        hint = hint if isinstance(e, OSError) else ""
        raise ModelLoadError(
            f"model.name_or_path: cannot load {name_or_path!r}{hint}: {type(e).__name__}: {first}"
        ) from None


def prepare_model(cfg: DictConfig) -> None:
    """The backend's `prepare(spec)`: find or fetch what the model needs (BaseBackend's
    default does nothing), before the corpus is read."""
    from hydra.utils import get_class

    backend_cls = get_class(cfg.model._target_)
    spec = backend_cls.Spec.from_kwargs(OmegaConf.to_container(cfg.model, resolve=True))
    load_model_part(spec.name_or_path, lambda: backend_cls.prepare(spec))


def load_backend(cfg: DictConfig, st: Settings) -> BaseBackend:
    """The backend named by model._target_ (hydra instantiate), the engine's settings (the
    `engine` group) passed along."""
    from hydra.utils import instantiate

    from synthgen.schema.engine import backend_kwargs

    g = st.generation
    return load_model_part(
        st.model,
        lambda: instantiate(cfg.model, **backend_kwargs(st.engine, g.seed)),
    )


def stage_params(st: Settings, spec: BaseSpec) -> dict[str, GenParams]:
    """Generation settings per stage: `generation.*`, with the model's stop strings (and the
    prompt's own, prompt.stop_strings) and token cap for the stage (a base model's: it never
    stops on its own). A list prompt
    ({num_questions}) wants several questions from one reply, so what is meant to end one
    question (a "?", a short cap) does not apply to it."""
    g = st.generation
    out = {}
    for stage in ("question", "answer"):
        # a qa_pair question reply holds its answer; a list reply holds several questions
        one = stage == "answer" or not (st.prompt.pair or st.prompt.list_mode)
        cap = g.max_new_tokens
        if one and spec.max_new_tokens.get(stage):
            cap = min(cap, int(spec.max_new_tokens[stage]))
        out[stage] = GenParams(
            temperature=g.temperature,
            top_p=g.top_p,
            do_sample=g.do_sample,
            seed=g.seed,
            max_new_tokens=cap,
            min_new_tokens=min(g.min_new_tokens, cap),
            stop_strings=[
                *(spec.stop_strings.get(stage) or []),
                *st.prompt.stop_strings.get(stage, ()),
            ]
            if one
            else [],
        )
    return out


def batch_size(st: Settings, backend: BaseBackend) -> int:
    """generation.batch_size, or what the backend can hold (auto; BaseBackend's default: 8)."""
    g = st.generation
    backend.reserve_new = g.max_new_tokens  # the continuous engine sizes its KV slots with it
    if g.batch_size == "auto":
        return backend.auto_batch_size(g.max_new_tokens, min(st.max_prompt, 1024))
    return int(g.batch_size)

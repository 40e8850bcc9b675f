"""Old run dirs: a config saved before a key existed, read as if it had been written today.

`upgrade_config` is the one place an old config is brought up to date: a key added after run
dirs were made takes the value in force before it existed (UPGRADES: history, so it must not
follow a later change of the default), and any other key the schema has that the config lacks
takes the schema's default. A group the config lacks entirely (cleaning, dedup) stays absent:
its stage did not exist, and the settings read that as off; a config without `filters` (made
before the quality gates) reads as filters=none by its UPGRADES. A key that moved to another group
(MOVED) is moved first; on the command line its old spelling is refused (`moved_override`).
"""

from __future__ import annotations

from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from synthgen import schema

# keys added after run dirs were made, with the value a run made before them had
UPGRADES: dict[str, Any] = {
    "chunking.bounds": "drop",  # before it, every chunk outside the bounds was dropped
    # before the quality gates (conf/filters/default.yaml, 2026-12-01 08:35) no gate ran
    "filters.name": "none",
    "filters.enabled": False,
    # the gates' keys added after the group: a gate a saved config lacks stays off, a
    # threshold takes its value of then
    "filters.repetition.min_sentence_words": 1,  # before it, every sentence counted (words)
    "filters.repetition.max_unit_repeats": 0,  # 2026-12-01 13:15; 0 = no such check
    "filters.grounding.frame_words": [],  # 2026-12-01 13:15; every content word grounded
    "filters.restated_question.enabled": False,  # 2026-12-01 14:05
    # the gates on a row's signals (2026-12-07 18:34): before them, none of them ran
    "filters.embed_signals": False,
    "filters.round_trip.enabled": False,
    "filters.round_trip.retriever": "bm25",
    "filters.round_trip.k": 1,
    "filters.logprob.enabled": False,
    "filters.logprob.min": -1.5,
    "filters.easiness.enabled": False,
    "filters.easiness.max_similarity": 0.9,
}
# keys that moved, old spelling -> new: the engine and its keys left `generation` for the
# `engine` group (issue 22), each engine keeping only its own keys
MOVED: dict[str, str] = {
    "generation.engine": "engine.name",
    "generation.gpu_memory_utilization": "engine.gpu_memory_utilization",
    "generation.enable_prefix_caching": "engine.enable_prefix_caching",
    "generation.vllm_feed": "engine.feed",
    "generation.prefill_chunk_size": "engine.prefill_chunk_size",
    # the endpoint's request settings left `generation` for its model spec (EndpointSpec)
    "generation.concurrency": "model.concurrency",
    "generation.max_retries": "model.max_retries",
    "generation.request_timeout": "model.request_timeout",
    "generation.retry_backoff": "model.retry_backoff",
}
_ABSENT = object()


def moved_override(override: str) -> str | None:
    """A command-line override that spells a moved key the old way: the one-line error naming
    the new spelling (cli.main refuses it before Hydra composes); else None."""
    dotted, eq, value = override.lstrip("+~").partition("=")
    new = MOVED.get(dotted.strip())
    if new is None:
        return None
    write = f"engine={value}" if new == "engine.name" else f"{new}={value}"
    if new.startswith("model."):
        write += " (model.backend=openai only)"
    return f"{dotted.strip()}: moved; write {write if eq else new}"


def _absent(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT


def upgrade_config(cfg: DictConfig) -> DictConfig:
    """A copy of a saved config with UPGRADES, then the schema's defaults, for keys it lacks."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    _move_engine(out)
    _fill_model(out)
    for key, old in UPGRADES.items():
        if _absent(out, key):
            OmegaConf.update(out, key, old, force_add=True)
    for key, default in schema.defaults().items():
        group = key.split(".", 1)[0]
        if group in schema.GROUPS and OmegaConf.select(out, group) is None:
            continue  # the stage did not exist when the run was made
        if group == "engine":
            continue  # _move_engine: the keys of the engine the run asked for
        if default is not MISSING and default != MISSING and _absent(out, key):
            OmegaConf.update(out, key, default, force_add=True)
    return out


def _move_engine(out: DictConfig) -> None:
    """generation.engine and its keys into the `engine` group (MOVED), keeping only the keys
    of the engine the run asked for; that engine's defaults for the keys it lacks."""
    moved = _pop_moved(out, "engine.")
    e = dict(out.engine) if not _absent(out, "engine") else {}
    e = {**moved, **e}
    if "name" not in e:  # before generation.engine: the default engine
        e["name"] = schema.engine.DEFAULT
    name = e["name"]
    cls = schema.engine.ENGINES.get(name)
    if cls is None:  # not an engine: left for the config check to name
        return
    own = schema.as_dict(cls)
    OmegaConf.update(
        out, "engine", {k: e.get(k, v) for k, v in own.items()}, merge=False, force_add=True
    )


def _pop_moved(out: DictConfig, into: str) -> dict[str, Any]:
    """The keys of MOVED whose new place is under `into`, taken out of their old place."""
    moved = {}
    for old, new in MOVED.items():
        if new.startswith(into) and not _absent(out, old):
            moved[new[len(into) :]] = OmegaConf.select(out, old)
            out.generation.pop(old.split(".", 1)[1])
    return moved


def _fill_model(out: DictConfig) -> None:
    """The model group's keys it lacks: a moved one at its old value (where its backend's spec
    has it), any other at the default of that spec (what a backend read for a key missing from
    the YAML before the group had a schema)."""
    from synthgen.backends import BACKENDS
    from synthgen.schema.model import ModelSpec

    moved = _pop_moved(out, "model.")
    if _absent(out, "model"):
        return
    spec = getattr(BACKENDS.get(out.model.get("backend")), "Spec", ModelSpec)
    for k, default in schema.as_dict(spec).items():
        default = moved.get(k, default)
        if default != MISSING and k not in out.model:
            OmegaConf.update(out, f"model.{k}", default, force_add=True)


def upgrade_keys(flat: dict[str, Any], within: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys (a prepared corpus's) with each of UPGRADES in `within` they lack at its
    old value: a folder prepared before the key existed compares equal."""
    return {**{k: v for k, v in UPGRADES.items() if k in within}, **flat}

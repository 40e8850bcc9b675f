"""Old run dirs: a config saved before a key existed, read as if it had been written today.

`upgrade_config` is the one place an old config is brought up to date: a key added after run
dirs were made takes the value in force before it existed (UPGRADES: history, so it must not
follow a later change of the default), and any other key the schema has that the config lacks
takes the schema's default. A group the config lacks entirely (cleaning, dedup) stays absent:
its stage did not exist, and the settings read that as off; a config without `filters` (made
before the quality gates) reads as filters=none by its UPGRADES.
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
_ABSENT = object()


def _absent(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT


def upgrade_config(cfg: DictConfig) -> DictConfig:
    """A copy of a saved config with UPGRADES, then the schema's defaults, for keys it lacks."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key, old in UPGRADES.items():
        if _absent(out, key):
            OmegaConf.update(out, key, old, force_add=True)
    for key, default in schema.defaults().items():
        group = key.split(".", 1)[0]
        if group in schema.GROUPS and OmegaConf.select(out, group) is None:
            continue  # the stage did not exist when the run was made
        if default is not MISSING and default != MISSING and _absent(out, key):
            OmegaConf.update(out, key, default, force_add=True)
    return out


def upgrade_keys(flat: dict[str, Any], within: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys (a prepared corpus's) with each of UPGRADES in `within` they lack at its
    old value: a folder prepared before the key existed compares equal."""
    return {**{k: v for k, v in UPGRADES.items() if k in within}, **flat}

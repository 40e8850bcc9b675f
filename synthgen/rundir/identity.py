"""Which config keys decide a run dir's rows: an allow-list.

A run dir resumes, a sweep's shards merge and a prepared corpus is reused only where these keys
agree. A key not named here (a new informational one such as model.hub_id, where an endpoint
listens, what it costs, where the chunks are read from) never blocks a resume: a key joins the
row's identity only by being added below. A key that holds a map (model.cues, filters.length)
names everything under it.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# group -> its keys that change the rows; a resume with other values is refused
ROW_KEYS: dict[str, tuple[str, ...]] = {
    # not corpus.prepared: a run switched to reading its chunks from a task=prepare dir resumes
    "corpus": ("dir", "train_files", "val_files", "encoding", "leak"),
    "cleaning": (
        "apply_to",
        "page_numbers",
        "furniture",
        "edge_lines",
        "min_pages",
        "min_share",
        "similarity",
        "hyphenation",
        "whitespace",
    ),
    "chunking": ("chunk_size", "chunk_overlap", "min_chars", "max_chars", "bounds"),
    "dedup": (
        "shingle_words",
        "leak_threshold",
        "chunk_threshold",
        "min_shingles",
        "question_threshold",
    ),
    "keywords": ("words", "match"),
    "prompt": (
        "name",
        "system",
        "question",
        "answer",
        "followup",
        "reply",
        "examples",
        "example",
        "examples_separator",
        "questions_per_chunk",
        "require_question_mark",
        "stop_strings",
    ),
    # not hub_id, unsloth_4bit_id (informational), base_url, api_key_env (where a server
    # listens and how to reach it), price_per_1m_* (what it costs), _target_ (follows backend),
    # concurrency, max_retries, request_timeout, retry_backoff (how an endpoint's requests go)
    "model": (
        "name",
        "name_or_path",
        "backend",
        "load_in_4bit",
        "max_seq_length",
        "dtype",
        "chat_template",
        "system_role",
        "eos_tokens",
        "prompt_format",
        "cues",
        "stop_strings",
        "max_new_tokens",
    ),
    "filters": (
        "name",
        "enabled",
        "prompt_echo",
        "repetition",
        "refusal",
        "not_question",
        "meta_reference",
        "length",
        "grounding",
        "restated_question",
        "near_duplicate_answer",
        "embed_signals",
        "round_trip",
        "logprob",
        "easiness",
    ),
    # not batch_size: how fast the rows come, not what they are (nor the engine group)
    "generation": (
        "max_new_tokens",
        "min_new_tokens",
        "temperature",
        "top_p",
        "do_sample",
        "seed",
    ),
}
_ABSENT = object()


def dotted(keys: dict[str, tuple[str, ...]]) -> list[str]:
    """The allow-list as dotted keys: corpus.dir, ..."""
    return [f"{group}.{k}" for group, names in keys.items() for k in names]


def flat(cfg: DictConfig, keys: list[str]) -> dict[str, Any]:
    """The values of `keys` in `cfg`, flattened to dotted keys (a map opened to its leaves); a
    key the config lacks is left out."""
    out: dict[str, Any] = {}
    for key in keys:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        _flatten(key, value, out)
    return out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def row_config(cfg: DictConfig) -> dict[str, Any]:
    """The parts of the config that decide the rows (ROW_KEYS), flattened to dotted keys."""
    return flat(cfg, dotted(ROW_KEYS))


def row_config_diff(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """First differing key as 'key: old -> new' (values shortened), or None."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            a = _short(old[key]) if key in old else "(not set)"
            b = _short(new[key]) if key in new else "(not set)"
            return f"{key}: {a} -> {b}"
    return None


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."

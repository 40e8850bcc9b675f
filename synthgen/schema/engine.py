"""The `engine` group: which engine decodes (conf/engine/<name>.yaml) and that engine's own keys.

One dataclass per engine, each with only the keys its engine reads; `auto` carries the keys of
every engine it may pick (vllm, static). A key two engines share is written once, in a function
that makes its field. `name` says which engine was asked for (summary.json's engine.requested).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from synthgen.checks import integer, need
from synthgen.schema.fields import key

FEEDS = ("stream", "waves")  # engine.feed: how the vllm engine is fed


def _name(engine: str, text: str) -> Any:
    return key(engine, f"which engine was asked for (engine={engine}): {text}")


def _gpu_memory_utilization() -> Any:
    return key(
        0.9,
        "share of the whole GPU memory vLLM takes for weights, activations and KV cache "
        "(0-1]; model.load_in_4bit=auto sizes against it too",
    )


def _enable_prefix_caching() -> Any:
    return key(
        True,
        "reuse the KV cache of prompt beginnings already computed (a "
        "chunk's answer prompt starts with its question prompt's system text and chunk, so only "
        "the rest is prefilled); false only for benchmarks",
    )


def _feed() -> Any:
    return key(
        "stream",
        "stream = generation.batch_size requests in flight, each row written as it "
        "finishes and its answer submitted at once; waves = batch_size prompts per "
        "llm.generate call",
    )


def _prefill_chunk_size() -> Any:
    return key(
        0,
        "static: prompt tokens per prefill step (tokens), lets batches over 256 fit (uses sdpa); "
        "0 = whole prompt at once (flex_attention). continuous: most prompt tokens one prefill "
        "forward takes (tokens); 0 = 8192",
    )


@dataclass(frozen=True)
class Dynamic:
    """engine=dynamic: transformers' plain generate (Unsloth's own generate for
    model=unsloth); no keys of its own."""

    name: str = _name("dynamic", "plain generate, one batch at a time")


@dataclass(frozen=True)
class Static:
    """engine=static: fixed shapes and a compiled decode, one batch at a time."""

    name: str = _name("static", "fixed shapes, compiled decode")
    prefill_chunk_size: int = _prefill_chunk_size()


@dataclass(frozen=True)
class Continuous:
    """engine=continuous: synthgen's continuous batching over a static KV cache (a finished
    row's slot refilled at once, prefix reuse); not yet measured on a GPU, so auto never
    picks it."""

    name: str = _name("continuous", "continuous batching over a static KV cache")
    enable_prefix_caching: bool = _enable_prefix_caching()
    prefill_chunk_size: int = _prefill_chunk_size()


@dataclass(frozen=True)
class Vllm:
    """engine=vllm: vLLM's continuous batching; needs vLLM (pip install -e '.[vllm]') and CUDA."""

    name: str = _name("vllm", "vLLM's continuous batching")
    gpu_memory_utilization: float = _gpu_memory_utilization()
    enable_prefix_caching: bool = _enable_prefix_caching()
    feed: str = _feed()


@dataclass(frozen=True)
class Auto:
    """engine=auto: vllm where it is installed and CUDA is present, else static on CUDA, else
    dynamic; it carries the keys of each engine it may pick. summary.json says which ran and
    why."""

    name: str = _name("auto", "vllm, static or dynamic, as the machine allows")
    gpu_memory_utilization: float = _gpu_memory_utilization()
    enable_prefix_caching: bool = _enable_prefix_caching()
    feed: str = _feed()
    prefill_chunk_size: int = _prefill_chunk_size()


ENGINES: dict[str, type] = {  # engine name -> its schema (conf/engine/<name>.yaml)
    "auto": Auto,
    "vllm": Vllm,
    "continuous": Continuous,
    "static": Static,
    "dynamic": Dynamic,
}
DEFAULT = "auto"  # conf/config.yaml's engine option
NAME_HELP = (
    "which engine decodes (engine=<option>): auto (vllm where it is installed and CUDA is "
    "present, else static on CUDA, else dynamic) | vllm (vLLM's continuous batching) | "
    "continuous (synthgen's continuous batching over a static KV cache; auto does not pick it) "
    "| static (fixed shapes, compiled decode) | dynamic (plain generate); summary.json says "
    "which ran and why"
)


def keys_of(engine: str) -> set[str]:
    return {f.name for f in dataclasses.fields(ENGINES[engine])}


def check(cfg: DictConfig) -> None:
    """engine.*: a known engine holding only its own keys, each in range."""
    e = cfg.engine
    name = e.get("name")
    need(
        name in ENGINES,
        f"engine: must be one of {', '.join(ENGINES)}, got {name!r}",
    )
    extra = sorted(set(e) - keys_of(name))
    need(not extra, f"engine.{extra[0] if extra else ''}: not a key of engine={name}")
    if "gpu_memory_utilization" in e:
        util = e.gpu_memory_utilization
        need(
            isinstance(util, int | float) and not isinstance(util, bool) and 0 < util <= 1,
            f"engine.gpu_memory_utilization: must be in (0, 1], got {util!r}",
        )
    if "feed" in e:
        need(e.feed in FEEDS, f"engine.feed: must be one of {', '.join(FEEDS)}, got {e.feed!r}")
    if "prefill_chunk_size" in e:
        integer(cfg, "engine.prefill_chunk_size", 0)


def backend_kwargs(engine: Any, seed: int) -> dict[str, Any]:
    """What load_backend passes the backend for this engine: its name, the prefill chunk where
    it has one, and the vllm options (generation.seed among them) it has."""
    d = dataclasses.asdict(engine)
    out: dict[str, Any] = {"engine": d["name"]}
    if "prefill_chunk_size" in d:
        out["prefill_chunk_size"] = d["prefill_chunk_size"]
    vllm = {k: d[k] for k in ("gpu_memory_utilization", "enable_prefix_caching", "feed") if k in d}
    out["vllm"] = {**vllm, "seed": seed}
    return out

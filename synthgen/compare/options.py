"""The compare config node (conf/compare/default.yaml), checked once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.errors import ConfigError
from synthgen.schema import Compare  # compare.*'s defaults


@dataclass
class Options:
    """The compare config node (conf/compare/default.yaml), with the schema's defaults."""

    embedder: str | None = Compare.embedder  # all-MiniLM-L6-v2, no hub
    query_prefix: str = Compare.query_prefix
    device: str | None = Compare.device
    batch_size: int = Compare.batch_size
    copy_span: int = Compare.copy_span
    examples: int = Compare.examples

    @classmethod
    def from_cfg(cls, node: Any) -> Options:
        if node is None:
            return cls()
        raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        opts = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        for key, low in (("batch_size", 1), ("copy_span", 2), ("examples", 0)):
            v = getattr(opts, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"compare.{key}: must be an integer >= {low}, got {v!r}")
        if opts.embedder is not None and not str(opts.embedder).strip():
            raise ConfigError("compare.embedder: give a model name or path, or null to skip")
        return opts

    def record(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

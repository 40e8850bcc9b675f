"""The small checkers a config group's check is written with: `need`, `integer`, `number`.

A leaf (it imports only errors.py), so the module that owns a group checks it itself
(backends: model.*, backends/plan.py: engine) without importing config.py, which
calls those checks.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from synthgen.errors import ConfigError


def need(cond: bool, msg: str) -> None:
    """Raise ConfigError(msg) (one line naming the key) unless `cond`."""
    if not cond:
        raise ConfigError(msg)


def integer(cfg: DictConfig, key: str, low: int) -> int:
    """The config's integer at the dotted `key`, refused unless it is one (not a bool) >= low."""
    v = OmegaConf.select(cfg, key)
    need(
        isinstance(v, int) and not isinstance(v, bool) and v >= low,
        f"{key}: must be an integer >= {low}, got {v!r}",
    )
    return v


def number(cfg: DictConfig, key: str, low: float, high: float | None = None) -> float:
    """The config's number (int or float, not a bool) at the dotted `key`, refused unless it is
    >= low and, where `high` is given, <= high."""
    v = OmegaConf.select(cfg, key)
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v >= low
    ok = ok and (high is None or v <= high)
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    need(ok, f"{key}: must be a number {span}, got {v!r}")
    return v

"""The two small checkers a config group's check is written with: `need` and `integer`.

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

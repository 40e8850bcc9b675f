"""Generation backends. Each module defines `Backend`, chosen by `model.backend` and built by
hydra.utils.instantiate from `model._target_`. torch/transformers/unsloth are imported inside
the backends only, so config checks and CPU tests stay fast."""

from __future__ import annotations

import pkgutil

HELPERS = {  # shared code and the engines, not backends
    "admission",
    "base",
    "batched",
    "continuous",
    "models",
    "plan",
    "slot_attention",
    "vllm_engine",
}


def available() -> list[str]:
    """Backend names = modules of this package that are not helpers."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in HELPERS)

"""Generation backends: BACKENDS names each one (model.backend) and its class; the class is
built by hydra.utils.instantiate from `model._target_` (where a test swaps in its own), with
its own spec of the model keys (`Backend.Spec`: base.ModelSpec for a model loaded here,
base.EndpointSpec for a served one). torch/transformers/unsloth are imported inside the
backends only, so config checks and CPU tests stay fast.

The `model` group is checked here (`check(cfg)`, called by config.check), then by the chosen
backend's own `check(spec, runtime)`."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from synthgen.backends import openai, transformers, unsloth
from synthgen.backends.base import BaseBackend, BaseSpec
from synthgen.checks import integer, need
from synthgen.errors import ConfigError
from synthgen.schema.fields import check_types

BACKENDS: dict[str, type[BaseBackend]] = {  # model.backend -> its class (a new backend: add it)
    "transformers": transformers.Backend,
    "unsloth": unsloth.Backend,
    "openai": openai.Backend,
}
STAGES = ("question", "answer", "judge")  # the stages model.cues/stop_strings/max_new_tokens name
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def available() -> list[str]:
    """The backend names model.backend takes."""
    return sorted(BACKENDS)


def spec_of(model: DictConfig) -> BaseSpec:
    """The model group as the spec of the backend `model._target_` names (ConfigError for a
    key that backend does not have)."""
    from hydra.utils import get_class

    cls = get_class(model._target_) if model.get("_target_") else BACKENDS[model.backend]
    return cls.Spec.from_kwargs(OmegaConf.to_container(model, resolve=True))


def check(cfg: DictConfig) -> None:
    """model.*: a known backend, a model that can be found, per-stage maps, the backend's own
    check (its `check(spec, runtime)`, where it has one). config.check calls it: this package
    owns the group."""
    m = cfg.model
    names = available()
    need(
        m.backend in names,
        f"model.backend: unknown backend {m.backend!r} (available: {', '.join(names)})",
    )
    integer(cfg, "model.max_seq_length", 16)
    need(
        cfg.generation.max_new_tokens < m.max_seq_length,
        "generation.max_new_tokens: must be < model.max_seq_length",
    )
    if m.backend == "openai":  # a served model's name, no files here: check_endpoint looks
        check_endpoint(cfg)
    else:
        check_model_path(str(m.name_or_path))
    fmt = m.prompt_format
    need(fmt in ("chat", "plain"), f"model.prompt_format: must be chat or plain, got {fmt!r}")
    need(
        fmt == "chat" or not m.get("chat_template"),
        "model.chat_template: unused with model.prompt_format=plain; set it to null",
    )
    check_per_stage(m)
    need(
        fmt == "plain" or not m.get("cues"),
        "model.cues: only used with model.prompt_format=plain (a chat template has its own)",
    )
    check_types(cfg, BACKENDS[m.backend].Spec, "model.")  # the other keys of its spec
    check_target(cfg)


def check_model_path(path: str) -> None:
    """model.name_or_path: a pypi: package, a model folder, or a hub id like org/name."""
    local = Path(path).expanduser()
    if path.startswith("pypi:"):  # a model shipped as a Python package (backends/models.py)
        from synthgen.backends import models

        why = models.check_pypi(path[len("pypi:") :])
        if why:
            raise ConfigError(why)
    elif local.exists():
        need(
            (local / "config.json").is_file(),
            f"model.name_or_path: {path} has no config.json (not a model folder)",
        )
    elif path.startswith(("/", ".", "~")) or "\\" in path:
        raise ConfigError(f"model.name_or_path: folder {path!r} not found")
    else:
        need(
            bool(_HUB_ID.match(path)),
            f"model.name_or_path: {path!r} is neither a folder nor a hub id like org/name",
        )


def check_per_stage(m: DictConfig) -> None:
    """model.cues, model.stop_strings, model.max_new_tokens: maps from a stage to a value
    (judge: the judge stage, gates/judge.py; where it is missing, judge_spec.stage_value says)."""
    for name, want in (
        ("cues", "a string"),
        ("stop_strings", "a list of strings"),
        ("max_new_tokens", "an integer >= 1"),
    ):
        per_stage = m.get(name) or {}
        need(
            OmegaConf.is_dict(per_stage) or per_stage == {},
            f"model.{name}: must map a stage ({', '.join(STAGES)}) to {want}",
        )
        for stage, v in per_stage.items():
            need(
                stage in STAGES,
                f"model.{name}: unknown stage {stage!r} ({', '.join(STAGES)})",
            )
            if name == "cues":
                ok = isinstance(v, str)
            elif name == "stop_strings":
                ok = OmegaConf.is_list(v) and all(isinstance(x, str) and x for x in v)
            else:
                ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
            need(ok, f"model.{name}.{stage}: must be {want}, got {v!r}")


def check_target(cfg: DictConfig) -> None:
    """model._target_ imports, its spec (`Spec`: only that backend's keys) builds, and the
    backend's own check passes."""
    m = cfg.model
    target = m.get("_target_")
    if not target:
        return
    module, _, attr = str(target).rpartition(".")
    try:
        backend_cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"model._target_: cannot import {target} ({e})") from None
    if not (isinstance(backend_cls, type) and issubclass(backend_cls, BaseBackend)):
        raise ConfigError(
            f"model._target_: {target} is not a backend (a subclass of "
            "synthgen.backends.base.BaseBackend)"
        )
    spec = backend_cls.Spec.from_kwargs(OmegaConf.to_container(m, resolve=True))
    backend_cls.check(spec, runtime=not cfg.dry_run)  # raises ConfigError


def check_endpoint(cfg: DictConfig) -> None:
    """model.backend=openai: the requests' settings (model.concurrency, ...; the endpoint's
    own keys are its backend's check)."""
    integer(cfg, "model.concurrency", 1)
    integer(cfg, "model.max_retries", 0)
    for key in ("model.request_timeout", "model.retry_backoff"):
        v = OmegaConf.select(cfg, key)
        need(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
            f"{key}: must be a number of seconds >= 0, got {v!r}",
        )
    need(cfg.model.request_timeout > 0, "model.request_timeout: must be > 0 seconds")

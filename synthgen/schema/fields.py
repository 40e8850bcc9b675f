"""The tools the schema's dataclasses are written with: `key` (one default, one help text), the
walk over their fields, the node Hydra's ConfigStore gets, and the type check.

A leaf (omegaconf, checks.py and errors.py only), so any module may read a default from the
schema without an import circle.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from synthgen.checks import need


def key(default: Any, help: str) -> Any:
    """A field with its one default and its help text (meaning and unit)."""
    return dataclasses.field(default=default, metadata={"help": help})


def empty(kind: type, help: str) -> Any:
    """A field whose default is an empty map or list (`kind`: dict or list), made afresh for
    each instance."""
    return dataclasses.field(default_factory=kind, metadata={"help": help})


def default_of(f: dataclasses.Field) -> Any:
    """A field's default: its value, or what its factory makes (MISSING where it has none)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def nested(cls: type) -> Any:
    """A field holding a whole sub-dataclass (generation, shard, ... under the top level)."""
    return dataclasses.field(default_factory=cls, metadata={"help": cls.__doc__ or ""})


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def walk(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every leaf key of `cls` as (dotted key, its field, its type), sub-dataclasses opened."""
    th = hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(th[f.name]):
            yield from walk(th[f.name], dotted + ".")
        else:
            yield dotted, f, th[f.name]


def plain(value: Any) -> Any:
    """A default as YAML holds it: tuples become lists."""
    return [plain(v) for v in value] if isinstance(value, tuple) else value


def as_dict(cls: type) -> dict[str, Any]:
    """The defaults of `cls` as a nested dict (MISSING for a key without a default)."""
    out: dict[str, Any] = {}
    th = hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(th[f.name]):
            out[f.name] = as_dict(th[f.name])
        elif default_of(f) is dataclasses.MISSING:
            out[f.name] = MISSING
        else:
            out[f.name] = plain(default_of(f))
    return out


def node(cls: type) -> DictConfig:
    """What ConfigStore stores for `cls`: its defaults as an untyped config. Unknown keys are
    still refused (Hydra composes in struct mode); types are checked by `check_types`, so a
    wrong one is a one-line ConfigError, not OmegaConf's error at compose time."""
    return OmegaConf.create(as_dict(cls))


def build(cls: type, cfg: Any) -> Any:
    """An instance of `cls` from its config node (checked before): lists become tuples."""
    th = hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        v = cfg[f.name]
        if dataclasses.is_dataclass(th[f.name]):
            v = build(th[f.name], v)
        elif isinstance(v, ListConfig | list):
            v = tuple(OmegaConf.to_container(v) if isinstance(v, ListConfig) else v)
        elif isinstance(v, DictConfig):
            v = OmegaConf.to_container(v, resolve=True)
        kw[f.name] = v
    return cls(**kw)


def fits(value: Any, hint: Any) -> bool:
    """Whether a config value is of a field's type (int is no bool; a float takes an int)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (tuple, list):
        return isinstance(value, ListConfig | list | tuple)
    if origin is dict:
        return isinstance(value, DictConfig | dict)
    return True


TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def type_name(hint: Any) -> str:
    if hint in TYPE_NAMES:
        return TYPE_NAMES[hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(h) for h in typing.get_args(hint) if h is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in typing.get_args(hint) else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if origin in (tuple, list):
        return "a list"
    if origin is dict:
        return "a map"
    return str(hint)


def check_types(cfg: DictConfig, cls: type, prefix: str) -> None:
    """Each key of `cls` under `prefix` in `cfg` set, and of its field's type."""
    for dotted, _, hint in walk(cls, prefix):
        parent, _, leaf = dotted.rpartition(".")
        owner = OmegaConf.select(cfg, parent) if parent else cfg
        need(
            owner is not None and not OmegaConf.is_missing(owner, leaf),
            f"{dotted}: must be set",
        )
        v = owner[leaf]
        need(fits(v, hint), f"{dotted}: must be {type_name(hint)}, got {v!r}")

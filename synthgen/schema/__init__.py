"""The config schema: one frozen dataclass per config group, each key with its one default and
its help text (meaning and unit), and the group's range checks.

Hydra composes conf/ on top of it: `register()` puts each dataclass in Hydra's ConfigStore
(`<group>_schema`, and `synthgen_schema` for the top level), each option's YAML names its
group's schema first in its defaults list and keeps only what differs from it. The same fields
write the key table of docs/configuration.md (`table`, `python -m synthgen.schema`) and the key
lines of `python run.py --help` (the `synthgen.keys` resolver). The `engine` group has one
schema per option (engine.ENGINES, `engine_<name>_schema`): each engine holds only its own keys;
the `model` group one per kind of backend (model.SPECS, `model_<kind>_schema`).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.schema import engine, model
from synthgen.schema.corpus import Chunking, Cleaning, Corpus, Dedup, Keywords
from synthgen.schema.embed import Compare, Embedder, Evaluate, Export, Finetune, Mining
from synthgen.schema.fields import as_dict, build, check_types, default_of, node, walk
from synthgen.schema.filters import Filters
from synthgen.schema.judge import Judge
from synthgen.schema.prompt import Prompt
from synthgen.schema.run import Filter, Generation, Merge, Run, Shard

__all__ = [
    "GROUPS",
    "Chunking",
    "Cleaning",
    "Compare",
    "Corpus",
    "Dedup",
    "Embedder",
    "Evaluate",
    "Export",
    "Filter",
    "Filters",
    "Finetune",
    "Generation",
    "Judge",
    "Keywords",
    "Merge",
    "Mining",
    "Prompt",
    "Run",
    "Shard",
    "as_dict",
    "build",
    "check",
    "defaults",
    "engine",
    "model",
    "register",
    "table",
]

GENERATE: dict[str, type] = {  # the groups a generate run reads, checked by `check`
    "corpus": Corpus,
    "cleaning": Cleaning,
    "chunking": Chunking,
    "dedup": Dedup,
    "keywords": Keywords,
}
GROUPS: dict[str, type] = {  # config group -> its schema (conf/<group>/*.yaml)
    **GENERATE,
    "embedder": Embedder,
    "finetune": Finetune,
    "evaluate": Evaluate,
    "export": Export,
    "compare": Compare,
    "judge": Judge,
    "filters": Filters,  # checked by its owner, gates.filters.check
    "prompt": Prompt,  # checked by config.check_prompt
}
TOP = "synthgen_schema"  # the top level's schema in the ConfigStore (conf/config.yaml's defaults)


def schema_name(group: str) -> str:
    """The ConfigStore name of a group's schema (top level, so --help lists no group of them);
    the group's YAML options list `/<name>@_here_` first in their defaults."""
    return f"{group}_schema"


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (once per process, before Hydra composes) and
    the `synthgen.keys` resolver that --help uses."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    # the top level holds every group's defaults too: an option file of the user's own that
    # does not name its group's schema (conf/corpus/mydocs.yaml) still gets every key
    top = {**as_dict(Run), **{group: as_dict(cls) for group, cls in GROUPS.items()}}
    cs.store(name=TOP, node=OmegaConf.create(top))
    for group, cls in GROUPS.items():
        cs.store(name=schema_name(group), node=node(cls))
    for name, cls in engine.ENGINES.items():  # not in the top level: each engine its own keys
        cs.store(name=schema_name(f"engine_{name}"), node=node(cls))
    for kind, cls in model.SPECS.items():  # likewise each kind of backend (schema/model.py)
        cs.store(name=schema_name(f"model_{kind}"), node=node(cls))
    if not OmegaConf.has_resolver("synthgen.keys"):
        OmegaConf.register_new_resolver("synthgen.keys", help_keys)


def every_key() -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every key of the schema: the top level, then the groups."""
    out = [(k, default_of(f), f.metadata["help"]) for k, f, _ in walk(Run)]
    for group, cls in GROUPS.items():
        out += [(k, default_of(f), f.metadata["help"]) for k, f, _ in walk(cls, f"{group}.")]
    return out + engine_keys() + model_keys()


def model_keys() -> list[tuple[str, Any, str]]:
    """model.* once per key, its help saying which specs have it (schema/model.py)."""
    seen: dict[str, tuple[Any, str, list[str]]] = {}
    for kind, cls in model.SPECS.items():
        for k, f, _ in walk(cls, "model."):
            seen.setdefault(k, (default_of(f), f.metadata["help"], []))[2].append(kind)
    both = len(model.SPECS)
    return [
        (k, d, text if len(kinds) == both else f"({' and '.join(kinds)} only) {text}")
        for k, (d, text, kinds) in seen.items()
    ]


def engine_keys() -> list[tuple[str, Any, str]]:
    """engine.* once per key, its help saying which engines have it (engine=<name> options)."""
    seen: dict[str, tuple[Any, str, list[str]]] = {}
    for name, cls in engine.ENGINES.items():
        for k, f, _ in walk(cls, "engine."):
            seen.setdefault(k, (default_of(f), f.metadata["help"], []))[2].append(name)
    out = []
    for k, (default, text, names) in seen.items():
        if k == "engine.name":
            out.append((k, engine.DEFAULT, engine.NAME_HELP))
        else:
            out.append((k, default, f"(engine={', '.join(names)}) {text}"))
    return out


def defaults() -> dict[str, Any]:
    """Every key's default, by dotted key (MISSING for a key each option must set); the engine
    group's are those of its default option (engine.DEFAULT)."""
    flat: dict[str, Any] = {}
    tree = {**as_dict(Run), **{g: as_dict(c) for g, c in GROUPS.items()}}
    _flat("", {**tree, "engine": as_dict(engine.ENGINES[engine.DEFAULT])}, flat)
    return flat


def _flat(prefix: str, d: dict, out: dict[str, Any]) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            _flat(f"{prefix}{k}.", v, out)
        else:
            out[prefix + k] = v


def check(cfg: DictConfig) -> None:
    """A generate run's keys (the top level, GENERATE's groups, the engine): each set and of its
    type, then each group's ranges (ConfigError). The other tasks check their own group."""
    check_types(cfg, Run, "")
    for group, cls in GENERATE.items():
        check_types(cfg, cls, f"{group}.")
    engine.check(cfg)  # a known engine with only its own keys, before their types
    check_types(cfg, engine.ENGINES[cfg.engine.name], "engine.")
    Run.check(cfg)
    for cls in GENERATE.values():
        cls.check(cfg)


def shown(value: Any) -> str:
    """A default as it is written on the command line."""
    if value == "???":
        return "(each option sets it)"
    if isinstance(value, tuple | list):
        return "[" + ",".join(map(str, value)) + "]"
    return OmegaConf.to_yaml({"v": value}).split(":", 1)[1].strip()


def table() -> str:
    """The key table of docs/configuration.md: one row per key, from the schema's fields."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for dotted, default, text in every_key():
        cell = f"`{shown(default)}`"
        if len(cell) > 120 or "|" in cell:  # a list of patterns: named, not written out
            where = GROUPS.get(dotted.split(".")[0], Run).__module__.replace(".", "/")
            cell = f"{len(default)} items, in `{where}.py`"
        rows.append(f"| `{dotted}` | {cell} | {text.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


HELP_KEYS = (  # the keys `python run.py --help` shows with their defaults
    "task",
    "num_rows",
    "dry_run",
    "corpus.dir",
    "chunking.chunk_size",
    "generation.max_new_tokens",
    "generation.batch_size",
    "generation.do_sample",
    "resume",
    "shard.count",
)


def help_keys() -> str:
    """--help's key lines: `key=default` and the help text's first clause, from the schema."""
    known = {k: (d, t) for k, d, t in every_key()}
    lines = []
    for k in HELP_KEYS:
        default, text = known[k]
        value = "PATH" if default == "???" else shown(default)
        first = text.split(";")[0].split(" (")[0]
        lines.append(f"  {f'{k}={value}':<30} {first}")
    return "\n".join(lines)

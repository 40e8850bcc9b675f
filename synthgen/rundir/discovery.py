"""Finding run dirs and naming them by what tells them apart.

A comparison, a sweep and a merge all name runs by "the overrides that vary": the sweep
when it makes a job's dir (it knows the keys the command sweeps), the merge when it names a
dataset of a sweep and the comparison when it labels runs (both see every run, and keep
what not all of them share). Those rules live here, once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from synthgen.errors import ConfigError
from synthgen.rundir import PREPARED, RUN_FILES, is_run_dir, is_shard

NAME_MAX = 200  # bytes; file systems allow 255 per path component, leave room for a suffix


# --- finding runs ------------------------------------------------------------------------------


def find_runs(
    paths: Iterable[str | Path], missing_ok: bool = False, key: str = "compare.runs"
) -> list[Path]:
    """Run dirs in the order given; a folder that is not a run dir (a sweep) expands to every
    run dir below it, sorted by path. The one place that decides what a run is."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_dir():
            if missing_ok:
                continue
            raise ConfigError(f"{key}: folder {str(path)!r} not found")
        found = [path] if is_run_dir(path) else runs_below(path)
        if not found and not missing_ok:
            raise ConfigError(
                f"{key}: no run dir (a folder with {' + '.join(RUN_FILES)}) in {str(path)!r}"
            )
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(f)
    return out


def runs_below(root: Path) -> list[Path]:
    """Run dirs below a sweep dir; a shard is part of a run, so its merged dir stands for it."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        d = Path(dirpath)
        if d != root and is_run_dir(d):
            if not is_shard(d) and not (d / PREPARED).exists():  # a prepared corpus: no rows
                found.append(d)
            dirnames.clear()  # a run dir holds no runs
            continue
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
    return sorted(found)


# --- naming runs by what varies ------------------------------------------------------------------


def varying(items: Sequence[Sequence[str]]) -> list[list[str]]:
    """Per item, its parts ('key=value' overrides) that not every item has: what tells it
    from the others, in its own order. One item alone has nothing that varies."""
    if not items:
        return []
    shared = set.intersection(*(set(x) for x in items))
    return [[p for p in x if p not in shared] for x in items]


def labels(paths: Sequence[Path]) -> list[str]:
    """Short names for runs: the run dir relative to the runs' common folder, minus the
    overrides all runs share (a sweep's dirs are named by overrides: 'num_rows=4,prompt=x').
    Where that leaves a name empty or twice, the relative paths; still twice, '#n' added."""
    if not paths:
        return []
    paths = [p.resolve() for p in paths]
    common = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0].parent
    names = [p.relative_to(common).as_posix() if p != common else p.name for p in paths]
    short = [",".join(x) for x in varying([n.split(",") for n in names])]
    out = short if all(short) and len(set(short)) == len(short) else names
    if len(set(out)) < len(out):
        out = [f"{name} #{i + 1}" for i, name in enumerate(out)]
    return out


def group_names(groups: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Dir name of each dataset of a sweep (a group of overrides): the overrides that tell it
    from the others. One dataset -> "" (<sweep>/merged); `-m model=a,b` -> "model=a",
    "model=b". Joined like Hydra's override_dirname; a slash (a path value) would nest dirs,
    so it becomes "_"."""
    return {
        g: ",".join(parts).replace("/", "_")
        for g, parts in zip(groups, varying(groups), strict=True)
    }


def safe_dirname(name: str) -> str:
    """Hydra's override dirname as ONE folder name.

    A value with '/' (a model path, a hub id) would nest folders; a long override list would
    pass the 255-byte name limit, so it is cut and a hash of the full name keeps it unique.
    """
    from synthgen.records import short_hash

    out = name.replace("/", "_").replace("\\", "_").strip() or "default"
    if len(out.encode()) > NAME_MAX:
        out = out.encode()[: NAME_MAX - 17].decode(errors="ignore") + "-" + short_hash(name)
    return out


def job_dirname(overrides: Any, exclude: Any = (), swept: Iterable[str] = ()) -> str:
    """A sweep's job dir name, made before the other jobs exist: the job's overrides of the
    keys the command sweeps (`swept`), sorted, as Hydra's override_dirname writes them
    ('model=qwen25_7b,prompt=critic'). Overrides that are the same in every job
    (num_rows=100) would only make every name longer; without any swept key (-m over a
    single value, or jobs in other processes that do not know the keys) all overrides name
    it. shard.* always does: another shard.count gets new dirs. Keys in `exclude` never do."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept = set(swept or ())
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    parsed = [o for o in parsed if o.key_or_group not in set(exclude or ())]
    chosen = parsed
    if swept:
        chosen = [
            o for o in parsed if o.key_or_group in swept or o.key_or_group.startswith("shard.")
        ]
    chosen = chosen or parsed
    return safe_dirname(",".join(sorted(str(o.input_line) for o in chosen)))

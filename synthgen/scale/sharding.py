"""Shards: one dataset made by many jobs (one model copy per GPU), each on its own chunks.

A shard keeps the slots whose chunk id hashes to its index, after selection and the
num_rows cap, so N shards together make exactly the slots of one run. Jobs of a Hydra
multirun find each other through the sweep dir: every job dir holds Hydra's
`.hydra/overrides.yaml`, and jobs whose overrides agree once `shard.*` is dropped make the
same dataset (a "group").
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from synthgen import rundir
from synthgen.errors import ConfigError
from synthgen.records import Slot
from synthgen.rundir import SPLITS, has_config, load_config
from synthgen.rundir.identity import row_config, row_config_diff
from synthgen.rundir.state import RunState


def shard_of(chunk_id: str, count: int) -> int:
    """Shard of a chunk: its id is a sha1 hex prefix, so ids spread evenly over shards."""
    return int(chunk_id, 16) % count


def keep(slots: dict[str, list[Slot]], count: int, index: int) -> dict[str, list[Slot]]:
    """This shard's slots, in the same order (all of them when count is 1)."""
    if count == 1:
        return slots
    return {s: [x for x in v if shard_of(x.chunk.id, count) == index] for s, v in slots.items()}


def host() -> dict[str, Any]:
    """Where a job ran: which machine and which GPUs it was given (Ray and Slurm set these)."""
    env = os.environ
    return {
        "hostname": socket.gethostname(),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID"),
        "slurm_array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
    }


# --- job dirs of a sweep -------------------------------------------------------------------------


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def group_of(overrides: list[str]) -> tuple[str, ...]:
    """The dataset a job makes: its command-line overrides without shard.* (sorted)."""
    return tuple(sorted(o for o in overrides if not _key(o).startswith("shard.")))


@dataclass(frozen=True)
class JobDir:
    """One job of a multirun, as Hydra left it on disk."""

    path: Path
    overrides: tuple[str, ...]  # the job's task overrides (.hydra/overrides.yaml)
    count: int  # shard.count
    index: int  # shard.index
    task: str

    @property
    def group(self) -> tuple[str, ...]:
        return group_of(list(self.overrides))

    @property
    def finished(self) -> bool:
        return rundir.is_done(self.path)

    @property
    def label(self) -> str:
        return f"shard.count={self.count},shard.index={self.index}"


def read_job_dir(path: Path) -> JobDir | None:
    """A job dir from its `.hydra/` record; None when it is not one (or not readable)."""
    hydra_dir = path / rundir.HYDRA
    try:
        overrides = yaml.safe_load((hydra_dir / rundir.OVERRIDES).read_text(encoding="utf-8"))
        cfg = yaml.safe_load((hydra_dir / rundir.CONFIG).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    try:
        cfg = rundir.upgrade_config(OmegaConf.create(cfg))  # a job of before sharding: 1 shard
        count, index = int(cfg.shard.count), int(cfg.shard.index)
    except (TypeError, ValueError, OmegaConfBaseException):
        return None
    return JobDir(
        path=path,
        overrides=tuple(str(o) for o in overrides or []),
        count=count,
        index=index,
        task=str(cfg.task),
    )


def job_dirs(sweep: Path) -> list[JobDir]:
    """Every generate job under a sweep dir, in path order.

    Searched recursively: Hydra's subdir is the override string, and a value with a slash
    in it (a model path) nests the job dir.
    """
    found = []
    for marker in sorted(sweep.rglob(f"{rundir.HYDRA}/{rundir.OVERRIDES}")):
        job = read_job_dir(marker.parent.parent)
        if job is not None and job.task == "generate":
            found.append(job)
    return found


def siblings(run_dir: Path) -> list[Path]:
    """Other job dirs of this multirun's sweep that make the same dataset (any shard.count).

    Empty outside a Hydra multirun. A relaunch reads their rows so that nothing a shard of
    an earlier launch finished is generated again.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return []
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return []
    mine = group_of(list(hc.overrides.task))
    me = run_dir.resolve()
    # the sweep dir is the job dir less its subdir (hydra.sweep.dir may hold ${now:} and
    # would not resolve to the same time here)
    sweep = Path(hc.runtime.output_dir).resolve()
    for _ in Path(str(hc.sweep.subdir)).parts:
        sweep = sweep.parent
    return [j.path for j in job_dirs(sweep) if j.group == mine and j.path.resolve() != me]


def sibling_state(cfg: DictConfig, run_dir: Path) -> tuple[RunState, list[Path]]:
    """What the sweep's other job dirs for this dataset hold (an earlier launch's shards).

    Read without repair (they may be running); a dir made with another row config is refused.
    """
    states, dirs = [], []
    mine = row_config(cfg)
    for d in siblings(run_dir):
        if not has_config(d):
            continue  # started, wrote nothing
        diff = row_config_diff(row_config(load_config(d)), mine)
        if diff:
            raise ConfigError(
                f"resume: {d} in the same sweep was made with another config ({diff}); "
                "use a new hydra.sweep.dir or the old value"
            )
        st = RunState.load(d, repair=False)
        for s in SPLITS:  # keys and questions are all that is used here: drop the big texts
            st.rows[s] = [{**r, "doc": "", "answer": ""} for r in st.rows[s]]
        states.append(st)
        dirs.append(d)
    return RunState.union(states), dirs

"""The tasks `python run.py task=...` runs, and the one wrapper every task runs in.

`run(cfg)` picks the task and hands it its run dir. Each task body is decorated with
`@task("name")`: it receives a `TaskRun` (config, run dir, clock) and returns its summary's
own fields; the wrapper takes the run dir's lock for a task that writes there (`lock=True`),
stamps task, status, started, finished, seconds and versions and writes summary.json
atomically (and DONE after it, when asked). A task that fails inside a -m sweep is recorded in
its run dir by `run` (summary.json status "failed", the one-line error), so the sweep goes on
and still fails at its end (synthgen/scale/sweep.py). `attempt(cfg)` is `run` for the command
line: how the task ended, as an `Outcome` it picks the exit code from (cli.py).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthgen import rundir
from synthgen.errors import ConfigError, RunDirLocked, SynthgenError
from synthgen.rundir import runlock

log = logging.getLogger(__name__)

# task name -> "module:function"; each takes (cfg, run_dir) and returns a summary dict
TASKS = {
    "generate": "synthgen.generate.pipeline:generate",
    "prepare": "synthgen.corpus.prepared:prepare",
    "compare": "synthgen.compare:compare",
    "finetune": "synthgen.embed.finetune:finetune",
    "evaluate": "synthgen.embed.evaluate:evaluate",
    "export": "synthgen.embed.export:export",
    "merge": "synthgen.scale.merge:merge",
    "filter": "synthgen.gates.refilter:refilter",
}

Summary = dict[str, Any]


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> Summary:
    """Entry point for every task (`task=...`). Returns the task's summary."""
    path = resolve_run_dir(run_dir)
    try:
        name = cfg.task
        if name not in TASKS:
            raise ConfigError(f"task: unknown task {name!r} (available: {', '.join(TASKS)})")
        module, _, func = TASKS[name].partition(":")
        return getattr(importlib.import_module(module), func)(cfg, path)
    except Exception as e:
        # in a sweep the next run goes on; a dir another process holds is left alone
        if in_multirun() and not isinstance(e, RunDirLocked):
            record_failure(cfg, e, path)
        raise


@dataclass
class Outcome:
    """How one task of `python run.py` ended, for the command line to act on (cli.py): its
    summary, or what it raised. Returned to Hydra too: a sweep's callback reads each job's
    (scale/sweep.py)."""

    summary: Summary | None = None  # the task's summary; None when it raised
    error: BaseException | None = None  # what the task raised
    multirun: bool = False  # a job of a -m sweep (a failure is recorded in its run dir)

    @property
    def locked_out(self) -> bool:
        """Another process held the run dir: the task did nothing there."""
        return isinstance(self.error, RunDirLocked)


def attempt(cfg: DictConfig, run_dir: str | Path | None = None) -> Outcome:
    """`run(cfg)` for the command line: how it ended, its error caught (Ctrl-C included)."""
    multirun = in_multirun()
    try:
        return Outcome(summary=run(cfg, run_dir), multirun=multirun)
    except BaseException as e:
        return Outcome(error=e, multirun=multirun)


def in_multirun() -> bool:
    """This process runs a job of a Hydra multirun (-m). Here beside the task runner that asks
    it, not in scale/sweep.py: that sits above the tasks (it compares the runs at a sweep's
    end through task=compare)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def resolve_run_dir(run_dir: str | Path | None) -> Path:
    """Explicit dir, else Hydra's run dir, else a fresh dir under outputs/."""
    if run_dir is not None:
        return Path(run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path("outputs") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


@dataclass
class TaskRun:
    """What a task body gets: its config and run dir, and the clock started for it."""

    name: str
    cfg: DictConfig
    run_dir: Path
    started: str = field(default_factory=rundir.now)  # ISO time, into summary.started
    t0: float = field(default_factory=time.perf_counter)
    seconds: Counter[str] = field(default_factory=Counter)  # stage -> seconds, this session

    def elapsed(self) -> float:
        """Seconds since the task started."""
        return time.perf_counter() - self.t0

    def save_config(self, cfg: DictConfig | None = None, resolve: bool = True) -> None:
        """The config (the task's own unless given) into the run dir, atomically."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.save_config(self.run_dir, self.cfg if cfg is None else cfg, resolve=resolve)

    def finish(self, summary: Summary, done: bool = False, versions: Iterable[str] = ()) -> Summary:
        """Stamp the summary (task, status, started, finished, seconds.total, versions) and
        write it atomically; `done`: then DONE, the last file of a finished run.

        task, status, started and seconds the body set itself win (a partial merge); finished
        and versions are always this session's.
        """
        out: Summary = {"task": self.name, "status": "complete", **summary}
        out.setdefault("started", self.started)
        out["finished"] = rundir.now()
        seconds = out.setdefault("seconds", {k: round(v, 3) for k, v in self.seconds.items()})
        seconds.setdefault("total", round(self.elapsed(), 3))
        out["versions"] = rundir.versions(*versions)
        rundir.write_summary(self.run_dir, out)
        if done:
            from synthgen import faults

            faults.point("summary")
            rundir.write_done(self.run_dir, out["finished"])
            faults.point("done")
        return out


TaskBody = Callable[[TaskRun], Summary]


def task(
    name: str, lock: bool = False
) -> Callable[[TaskBody], Callable[[DictConfig, Path], Summary]]:
    """`@task("finetune")` over `def finetune(t: TaskRun) -> dict`: the function `run` calls
    with (cfg, run_dir). The body saves its config with t.save_config() once its inputs are
    checked (a refused task leaves nothing behind) and ends with `return t.finish({...})`.

    lock: the task writes its run dir; the body runs holding the dir's lock (one writer per
    run dir: a second run stops at once), except a dry run, which writes nothing there.
    """

    def wrap(body: TaskBody) -> Callable[[DictConfig, Path], Summary]:
        @functools.wraps(body)
        def run_task(cfg: DictConfig, run_dir: str | Path) -> Summary:
            writes = lock and not cfg.get("dry_run")
            with runlock.held(run_dir) if writes else contextlib.nullcontext():
                return body(TaskRun(name, cfg, Path(run_dir)))

        run_task.body = body  # type: ignore[attr-defined]  # the undecorated body, for tests
        return run_task

    return wrap


# --- a failed run, recorded in its run dir -----------------------------------------------------


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, SynthgenError) else f"{type(exc).__name__}: {text}"


def record_failure(cfg: DictConfig, exc: BaseException, run_dir: Path | None = None) -> Path:
    """Mark the run dir failed (summary.json status, error) and keep what it already holds.

    An earlier session's summary (rows, generation totals) is kept, only the status and the
    error change, so resuming the run later loses nothing. The traceback of an unexpected
    error goes to the log (run.log); a config error is one line.
    """
    run_dir = resolve_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    msg = one_line(exc)
    if isinstance(exc, SynthgenError):
        log.error("run failed: %s", msg)
    else:
        log.error("run failed: %s\n%s", msg, "".join(traceback.format_exception(exc)).rstrip())
    old: Summary = rundir.read_summary(run_dir, default={})
    if isinstance(exc, ConfigError) and old.get("status") == "complete":
        # refused before touching the run dir (e.g. a relaunch with another row config): the
        # finished run stays finished; the refusal is kept beside it and still fails the sweep
        rundir.write_summary(
            run_dir, {**old, "last_attempt_error": msg, "last_attempt_at": rundir.now()}
        )
        return run_dir
    summary = {
        **old,
        "run_dir": str(run_dir),
        "task": cfg.task,
        "status": "failed",
        "error": msg,
        "error_type": type(exc).__name__,
        "failed_at": rundir.now(),
    }
    if old.get("status") and old.get("status") != "failed":
        summary["previous_status"] = old["status"]
    if not rundir.has_config(run_dir):  # the report shows how a failed run's config differs
        try:
            rundir.save_config(run_dir, cfg, resolve=True)
        except Exception:  # an interpolation that cannot resolve: keep it as written
            rundir.save_config(run_dir, cfg, resolve=False)
    rundir.write_summary(run_dir, summary)
    return run_dir

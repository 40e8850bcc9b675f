"""A task's outcome (tasks.Outcome), what the CLI and a sweep's callback read from it, and the
run dir's lock that the task wrapper takes (tasks.task(lock=True))."""

from __future__ import annotations

from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from synthgen import cli, tasks
from synthgen.errors import ConfigError, RunDirLocked
from synthgen.rundir import LOCK, runlock
from synthgen.rundir.lockfile import RunLock
from synthgen.scale.sweep import SweepCallback
from tests.conftest import compose


def test_an_error_out_of_a_task_is_its_outcome_and_keeps_its_traceback(tmp_path: Path) -> None:
    out = tasks.attempt(compose(["task=nope"]), tmp_path)
    assert out.summary is None and isinstance(out.error, ConfigError)
    assert not out.locked_out and not out.multirun
    assert cli.raised_by_task(out.error)  # the CLI re-raises such an error with its traceback
    try:
        raise ValueError("composing the config")
    except ValueError as e:
        assert not cli.raised_by_task(e)  # Hydra's own: one line


def test_a_writing_task_takes_the_run_dirs_lock_and_is_locked_out_when_held(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "outputs" / "run"
    other = RunLock(run_dir).acquire()  # another writer (a flock of its own)
    try:
        out = tasks.attempt(compose(["task=prepare"]), run_dir)
        assert out.locked_out and out.summary is None
        assert str(out.error).startswith(f"run dir {run_dir} is in use: locked by pid ")
        assert not (run_dir / "prepared.json").exists()  # refused before the task's body
    finally:
        other.release()
    assert other.created == tmp_path / "outputs"  # the highest folder taking the lock made
    assert not (run_dir / LOCK).exists()


def test_the_lock_says_which_folders_taking_it_created(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    with runlock.held(tmp_path / "outputs" / "a" / "b"):
        assert runlock.created(tmp_path / "outputs" / "a" / "b") == tmp_path / "outputs" / "a"
    with runlock.held(tmp_path / "outputs"):
        assert runlock.created(tmp_path / "outputs") is None  # it was there
    assert runlock.created(tmp_path / "outputs") is None  # not held here


def test_the_sweep_counts_the_jobs_locked_out() -> None:
    cb = SweepCallback()
    locked = tasks.Outcome(error=RunDirLocked("run dir d is in use"), multirun=True)
    failed = tasks.Outcome(error=ConfigError("num_rows: must be > 0"), multirun=True)
    for value in (locked, failed, tasks.Outcome(summary={}, multirun=True)):
        cb.on_job_end(None, JobReturn(status=JobStatus.COMPLETED, _return_value=value))
    cb.on_job_end(None, JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("x")))
    assert cb.locked_out == ["run dir d is in use"]

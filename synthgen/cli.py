"""The command line behind `python run.py ...` (run.py only composes the config).

- A config error is one line on stderr and exit code 2: synthgen's own checks, an
  interpolation that cannot resolve, and Hydra's own (an unknown option such as
  `prompt=critc`, a bad override, an unknown key). HYDRA_FULL_ERROR=1 shows Hydra's traceback.
  An unexpected error keeps its traceback (exit code 1).
- A single run that fails, and a dry run, leave no run dir behind when it holds nothing but
  Hydra's record of the command (`.hydra/`, `run.log`): outputs/ only gets dirs with work in
  them. In a -m sweep a failed run is recorded in its run dir and the sweep goes on
  (synthgen/scale/sweep.py), as before.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from synthgen import tasks
from synthgen.errors import SynthgenError
from synthgen.scale import sweep

# every process that runs a task imports this module first: the launching one (run.py) and the
# job processes of launchers that run jobs elsewhere (joblib, ray, submitit), which resolve
# hydra.sweep.subdir themselves
sweep.setup_process()


def task(cfg: DictConfig) -> tasks.Outcome:
    """The body of run.py's @hydra.main function: runs the task and acts on its outcome. The
    outcome goes back to Hydra, whose sweep callback counts the jobs locked out (sweep.py)."""
    out = tasks.attempt(cfg)
    e = out.error
    if e is None:
        if cfg.get("dry_run") and not out.multirun:  # printed, nothing written
            remove_if_empty(tasks.resolve_run_dir(None))
        return out
    if out.multirun and out.locked_out:
        # another process writes that dir: leave its files alone, fail the sweep at its end
        print(f"error: {e}", file=sys.stderr)
        return out
    if out.multirun and isinstance(e, Exception):  # tasks.run recorded it; the sweep goes on
        return out
    if not out.multirun and not out.locked_out:  # this process holds its lock
        remove_if_empty(tasks.resolve_run_dir(None))
    if isinstance(e, SynthgenError):  # the user's to fix: one line, no traceback
        fail(str(e))
    if _is_interpolation_error(e):  # a ${...} in the config or an override
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        fail(f"{getattr(e, 'full_key', None) or 'config'}: {first}")
    raise e


def raised_by_task(e: BaseException) -> bool:
    """The error came out of a task (its traceback passes tasks.run), not out of Hydra
    composing the config: it keeps its traceback."""
    return any(f.f_code is tasks.run.__code__ for f, _ in traceback.walk_tb(e.__traceback__))


def main(hydra_main: Callable[[], None]) -> None:
    """Call run.py's @hydra.main function; Hydra's own config errors become one line, exit 2.
    A moved key spelled the old way (generation.engine=vllm) is refused first, naming the new."""
    from synthgen.rundir.upgrade import moved_override

    for arg in sys.argv[1:]:
        if why := moved_override(arg):
            fail(why)
    if os.environ.get("HYDRA_FULL_ERROR"):  # the user wants Hydra's own report
        hydra_main()
        return
    # Hydra prints its errors over several lines and exits 1; told this, it raises them instead
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as e:
        if raised_by_task(e):
            raise
        fail(hydra_one_line(e))


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def hydra_one_line(e: BaseException) -> str:
    """Hydra's message as one line: the group and its options for an unknown option."""
    options = getattr(e, "options", None)
    missing = str(getattr(e, "missing_cfg_file", "") or "")
    if options and "/" in missing:
        group, _, name = missing.rpartition("/")
        return f"{group}: no option {name!r} in conf/{group}/ (options: {', '.join(options)})"
    lines = []
    for ln in str(e).splitlines():
        if ln.startswith("Config search path") or ln.startswith("See https://hydra.cc"):
            break
        if ln.strip():
            lines.append(ln.strip())
    text = " ".join(lines) or type(e).__name__
    cause = e.__cause__
    if cause is not None and str(cause).strip():
        text += f" ({str(cause).strip().splitlines()[0]})"
    return text


def _is_interpolation_error(e: BaseException) -> bool:
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    return isinstance(e, InterpolationResolutionError | MissingMandatoryValue)


def remove_if_empty(run_dir: Path) -> bool:
    """Remove a run dir that holds only Hydra's record of the command and files with nothing
    in them (a run that stopped before its first result). Anything else keeps it whole."""
    from hydra.core.hydra_config import HydraConfig

    from synthgen import rundir
    from synthgen.rundir import runlock

    if not run_dir.is_dir():
        return False
    log_name = f"{HydraConfig.get().job.name}.log" if HydraConfig.initialized() else "run.log"
    hydra_files = {rundir.CONFIG, rundir.HYDRA_SETTINGS, rundir.OVERRIDES}
    removable = []
    for p in run_dir.iterdir():
        hydra_record = (
            p.name == rundir.HYDRA and p.is_dir() and {x.name for x in p.iterdir()} <= hydra_files
        )
        ours = p.is_file() and (
            # config.yaml: written just before the model loads; .lock: this run's own lock
            p.name in (log_name, rundir.CONFIG, rundir.LOCK)
            or (p.name in rundir.JSONL_FILES and p.stat().st_size == 0)
        )
        if not (hydra_record or ours):
            return False
        removable.append(p)
    here = Path.cwd().resolve()
    if here == run_dir.resolve() or run_dir.resolve() in here.parents:
        for p in removable:  # never the folder the command runs in
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        return True
    made = runlock.created(run_dir)  # before the removal: what taking the lock created
    shutil.rmtree(run_dir, ignore_errors=True)
    _remove_new_empty_parents(run_dir, here, made)
    return True


def _remove_new_empty_parents(run_dir: Path, here: Path, made: Path | None) -> None:
    """The folders above a removed run dir that this command created (outputs/ on a first
    run: the run dir's lock made them, `made` the highest) and that are now empty: the
    working dir is left as the command found it."""
    if made is None:
        return
    made = made.resolve()
    for parent in run_dir.resolve().parents:
        if parent == here or here not in parent.parents:
            return  # never the working dir, nothing outside it
        if parent != made and made not in parent.parents:
            return  # was there before this command
        try:
            if any(parent.iterdir()):
                return  # holds something
            parent.rmdir()
        except OSError:
            return

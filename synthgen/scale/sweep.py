"""Hydra multirun (`python run.py -m ...`): run dir names, failed runs, the report at the end.

A sweep must outlive its failures: a run that fails is recorded in its own run dir
(summary.json with status "failed" and the one-line error) and the next run starts. When
all runs are done, the callback compares them into the sweep dir and exits non-zero if
any failed.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from synthgen import rundir, tasks
from synthgen.errors import SynthgenError
from synthgen.rundir import discovery

log = logging.getLogger(__name__)


RESOLVER = "synthgen.dirname"  # hydra.sweep.subdir in conf/config.yaml names run dirs with it
# Hydra 1.3 checks conf/hydra/launcher/*.yaml against the launcher plugins' schemas of the
# same name and warns each time, in the launching process and in every job (ours replace the
# plugins' configs, every key commented)
LAUNCHER_WARNING = r"\n?'hydra/launcher/"


def setup_process(swept: Any = ()) -> None:
    """What a process that composes synthgen's Hydra config needs: the run dir resolver (for
    the keys `swept`, when known) and quiet launcher-schema warnings. The CLI calls it for
    every process (the launching one and each job of a launcher that runs jobs elsewhere);
    SweepCallback again once the swept keys are known."""
    import warnings

    warnings.filterwarnings("ignore", message=LAUNCHER_WARNING, category=UserWarning)
    name = functools.partial(discovery.job_dirname, swept=frozenset(swept))
    OmegaConf.register_new_resolver(RESOLVER, name, replace=True)


def run_status(run_dir: Path) -> str:
    """ "failed" also for a finished run whose last attempt in this sweep was refused."""
    summary = rundir.read_summary(run_dir, default=None)
    if summary is None:
        return "unreadable"
    return "failed" if summary.get("last_attempt_error") else summary.get("status", "unknown")


class SweepCallback(Callback):
    """Names a multirun's run dirs by the swept keys; at its end, compares the runs into the
    sweep dir (compare.auto) and exits 1 if one failed or found its run dir in use."""

    def __init__(self) -> None:
        # the errors of jobs refused because another process held their run dir
        self.locked_out: list[str] = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A job's tasks.Outcome (what cli.task returned) says whether it was locked out."""
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.COMPLETED:
            return
        out = job_return.return_value
        if isinstance(out, tasks.Outcome) and out.locked_out:
            self.locked_out.append(str(out.error))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        task = [str(o) for o in config.hydra.overrides.task]
        parsed = OverridesParser.create().parse_overrides(task)
        setup_process(swept={o.key_or_group for o in parsed if o.is_sweep_override()})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from synthgen import compare
        from synthgen.scale import sharding

        sweep_dir = Path(str(config.hydra.sweep.dir))
        runs = compare.find_runs([sweep_dir], missing_ok=True)
        jobs = sorted({*runs, *(j.path for j in sharding.job_dirs(sweep_dir))})  # shards too
        opts = config.get("compare")
        report = None
        if not runs:
            log.warning("no run dir under %s: nothing to compare", sweep_dir)
        elif opts is not None and opts.auto:
            try:
                compare.build_report([sweep_dir], sweep_dir, opts)
                report = sweep_dir / "compare.md"
            except SynthgenError as e:
                print(f"error: compare: {e}", file=sys.stderr)
            except Exception:  # the runs are done and on disk; only the report is missing
                log.exception(
                    "compare failed; rerun it: python run.py task=compare compare.runs='[%s]'",
                    sweep_dir,
                )
        failed = [r for r in jobs if run_status(r) == "failed"]
        if self.locked_out:
            print(
                f"error: {len(self.locked_out)} job(s) found their run dir in use by another "
                f"process and did not run ({self.locked_out[0]})",
                file=sys.stderr,
            )
            if not failed:
                sys.exit(1)
        if failed:  # the sweep went on; its exit code still says that something failed
            names = ", ".join(r.relative_to(sweep_dir).as_posix() for r in failed)
            where = f"; see {report}" if report else ""
            print(
                f"error: {len(failed)} of {len(jobs)} runs failed ({names}): the error is in "
                f"each one's summary.json{where}",
                file=sys.stderr,
            )
            sys.exit(1)

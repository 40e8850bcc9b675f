"""Hydra multirun (`python run.py -m ...`): run dir names, failed runs, the report at the end.

A sweep must outlive its failures: a run that fails is recorded in its own run dir
(summary.json with status "failed" and the one-line error) and the next run starts. When
all runs are done, the callback compares them into the sweep dir and exits non-zero if
any failed.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from synthgen.config import SynthgenError
from synthgen.records import short_hash

log = logging.getLogger(__name__)
NAME_MAX = 200  # bytes; file systems allow 255 per path component, leave room for a suffix


def safe_dirname(name: str) -> str:
    """Hydra's override dirname as ONE folder name.

    A value with '/' (a model path, a hub id) would nest folders; a long override list would
    pass the 255-byte name limit, so it is cut and a hash of the full name keeps it unique.
    """
    out = name.replace("/", "_").replace("\\", "_").strip() or "default"
    if len(out.encode()) > NAME_MAX:
        out = out.encode()[: NAME_MAX - 17].decode(errors="ignore") + "-" + short_hash(name)
    return out


# keys the running multirun sweeps over (`prompt=a,b`), set by SweepCallback.on_multirun_start.
# Launchers that run jobs in other processes leave it empty: every override names the dir.
_swept: set[str] = set()


def run_dirname(overrides: Any, exclude: Any = ()) -> str:
    """A sweep's run dir name: the job's overrides of the swept keys, sorted, as Hydra's
    override_dirname writes them ('model=qwen25_7b,prompt=critic'). Overrides that are the
    same in every run (num_rows=100) would only make every name longer; without any swept
    key (-m over a single value) all overrides name it. Keys in `exclude` never do."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    parsed = [o for o in parsed if o.key_or_group not in set(exclude or ())]
    if _swept:  # shard.* always names a shard's dir: another shard.count gets new dirs
        chosen = [
            o for o in parsed if o.key_or_group in _swept or o.key_or_group.startswith("shard.")
        ]
    else:  # swept keys unknown (jobs in other processes): every override names the dir
        chosen = parsed
    chosen = chosen or parsed
    return safe_dirname(",".join(sorted(str(o.input_line) for o in chosen)))


# hydra.sweep.subdir in conf/config.yaml uses it; registered when run.py imports this module
if not OmegaConf.has_resolver("synthgen.dirname"):
    OmegaConf.register_new_resolver("synthgen.dirname", run_dirname)


# jobs of this multirun refused because another process held their run dir (run.py)
locked_out: list[str] = []


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, SynthgenError) else f"{type(exc).__name__}: {text}"


def record_failure(cfg: DictConfig, exc: BaseException, run_dir: Path | None = None) -> Path:
    """Mark the run dir failed (summary.json status, error) and keep what it already holds.

    An earlier session's summary (rows, generation totals) is kept, only the status and the
    error change, so resuming the run later loses nothing. The traceback of an unexpected
    error goes to the log (run.log); a config error is one line.
    """
    from synthgen.dataset import pipeline, writing

    run_dir = pipeline.resolve_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    msg = one_line(exc)
    if isinstance(exc, SynthgenError):
        log.error("run failed: %s", msg)
    else:
        log.error("run failed: %s\n%s", msg, "".join(traceback.format_exception(exc)).rstrip())
    path = run_dir / "summary.json"
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
    from synthgen.config import ConfigError

    if isinstance(exc, ConfigError) and old.get("status") == "complete":
        # refused before touching the run dir (e.g. a relaunch with another row config): the
        # finished run stays finished; the refusal is kept beside it and still fails the sweep
        summary = {**old, "last_attempt_error": msg, "last_attempt_at": pipeline.now()}
        writing.write_json(path, summary)
        return run_dir
    summary = {
        **old,
        "run_dir": str(run_dir),
        "task": cfg.get("task", "generate"),
        "status": "failed",
        "error": msg,
        "error_type": type(exc).__name__,
        "failed_at": pipeline.now(),
    }
    if old.get("status") and old.get("status") != "failed":
        summary["previous_status"] = old["status"]
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():  # the report shows how a failed run's config differs
        try:
            OmegaConf.save(cfg, cfg_path, resolve=True)
        except Exception:  # an interpolation that cannot resolve: keep it as written
            OmegaConf.save(cfg, cfg_path, resolve=False)
    writing.write_json(path, summary)
    return run_dir


def run_status(run_dir: Path) -> str:
    """ "failed" also for a finished run whose last attempt in this sweep was refused."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "unreadable"
    return "failed" if summary.get("last_attempt_error") else summary.get("status", "unknown")


class SweepCallback(Callback):
    """Names a multirun's run dirs by the swept keys; at its end, compares the runs into the
    sweep dir (compare.auto) and exits 1 if one failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        task = [str(o) for o in config.hydra.overrides.task]
        parsed = OverridesParser.create().parse_overrides(task)
        _swept.clear()
        _swept.update(o.key_or_group for o in parsed if o.is_sweep_override())

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
        elif opts is not None and opts.get("auto", True):
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
        if locked_out:
            print(
                f"error: {len(locked_out)} job(s) found their run dir in use by another "
                f"process and did not run ({locked_out[0]})",
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

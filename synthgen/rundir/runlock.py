"""One writer per run dir: an exclusive lock held for the whole run (synthgen/rundir/lockfile.py).

`python run.py` takes the lock before Hydra writes `.hydra/` into the run dir (the
`LockRunDir` callback), so a refused second run changes nothing there. Jobs of a multirun
(shards) and tests that call `pipeline.run` take it in the task itself; `task=merge` locks
the merged dir it writes. Locks are re-entrant within a process (the CLI and the task both
ask for the same dir).
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from synthgen.errors import LockHeld, RunDirLocked
from synthgen.rundir.lockfile import LOCK_NAME, RunLock

__all__ = ["LOCK_NAME", "LockRunDir", "RunLock", "hold", "held", "let_go"]


# --- locks held by this process, by run dir (re-entrant: the CLI and the task both ask) -------

_held: dict[Path, tuple[RunLock, int]] = {}


def _key(run_dir: str | Path) -> Path:
    return Path(os.path.abspath(run_dir))


def hold(run_dir: str | Path) -> Path:
    """Take the run dir's lock (or count one more use of a lock this process holds)."""
    k = _key(run_dir)
    if k in _held:
        lock, n = _held[k]
        _held[k] = (lock, n + 1)
        return k
    try:
        _held[k] = (RunLock(k).acquire(), 1)
    except LockHeld as e:
        raise RunDirLocked(str(e)) from None
    return k


def let_go(run_dir: str | Path) -> None:
    k = _key(run_dir)
    if k not in _held:
        return
    lock, n = _held[k]
    if n > 1:
        _held[k] = (lock, n - 1)
    else:
        del _held[k]
        lock.release()


class held:
    """`with held(run_dir): ...` holds the lock for the block."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = run_dir

    def __enter__(self) -> Path:
        return hold(self.run_dir)

    def __exit__(self, *exc: object) -> None:
        let_go(self.run_dir)


@atexit.register
def _release_all() -> None:
    for lock, _ in list(_held.values()):
        lock.release()
    _held.clear()


class LockRunDir(Callback):
    """`python run.py`: lock hydra.run.dir before Hydra writes `.hydra/` into it.

    A refused run prints one line and exits 2 without touching the dir's files.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        # as run_job does right after this: the default hydra.run.dir uses ${hydra:...}, which
        # resolves only then (${now:...} is cached, so the time in the name is the same)
        HydraConfig.instance().set_config(config)
        run_dir = str(config.hydra.run.dir)
        try:
            hold(run_dir)
        except RunDirLocked as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        self.run_dir = run_dir

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if getattr(self, "run_dir", None):
            let_go(self.run_dir)

"""One writer per run dir: an exclusive lock held for the whole run.

The lock is `fcntl.flock` on `<run dir>/.lock`, a file that names its holder (pid, host,
start time, command) for the error line a second writer prints. The kernel drops a flock
when its process dies, SIGKILL included, so a lock file left behind by a killed run is stale
by construction: the next run takes it and says so in the log. Where a file system has no
flock, the holder line decides: a holder on this host whose pid is gone is stale.

`python run.py` takes the lock before Hydra writes `.hydra/` into the run dir (the
`LockRunDir` callback), so a refused second run changes nothing there. Jobs of a multirun
(shards) and tests that call `pipeline.run` take it in the task itself; `task=merge` locks
the merged dir it writes.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from synthgen.config import SynthgenError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class RunDirLocked(SynthgenError):
    """Another process writes this run dir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        return json.loads(raw) if raw else {}
    except (OSError, json.JSONDecodeError):
        return {}


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (no holder recorded yet)"
    cmd = " ".join(holder.get("argv", []))[:120]
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}" + (
        f" ({cmd})" if cmd else ""
    )


class RunLock:
    """An exclusive lock on one run dir. `acquire()` raises RunDirLocked if it is taken."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.stale: dict[str, Any] = {}  # holder of a lock left by a run that died

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # a releasing holder may unlink the file between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # we locked an unlinked file: try again on the new one
        else:  # pragma: no cover - needs 20 lost races in a row
            raise RunDirLocked(f"run dir {self.run_dir}: could not take {self.path}")
        self.stale = _read_holder(fd)
        if self.stale:
            log.warning(
                "%s: took over the lock of a run that stopped without releasing it (%s)",
                self.run_dir,
                describe(self.stale),
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "argv": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _read_holder(fd)
            gone = holder.get("host") == socket.gethostname() and not _alive(
                int(holder.get("pid", 0) or 0)
            )
            why = (
                "; that process is gone but a process it started still holds the lock"
                if gone and holder
                else ""
            )
            raise RunDirLocked(
                f"run dir {self.run_dir} is in use: locked by {describe(holder)}{why}; "
                "wait for it to finish or choose another hydra.run.dir"
            ) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        # no flock on this file system: the holder line decides (stale when its pid is gone)
        holder = _read_holder(fd)
        if holder and (holder.get("host") != socket.gethostname() or _alive(int(holder["pid"]))):
            raise RunDirLocked(
                f"run dir {self.run_dir} is in use: locked by {describe(holder)} "
                f"(no flock here; delete {self.path} if that run is gone); "
                "wait for it to finish or choose another hydra.run.dir"
            )

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)  # while still locked: a waiter retries on a new file
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


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
    else:
        _held[k] = (RunLock(k).acquire(), 1)
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

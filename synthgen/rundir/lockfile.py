"""The lock file of a run dir, in the standard library only (its synthgen imports, errors and
the run-dir names of synthgen/rundir/__init__.py, import nothing else): run.py checks it before
its imports; rundir/runlock.py holds it for a run.

`fcntl.flock` on `<run dir>/.lock`, a file that names its holder (pid, host, start time,
command) for the error line a second writer prints. The kernel drops a flock when its
process dies, SIGKILL included, so a lock file left behind by a killed run is stale by
construction: the next run takes it and says so in the log. Where a file system has no flock,
the holder line decides: a holder on this host whose pid is gone is stale.
"""

from __future__ import annotations

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

from synthgen.errors import LockHeld
from synthgen.rundir import LOCK as LOCK_NAME  # the run-dir contract spells the name

log = logging.getLogger("synthgen.rundir.runlock")


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


def in_use(run_dir: Path, holder: dict[str, Any], why: str = "") -> str:
    return (
        f"run dir {run_dir} is in use: locked by {describe(holder)}{why}; "
        "wait for it to finish or choose another hydra.run.dir"
    )


class RunLock:
    """An exclusive lock on one run dir. `acquire()` raises LockHeld if it is taken."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.stale: dict[str, Any] = {}  # holder of a lock left by a run that died
        # the highest folder that taking the lock created (the run dir or a parent): what a
        # command that leaves nothing behind removes again (cli.py); None: all were there
        self.created: Path | None = None

    def acquire(self) -> RunLock:
        missing = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.created = missing[-1] if missing else None
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
            raise LockHeld(f"run dir {self.run_dir}: could not take {self.path}")
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
            raise LockHeld(in_use(self.run_dir, holder, why)) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        # no flock on this file system: the holder line decides (stale when its pid is gone)
        holder = _read_holder(fd)
        if holder and (holder.get("host") != socket.gethostname() or _alive(int(holder["pid"]))):
            why = f" (no flock here; delete {self.path} if that run is gone)"
            raise LockHeld(in_use(self.run_dir, holder, why))

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


def refuse_early(argv: list[str]) -> None:
    """`python run.py ... hydra.run.dir=D` on a D another run holds: one line, exit 2, before
    the imports and the config (seconds on a busy machine). The LockRunDir callback is the
    real check; this only makes the refusal immediate."""
    if "-m" in argv or "--multirun" in argv:
        return
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if not dirs or "$" in dirs[-1]:
        return
    run_dir = Path(dirs[-1].strip("'\""))
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"error: {in_use(run_dir, _read_holder(fd))}", file=sys.stderr, flush=True)
        sys.exit(2)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Every exception synthgen defines, in one leaf module.

It imports nothing from synthgen, so any module (a backend, the run-dir lock, the config
checks) can raise these without importing the modules that catch them: errors sit at the
bottom of the import graph, never in a circle.
"""

from __future__ import annotations


class SynthgenError(Exception):
    """An error the user can fix; the CLI prints it as one line, without a traceback."""


class ConfigError(SynthgenError, ValueError):
    """A config value is wrong: one line naming its key ('model.dtype: ...').

    Also a ValueError: a backend's checks raised ValueError('key: why') before they raised
    this, so code that catches ValueError around a backend (a benchmark, a test) still does.
    """


class ModelLoadError(SynthgenError):
    """The model or tokenizer could not be loaded (missing, offline, gated)."""


class EndpointDown(SynthgenError):
    """The server stopped answering at all: the run stops, its rows kept for a resume."""


class RunDirLocked(SynthgenError):
    """Another process writes this run dir."""


class LockHeld(Exception):
    """Another process holds the lock (the message is the line to show).

    Not a SynthgenError: the lock file's own layer (rundir/lockfile.py) raises it, and
    rundir/runlock.py turns it into RunDirLocked for the CLI.
    """


class OutOfMemory(RuntimeError):
    """A backend ran out of accelerator memory on a batch; the caller halves the batch."""

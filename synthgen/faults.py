"""A test hook: `SYNTHGEN_FAULT=point:n` makes the process SIGKILL itself the n-th time it
passes the named point, so a fault test kills a run at a precise moment without sleeping.

Unset (always, outside tests), `point()` is one dict lookup. Points, in run order:
`read` (after each file is read), `clean`, `chunk`, `generate` (after each generate call,
before its results are handled), `question` (a question is on disk, its answer not yet
asked), `row` (after each row is written), `write` (after each end-of-run file), `summary`,
`done`; `merge` (after each file of a merge); `judge` (after each verdict is written).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SYNTHGEN_FAULT"
_passed: Counter[str] = Counter()


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, n = spec.partition(":")
    if target != name:
        return
    _passed[name] += 1
    if _passed[name] == int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)

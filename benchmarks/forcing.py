"""What the pipeline workload (benchmarks/workload.py) changes in synthgen's row-maker and engines,
kept here so that product code has no benchmark branch.

Random weights write the same garbage for every chunk: the parsers, the dedup and the gates
would reject most questions and no answer call would follow. The workload keeps its shape (every
question gets its answer call, every reply its drawn length) as a real model that passes the
gates would:

- AcceptAll: rows.RowMaker's reject policy that overrules every reject and counts it.
- Forced: a RowMaker whose jobs each carry their row's forced length (min = max new tokens).
- NoReuse: a backend whose vLLM requests each get their own cache_salt, so none reuses
  another's prefix on an engine started with prefix caching on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from synthgen.backends.base import Generated, GenParams
from synthgen.generate.feed import Job
from synthgen.generate.rows import AnswerAsk, RowMaker
from synthgen.records import Slot


class AcceptAll:
    """A reject policy that keeps everything: a question or answer the parser, the dedup or a
    gate would reject is kept as generated, and counted in `overridden` ("stage:reason")."""

    def __init__(self) -> None:
        self.overridden: Counter[str] = Counter()

    def stands(self, stage: str, reason: str) -> bool:
        self.overridden[f"{stage}:{reason}"] += 1
        return False


class Forced:
    """A RowMaker's jobs, each with its own settings: `params_for(stage, slot)` (each row's
    output length forced to a drawn value). The rest is the maker's own."""

    def __init__(self, maker: RowMaker, params_for: Callable[[str, Slot], GenParams]) -> None:
        self.maker, self.params_for = maker, params_for

    def __getattr__(self, name: str) -> Any:
        return getattr(self.maker, name)

    def force(self, jobs: list[Job]) -> list[Job]:
        for j in jobs:
            ask = j.payload
            slot = ask.slot if isinstance(ask, AnswerAsk) else ask.slots[0]
            j.params = self.params_for(j.stage, slot)
        return jobs

    def initial_jobs(self, *args: Any) -> list[Job]:
        return self.force(self.maker.initial_jobs(*args))

    def on_result(self, job: Job, out: Generated) -> list[Job]:
        return self.force(self.maker.on_result(job, out))


class NoReuse:
    """A backend whose streamed vLLM requests each get their own cache_salt (same engine, no
    prefix hit possible). Anything else is the backend's own."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def streamer(self, batch_size: int) -> Any:
        s = self.backend.streamer(batch_size)
        if s is not None:
            salt(s)
        return s


def salt(streamer: Any) -> Any:
    """A VllmStreamer whose every request carries its own cache_salt (its request id)."""
    plain = streamer.prompt

    def salted(rid: str, ids: list[int]) -> dict[str, Any]:
        return {**plain(rid, ids), "cache_salt": rid}

    streamer.prompt = salted
    return streamer

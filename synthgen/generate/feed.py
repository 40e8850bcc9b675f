"""The generation loop: feeds prompts to the backend, hands each result on, backs off on OOM.

Questions and answers share one queue. A finished question enqueues its answer, so rows
reach the JSONL files early and steadily instead of after every question of the split.
Two ways to feed a backend, one interface for the caller (`drive`):
- run_queue, batch by batch (the transformers engines): prompts sorted by length, answers as
  soon as a full batch of them is waiting; on OOM the batch halves.
- run_stream, continuously (a continuous-batching engine such as vLLM's): up to N requests
  in flight, each finished one handed to `on_result` at once and the jobs it spawns (the
  answer to a question) submitted straight away; on OOM the requests in flight go back to
  the queue and N halves. An engine that takes priorities gets answers ahead of the questions
  queued inside it; one that reports its KV cache (`kv_tokens`) gets no more in flight than
  their prompt + new tokens fit there, so a finished question's cached prefix outlives the
  wait for its answer.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from synthgen import faults
from synthgen.backends.base import BaseBackend, Generated, GenParams, Streamer
from synthgen.errors import OutOfMemory

log = logging.getLogger(__name__)


class GenerateFn(Protocol):
    def __call__(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]: ...


@dataclass
class Job:
    stage: str  # "question" or "answer"
    ids: list[int]  # prompt token ids, chat template applied
    payload: Any  # what the caller needs back with the result
    # this prompt's own settings (benchmarks force each row's output length); None = the run's
    params: GenParams | None = None


@dataclass
class Stats:
    prompts: dict[str, int] = field(default_factory=lambda: {"question": 0, "answer": 0})
    output_tokens: int = 0  # new tokens over all prompts (tokens)
    prompt_tokens: int = 0  # prompt tokens over all prompts, padding excluded (tokens)
    unfinished: int = 0  # outputs cut at max_new_tokens
    seconds: float = 0.0  # wall time inside the backend (s)
    batches: int = 0
    oom_retries: list[dict[str, int]] = field(default_factory=list)  # each halving: from, to
    batch_size: int = 0  # the batch size (batches) or most requests in flight (stream) at the end
    feed: str = "batches"  # batches = run_queue; stream = run_stream (seconds = its wall time)
    cached_tokens: int = 0  # prompt tokens whose KV came from a cached prefix (not prefilled)
    dropped: int = 0  # question jobs never started because `stop` said so (a timed benchmark)
    most_in_flight: int = 0  # stream: the most requests in flight at once
    kv_tokens: int = 0  # stream: the KV cache (tokens) the requests in flight were kept within

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0

    def count(self, job: Job, out: Generated) -> None:
        """One finished prompt."""
        self.prompts[job.stage] += 1
        self.output_tokens += out.tokens
        self.prompt_tokens += len(job.ids)
        self.cached_tokens += out.cached_tokens
        self.unfinished += not out.finished

    def halve(self, size: int, what: str) -> int:
        """After OutOfMemory at `size` (> 1): half of it, recorded in oom_retries. `what`
        names the size, "%d" where the number goes."""
        new = max(1, size // 2)
        log.warning(f"out of memory at {what}; retrying with {what}", size, new)
        self.oom_retries.append({"from": size, "to": new})
        return new


def _pick(pools: dict[str, list[Job]], batch_size: int) -> list[Job]:
    """Answers when a full batch waits or no question is left; else the longest questions."""
    answers, questions = pools["answer"], pools["question"]
    pool = answers if (len(answers) >= batch_size or not questions) else questions
    pool.sort(key=lambda j: len(j.ids), reverse=True)  # similar lengths -> little padding
    batch, pool[:] = pool[:batch_size], pool[batch_size:]
    return batch


Params = GenParams | Mapping[str, GenParams]  # one for every stage, or per stage
# run_stream's request priority per stage: vLLM schedules the lower value first
PRIORITY = {"answer": 0, "question": 1}


def for_stage(params: Params, stage: str) -> GenParams:
    """A stage's generation settings (its stop strings: a base model's question ends at '?')."""
    return params[stage] if isinstance(params, Mapping) else params


def _stop_questions(pools: Any, stop: Callable[[], bool] | None, stats: Stats) -> None:
    if stop is not None and pools["question"] and stop():
        stats.dropped += len(pools["question"])
        pools["question"].clear()


def batch_params(batch: list[Job], params: Params) -> GenParams | list[GenParams]:
    """One GenParams for the batch (one stage), or one per prompt where some job carries its
    own."""
    base = for_stage(params, batch[0].stage)
    if all(j.params is None for j in batch):
        return base
    return [j.params or base for j in batch]


@dataclass
class Feed:
    """What run_queue, run_stream and drive take beside the backend and the jobs: where each
    result goes, the settings, how many prompts at once, and the hooks around the loop."""

    on_result: Callable[[Job, Generated], list[Job]]  # persists a result; the jobs it opens
    params: Params  # one GenParams for every stage, or one per stage
    size: int  # prompts per batch (run_queue) or requests in flight (run_stream)
    progress: tqdm | None = None  # a bar whose postfix shows tok/s
    stats: Stats = field(default_factory=Stats)  # one Stats shared over the splits adds up
    after_batch: Callable[[], None] | None = None  # an fsync, once a batch's results are handled
    stop: Callable[[], bool] | None = None  # true: no new question starts (a timed benchmark)
    sync_seconds: float = 1.0  # run_stream: after_batch at most this often (seconds)


def run_queue(generate: GenerateFn, jobs: Iterable[Job], feed: Feed) -> Stats:
    """Run every job and every job its result spawns. `feed.on_result` persists each result,
    `feed.after_batch` (an fsync) runs once the batch's results are all handled. A batch holds
    one stage, with that stage's params.

    On OutOfMemory the batch size halves and the same prompts are tried again (recorded in
    stats.oom_retries); at batch size 1 the error propagates. Once `stop()` is true no new
    question starts (counted in stats.dropped); what was started, answers included, finishes.
    """
    stats, params, on_result, progress = feed.stats, feed.params, feed.on_result, feed.progress
    pools: dict[str, list[Job]] = {"question": [], "answer": []}
    for j in jobs:
        pools[j.stage].append(j)
    size = feed.size
    while pools["question"] or pools["answer"]:
        _stop_questions(pools, feed.stop, stats)
        if not (pools["question"] or pools["answer"]):
            break
        batch = _pick(pools, size)
        t0 = time.perf_counter()
        try:
            outs = generate([j.ids for j in batch], batch_params(batch, params))
        except OutOfMemory:
            if size == 1:
                raise
            size = stats.halve(size, "batch %d")
            for j in batch:  # back into the pool, nothing lost
                pools[j.stage].append(j)
            continue
        faults.point("generate")  # a batch generated, none of its results handled yet
        dt = time.perf_counter() - t0
        stats.seconds += dt
        stats.batches += 1
        for job, out in zip(batch, outs, strict=True):
            stats.count(job, out)
            for new_job in on_result(job, out):
                pools[new_job.stage].append(new_job)
        if feed.after_batch is not None:
            feed.after_batch()
        if progress is not None:
            progress.set_postfix(tok_s=f"{stats.tokens_per_second:.0f}", batch=size, refresh=False)
    stats.batch_size = size
    return stats


def run_stream(streamer: Streamer, jobs: Iterable[Job], feed: Feed) -> Stats:
    """Run every job and every job its result spawns through a continuous-batching engine,
    up to `feed.size` requests in flight.

    Answers go in before questions (they finish rows, and their chunk's prompt prefix was just
    computed), questions in the order given. `after_batch` (an fsync) runs at most every
    `sync_seconds` while results come in, and at the end. stats.seconds is the wall time of the
    whole loop: the engine works while results are handled, so there is no "inside" to time.
    Once `stop()` is true no new question starts; what was started finishes.
    """
    stats, after_batch, progress = feed.stats, feed.after_batch, feed.progress
    stats.feed = "stream"
    stream = _Stream(streamer, jobs, feed.params, max(1, int(feed.size)))
    base = stats.seconds  # a Stats shared over the splits adds up
    t0 = last_sync = last_bar = time.perf_counter()
    try:
        while stream.busy():
            _stop_questions(stream.pools, feed.stop, stats)
            if not stream.busy():
                break
            stream.fill()
            stats.most_in_flight = max(stats.most_in_flight, len(stream.in_flight))
            if not stream.step(stats, feed.on_result):  # out of memory: fewer in flight, same jobs
                continue
            now = time.perf_counter()
            if stream.unsynced and after_batch is not None and now - last_sync >= feed.sync_seconds:
                after_batch()
                last_sync, stream.unsynced = now, False
            if progress is not None and now - last_bar >= 0.5:
                stats.seconds = base + now - t0
                progress.set_postfix(
                    tok_s=f"{stats.tokens_per_second:.0f}",
                    in_flight=len(stream.in_flight),
                    refresh=False,
                )
                last_bar = now
    finally:
        if stream.unsynced and after_batch is not None:
            after_batch()  # what finished before an error is on disk too
        stats.seconds = base + time.perf_counter() - t0
    stats.batch_size = stream.size
    stats.kv_tokens = stream.budget
    return stats


class _Stream:
    """run_stream's queues: jobs waiting by stage, and up to `size` requests in flight.

    The streamer may take a priority per request (`priorities`, an optional attribute: vLLM's
    and the continuous engine's) and report a KV cache (`kv_tokens`, `kv_block`: tokens and
    the block they are allocated in) that the requests in flight must fit, each counted at its
    prompt + max_new_tokens rounded up to blocks. One request always goes in, whatever its size.
    """

    def __init__(self, streamer: Streamer, jobs: Iterable[Job], params: Params, size: int) -> None:
        self.streamer, self.params, self.size = streamer, params, size
        self.pools: dict[str, deque[Job]] = {"question": deque(), "answer": deque()}
        for j in jobs:
            self.pools[j.stage].append(j)
        self.in_flight: dict[int, Job] = {}
        self.keys = itertools.count()
        self.priorities = bool(getattr(streamer, "priorities", False))
        self.budget = int(getattr(streamer, "kv_tokens", 0) or 0)
        self.block = max(1, int(getattr(streamer, "kv_block", 1) or 1))
        self.need: dict[int, int] = {}  # key -> KV tokens the request may come to hold
        self.tokens = 0  # their sum over the requests in flight
        self.unsynced = False  # results handled since run_stream's last after_batch

    def busy(self) -> bool:
        return bool(self.pools["question"] or self.pools["answer"] or self.in_flight)

    def fill(self) -> None:
        """Submit waiting jobs, answers first, until `size` are in flight or the next one's
        tokens would not fit the KV cache."""
        while len(self.in_flight) < self.size and (self.pools["answer"] or self.pools["question"]):
            pool = self.pools["answer"] or self.pools["question"]
            job = pool[0]
            params = job.params or for_stage(self.params, job.stage)
            need = -(-(len(job.ids) + params.max_new_tokens) // self.block) * self.block
            if self.budget and self.in_flight and self.tokens + need > self.budget:
                return
            pool.popleft()
            key = next(self.keys)
            if self.priorities:
                self.streamer.add(key, job.ids, params, priority=PRIORITY[job.stage])
            else:
                self.streamer.add(key, job.ids, params)
            self.in_flight[key] = job
            self.need[key] = need
            self.tokens += need

    def finished(self, key: int) -> Job:
        """The job of a request the engine returned; its tokens leave the budget."""
        self.tokens -= self.need.pop(key)
        return self.in_flight.pop(key)

    def step(self, stats: Stats, on_result: Callable[[Job, Generated], list[Job]]) -> bool:
        """One engine step: each finished request's result goes to `on_result` (marking the
        feed unsynced) and the jobs it spawns are queued. Out of memory: what was in flight
        goes back, `size` halves, False (at size 1 it raises)."""
        try:
            done = self.streamer.step()
        except OutOfMemory:
            if self.size == 1:
                raise
            self.size = stats.halve(self.size, "%d requests in flight")
            self.put_back()
            return False
        stats.batches += 1  # engine steps
        for key, out in done:
            job = self.finished(key)
            stats.count(job, out)
            for new_job in on_result(job, out):
                self.pools[new_job.stage].append(new_job)
            self.unsynced = True
        return True

    def put_back(self) -> None:
        """After OutOfMemory: the engine drops what is in flight; it goes back in front."""
        self.streamer.abort()
        for job in reversed(list(self.in_flight.values())):  # nothing lost
            self.pools[job.stage].appendleft(job)
        self.in_flight.clear()
        self.need.clear()
        self.tokens = 0


def drive(backend: BaseBackend, jobs: Iterable[Job], feed: Feed) -> Stats:
    """Feed the jobs the backend's way: streamed where its `streamer()` offers an engine, else
    batched through `generate`.

    A streamer may want more requests in flight than the batch (`max_in_flight`: the
    continuous engine keeps a queue to refill its slots from).
    """
    streamer = backend.streamer(feed.size)
    if streamer is not None:
        size = getattr(streamer, "max_in_flight", None) or feed.size  # optional (Streamer)
        return run_stream(streamer, jobs, dataclasses.replace(feed, size=size))
    return run_queue(backend.generate, jobs, feed)

"""The generation loop: batches prompts by length, runs them, halves a batch on OOM.

Questions and answers share one queue. A finished question enqueues its answer, and
answers run as soon as a full batch of them is waiting, so rows reach the JSONL files
early and steadily instead of after every question of the split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from synthgen import faults
from synthgen.backends.base import Generated, GenParams, OutOfMemory

log = logging.getLogger(__name__)


class GenerateFn(Protocol):
    def __call__(self, batch: list[list[int]], params: GenParams) -> list[Generated]: ...


@dataclass
class Job:
    stage: str  # "question" or "answer"
    ids: list[int]  # prompt token ids, chat template applied
    payload: Any  # what the caller needs back with the result


@dataclass
class Stats:
    prompts: dict[str, int] = field(default_factory=lambda: {"question": 0, "answer": 0})
    output_tokens: int = 0  # new tokens over all prompts (tokens)
    prompt_tokens: int = 0  # prompt tokens over all prompts, padding excluded (tokens)
    unfinished: int = 0  # outputs cut at max_new_tokens
    seconds: float = 0.0  # wall time inside the backend (s)
    batches: int = 0
    oom_retries: list[dict[str, int]] = field(default_factory=list)  # each halving: from, to
    batch_size: int = 0  # the batch size in use at the end (prompts)

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0


def _pick(pools: dict[str, list[Job]], batch_size: int) -> list[Job]:
    """Answers when a full batch waits or no question is left; else the longest questions."""
    answers, questions = pools["answer"], pools["question"]
    pool = answers if (len(answers) >= batch_size or not questions) else questions
    pool.sort(key=lambda j: len(j.ids), reverse=True)  # similar lengths -> little padding
    batch, pool[:] = pool[:batch_size], pool[batch_size:]
    return batch


def run_queue(
    generate: GenerateFn,
    jobs: Iterable[Job],
    on_result: Callable[[Job, Generated], list[Job]],
    params: GenParams,
    batch_size: int,
    progress: tqdm | None = None,
    stats: Stats | None = None,
    after_batch: Callable[[], None] | None = None,
) -> Stats:
    """Run every job and every job its result spawns. `on_result` persists each result,
    `after_batch` (an fsync) runs once the batch's results are all handled.

    On OutOfMemory the batch size halves and the same prompts are tried again (recorded in
    stats.oom_retries); at batch size 1 the error propagates.
    """
    stats = stats or Stats()
    pools: dict[str, list[Job]] = {"question": [], "answer": []}
    for j in jobs:
        pools[j.stage].append(j)
    size = batch_size
    while pools["question"] or pools["answer"]:
        batch = _pick(pools, size)
        t0 = time.perf_counter()
        try:
            outs = generate([j.ids for j in batch], params)
        except OutOfMemory:
            if size == 1:
                raise
            new = max(1, size // 2)
            log.warning("out of memory at batch %d; retrying with batch %d", size, new)
            stats.oom_retries.append({"from": size, "to": new})
            size = new
            for j in batch:  # back into the pool, nothing lost
                pools[j.stage].append(j)
            continue
        faults.point("generate")  # a batch generated, none of its results handled yet
        dt = time.perf_counter() - t0
        stats.seconds += dt
        stats.batches += 1
        for job, out in zip(batch, outs, strict=True):
            stats.prompts[job.stage] += 1
            stats.output_tokens += out.tokens
            stats.prompt_tokens += len(job.ids)
            stats.unfinished += not out.finished
            for new_job in on_result(job, out):
                pools[new_job.stage].append(new_job)
        if after_batch is not None:
            after_batch()
        if progress is not None:
            progress.set_postfix(tok_s=f"{stats.tokens_per_second:.0f}", batch=size, refresh=False)
    stats.batch_size = size
    return stats

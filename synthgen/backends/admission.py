"""The continuous engine's admission, in pure Python (CPU-tested without torch): which waiting
prompt goes to which KV slot, with which cached prefix, in which prefill sub-batch, and when a
request is done. synthgen/backends/continuous.py runs the plans on the GPU."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from synthgen.backends.base import Generated, GenParams, mean_logprob

BLOCK = 16  # tokens per prefix-index block: the shortest prefix worth reusing


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixIndex:
    """Which slot holds the KV of a prompt's beginning: chained hashes of 16-token blocks
    (vLLM's prefix-cache idea at slot granularity), then an exact token comparison."""

    def __init__(self, block: int = BLOCK) -> None:
        self.block = block
        self.by_hash: dict[int, set[int]] = {}
        self.ids: dict[int, list[int]] = {}  # slot -> the prompt tokens whose KV it holds
        self.hashes: dict[int, list[int]] = {}

    def chain(self, ids: list[int]) -> list[int]:
        out, h = [], 0
        for k in range(len(ids) // self.block):
            h = hash((h, tuple(ids[k * self.block : (k + 1) * self.block])))
            out.append(h)
        return out

    def add(self, slot: int, ids: list[int]) -> None:
        self.remove(slot)
        hs = self.chain(ids)
        self.ids[slot], self.hashes[slot] = list(ids), hs
        for h in hs:
            self.by_hash.setdefault(h, set()).add(slot)

    def remove(self, slot: int) -> None:
        for h in self.hashes.pop(slot, []):
            found = self.by_hash.get(h)
            if found is not None:
                found.discard(slot)
                if not found:
                    del self.by_hash[h]
        self.ids.pop(slot, None)

    def clear(self) -> None:
        self.by_hash.clear()
        self.ids.clear()
        self.hashes.clear()

    def longest(
        self, ids: list[int], prefer: Callable[[int], bool] = lambda s: False
    ) -> tuple[int | None, int]:
        """(slot, tokens): the slot whose cached prompt shares the longest beginning with `ids`
        (at least one block; `prefer`red slots first among equals), or (None, 0)."""
        found: set[int] | None = None
        for h in self.chain(ids):
            nxt = self.by_hash.get(h)
            if not nxt:
                break
            found = nxt
        if not found:
            return None, 0
        slot = min(found, key=lambda s: (not prefer(s), s))
        n = common_prefix(ids, self.ids[slot])  # exact: a hash collision reuses nothing wrong
        return (slot, n) if n >= self.block else (None, 0)


@dataclass
class Request:
    key: int
    ids: list[int]
    params: GenParams
    slot: int = -1
    start: int = 0  # prompt tokens whose KV came from a cached prefix (not prefilled)
    src: int = -1  # the slot that prefix came from
    out: list[int] = field(default_factory=list)  # new tokens so far
    # ln p of each new token under the raw logits (base.mean_logprob), as `out`
    logps: list[float] = field(default_factory=list)
    priority: int = 0  # lower goes first: an answer (0) before the questions waiting (1)


def enqueue(waiting: deque[Request], r: Request) -> None:
    """Put `r` behind every waiting request of its priority or lower, ahead of the rest: an
    answer goes in before the questions queued earlier (its chunk's KV is still in a slot)."""
    i = len(waiting)
    while i and waiting[i - 1].priority > r.priority:
        i -= 1
    waiting.insert(i, r)


@dataclass
class Plan:
    """One admission: which waiting request goes to which free slot, with what prefix."""

    admitted: list[Request]
    copies: list[tuple[int, int, int]]  # (dst slot, src slot, tokens)


def plan_admission(
    waiting: list[Request],
    free: list[int],
    index: PrefixIndex | None,
    is_free: Callable[[int], bool],
) -> Plan:
    """Give free slots (oldest first) to waiting requests, the longest prefix matches first.

    A request whose prompt begins with a free slot's cached prompt takes that slot in place
    (its answer after its question); one matching a slot in use, or one already taken, gets
    another free slot and a copy of the matching KV. Longest first: a prompt that shares only
    the system text and chat header with a slot must not take the slot whose chunk an answer
    is waiting for. At least one prompt token is always left to prefill: its logits give the
    first new token.
    """
    matches: dict[int, tuple[int, int]] = {}
    if index is not None:
        for i, r in enumerate(waiting):
            slot, n = index.longest(r.ids, prefer=is_free)
            if slot is not None:
                matches[i] = (slot, min(n, len(r.ids) - 1))
    order = sorted(range(len(waiting)), key=lambda i: (-matches.get(i, (0, 0))[1], i))
    order = order[: len(free)]
    left = OrderedDict((s, None) for s in free)
    admitted: list[Request] = []
    copies: list[tuple[int, int, int]] = []
    for i in order:  # first pass: in place
        if i in matches and matches[i][0] in left:
            r = waiting[i]
            r.slot, r.src, r.start = matches[i][0], matches[i][0], matches[i][1]
            left.pop(r.slot)
            admitted.append(r)
    for i in order:  # then copies and fresh prompts, oldest free slot first
        r = waiting[i]
        if r.slot >= 0:
            continue
        r.slot = left.popitem(last=False)[0]
        if i in matches:
            r.src, r.start = matches[i]
            copies.append((r.slot, r.src, r.start))
        admitted.append(r)
    return Plan(admitted, copies)


def sub_batches(reqs: list[Request], budget: int) -> list[list[Request]]:
    """Requests by prefill length, longest first, in groups of at most `budget` padded tokens,
    the rows spread evenly over the groups a width needs (16 rows that need two forwards make
    8 + 8, not 15 + a lone one)."""
    reqs = sorted(reqs, key=lambda r: len(r.ids) - r.start, reverse=True)
    out: list[list[Request]] = []
    i = 0
    while i < len(reqs):
        width = max(1, len(reqs[i].ids) - reqs[i].start)
        fit = max(1, budget // width)  # rows of this width (or shorter) per forward
        groups = -(-(len(reqs) - i) // fit)
        n = -(-(len(reqs) - i) // groups)
        out.append(reqs[i : i + n])
        i += n
    return out


def finish(r: Request, eos: set[int], decode: Callable[[list[int]], str]) -> Generated | None:
    """The request's result once its last token is in, else None (it goes on)."""
    t, n = r.out[-1], len(r.out)
    if t in eos and n > r.params.min_new_tokens:  # the end token: not counted in the logprob
        return Generated(
            decode(r.out[:-1]), n, True, r.start, logprob=mean_logprob(r.logps[: n - 1])
        )
    if n >= r.params.max_new_tokens:
        return Generated(decode(r.out), n, False, r.start, logprob=mean_logprob(r.logps[:n]))
    return None

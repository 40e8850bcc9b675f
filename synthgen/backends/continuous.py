"""engine=continuous: continuous batching over a static KV cache, transformers' weights.

Why (benchmarks/RESULTS.md, ../shared/gpu/README.md, H100, Llama-3.1-8B shape, ~500-token
prompts): the static engine (`generate` with a static cache) prefilled ~14,300 prompt tokens/s
where vLLM did ~38,700. It holds every row of a batch until the batch's longest row ends, pads
the batch to its longest prompt, prefills the whole batch in one forward (8 GB MLP blocks at 256
rows), recompiles flex_attention for each new padded width, and recomputes a chunk's prompt for
its answer. This engine instead:
- keeps `slots` rows, each its own row of one KV tensor per layer ([slots, kv_heads, L,
  head_dim]) with its own position; a finished row's slot takes the next prompt at once;
- prefills new prompts in sub-batches of at most `prefill_tokens` tokens (right-padded,
  causal flash/sdpa attention, logits only at each row's last prompt token), eagerly: no
  compilation, any width;
- decodes one token for every slot per step, replayed from a CUDA graph (one per 256-token
  bucket of the longest row: the attention reads no more cache than that), each row's length
  its own mask;
- reuses prefixes (`reuse`, engine.enable_prefix_caching): a prompt that begins with a
  slot's cached prompt (a chunk's answer after its question: system text and chunk come first)
  takes that slot where it is free, else a copy of its KV, and prefills only the rest.

Attention runs in a function registered with transformers' AttentionInterface (stable across
transformers 4.48-5.x): the model's own modules compute q/k/v and RoPE, this function writes k/v
into the slots and attends. No transformers Cache object is used (its API changed between 5.17
and 5.24). Models whose attention needs more (Gemma-2's softcapping and sliding windows) are
refused with one line.

Admission (which prompt takes which slot, with which prefix) is pure Python in
synthgen/backends/admission.py, CPU-tested without torch; the attention function is in
synthgen/backends/slot_attention.py.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from synthgen.backends.admission import (
    PrefixIndex,
    Request,
    enqueue,
    finish,
    plan_admission,
    sub_batches,
)
from synthgen.backends.base import Generated, GenParams
from synthgen.backends.slot_attention import (
    ATTENTION,
    Ctx,
    attending,
    register_attention,
    unsupported,
)
from synthgen.errors import OutOfMemory

log = logging.getLogger(__name__)

KEY_STEP = 256  # decode attends to the cache up to the longest row, rounded up to this (tokens)


class SlotEngine:
    """synthgen.backends.base.Streamer: add() prompts, step() returns the finished ones.

    Answers wait ahead of questions (`priorities`: run_stream passes each request's priority),
    so one whose chunk is still in a slot takes it before a question can.
    """

    priorities = True

    def __init__(
        self,
        model: Any,
        eos: list[int],
        pad: int,
        decode: Callable[[list[int]], str],
        slots: int,
        limit: int,
        prefill_tokens: int = 8192,
        reuse: bool = True,
        graphs: bool | None = None,
        refill: int | None = None,
        reserve_new: int = 256,
    ) -> None:
        """slots: rows decoded together; limit: the most cache positions a slot may need
        (model.max_seq_length). The cache itself is sized from the first prompts (prompt +
        reserve_new new tokens, generation.max_new_tokens, with room for answers' longer
        prompts) and regrown, fewer slots in the same memory, when a longer prompt comes:
        admission pauses until the rows in flight are done, and cached prefixes are lost."""
        import torch

        why = unsupported(model.config)
        if why:
            raise ValueError(f"engine: continuous does not support {why}; use static")
        register_attention()
        model.set_attn_implementation(ATTENTION)
        self.model, self.base, self.head = model, model.base_model, model.get_output_embeddings()
        c = model.config.get_text_config()
        self.heads = c.num_attention_heads
        self.kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.layers = c.num_hidden_layers
        self.device = next(model.parameters()).device
        self.dtype = model.dtype
        self.eos, self.pad, self.decode = set(eos), int(pad), decode
        self.eos_t = torch.tensor(sorted(eos), device=self.device)
        self.limit, self.reserve_new = int(limit), int(reserve_new)
        self.prefill_tokens, self.reuse = int(prefill_tokens), bool(reuse)
        self.cuda = self.device.type == "cuda"
        self.graphs_on = self.cuda if graphs is None else graphs and self.cuda
        self.notes: list[str] = []
        self.stats = {"prompt_tokens": 0, "reused_tokens": 0, "copied_tokens": 0}
        self.stats |= {"prefill_forwards": 0, "decode_steps": 0, "admissions": 0}
        self.slots, self.max_len = int(slots), 0  # cache positions per slot: set by _allocate
        self.rows: list[Request | None] = []
        self.free: OrderedDict[int, None] = OrderedDict()
        self.index = PrefixIndex()
        self.k: list[Any] = []
        self.v: list[Any] = []
        self.refill = max(1, refill if refill is not None else self.slots // 16)
        self.max_in_flight = self.slots + max(1, self.slots // 4)  # run_stream keeps a queue here
        self.waiting: deque[Request] = deque()
        self.generator: Any = None
        self._pinned: list[Any] = []  # host buffers of copies in flight (see _device)

    # --- memory --------------------------------------------------------------------------

    def _allocate(self, slots: int, max_len: int) -> None:
        """The KV slots (the old ones go first); out of memory halves the slot count."""
        import torch

        self.k = self.v = []
        self.graphs: dict[int, tuple[Any, Any]] = {}
        if self.cuda:
            torch.cuda.empty_cache()
        while True:
            try:
                shape = (slots, self.kv_heads, max_len, self.head_dim)
                kw = {"dtype": self.dtype, "device": self.device}
                self.k = [torch.zeros(shape, **kw) for _ in range(self.layers)]
                self.v = [torch.zeros(shape, **kw) for _ in range(self.layers)]
                break
            except torch.cuda.OutOfMemoryError:
                self.k = self.v = []
                torch.cuda.empty_cache()
                if slots == 1:
                    raise OutOfMemory(f"no room for one slot of {max_len} tokens") from None
                self.notes.append(f"KV slots: out of memory at {slots}, trying {slots // 2}")
                slots //= 2
        if (slots, max_len) != (self.slots, self.max_len):
            log.info("continuous engine: %d slots of %d cache positions", slots, max_len)
        self.slots, self.max_len = slots, max_len  # the last position takes pads' writes
        self.rows = [None] * slots
        self.free = OrderedDict((s, None) for s in range(slots))
        self.index = PrefixIndex()
        self.pos = [max_len - 1] * slots  # cache position of each slot's next token
        self.last = [self.pad] * slots  # each slot's last token (the next decode input)
        z = {"dtype": torch.long, "device": self.device}
        self.d_ids = torch.full((slots, 1), self.pad, **z)
        self.d_pos = torch.full((slots, 1), max_len - 1, **z)
        self.d_rows = torch.arange(slots, **z)[:, None]
        self.key_range = torch.arange(max_len, **z)
        self.pool = torch.cuda.graph_pool_handle() if self.graphs_on else None

    def _fits(self, r: Request) -> bool:
        return len(r.ids) + r.params.max_new_tokens <= self.max_len - 1

    def _size_for(self, reqs: list[Request]) -> int:
        """Cache positions for these prompts: answers run ~25% longer than their questions."""
        most = max(self.reserve_new, *(r.params.max_new_tokens for r in reqs))
        need = max(int(len(r.ids) * 1.25) + most + 1 for r in reqs)
        need = max(need, max(len(r.ids) + r.params.max_new_tokens + 1 for r in reqs))
        return min(-(-need // 64) * 64, self.limit + 1)

    def reset_prefix(self) -> None:
        """Forget every cached prompt (benchmarks: each timed run starts cold)."""
        self.index.clear()

    # --- Streamer --------------------------------------------------------------------------

    def add(self, key: int, ids: list[int], params: GenParams, priority: int = 0) -> None:
        if len(ids) + params.max_new_tokens > self.limit:
            raise ValueError(
                f"engine: a {len(ids)}-token prompt and {params.max_new_tokens} new "
                f"tokens exceed model.max_seq_length ({self.limit})"
            )
        enqueue(self.waiting, Request(key, list(ids), params, priority=priority))

    def abort(self) -> None:
        self.waiting.clear()
        for s, r in enumerate(self.rows):
            if r is not None:
                self._release(s)
        self.index.clear()

    def step(self) -> list[tuple[int, Generated]]:
        import torch

        try:
            with torch.inference_mode():
                done = self._admit()
                if any(r is not None for r in self.rows):
                    done += self._decode_step()
            return done
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            raise OutOfMemory(str(e)) from e

    # --- admission and prefill -------------------------------------------------------------

    def _admit(self) -> list[tuple[int, Generated]]:
        if not self.waiting:
            return []
        busy = self.max_len and self.slots - len(self.free)
        fits = [r for r in self.waiting if self.max_len and self._fits(r)]
        if len(fits) < len(self.waiting):  # the cache must grow: drain, then reallocate
            if busy:
                return []
            size = self._size_for(list(self.waiting))
            if self.max_len:
                self.notes.append(f"KV slots regrown from {self.max_len} to {size} positions")
            slots = self.slots if not self.max_len else max(1, self.slots * self.max_len // size)
            self._allocate(slots, size)
            fits = list(self.waiting)
        if not self.free or (busy and len(self.free) < min(self.refill, len(fits))):
            return []  # wait for a few slots: one prefill forward for several prompts
        self.stats["admissions"] += 1
        plan = plan_admission(fits, list(self.free), self.index if self.reuse else None, self._free)
        taken = {id(r) for r in plan.admitted}
        self.waiting = deque(r for r in self.waiting if id(r) not in taken)
        self._copy(plan.copies)  # before any prefill overwrites a source slot
        for r in plan.admitted:
            self.free.pop(r.slot)
            self.index.remove(r.slot)
            self.rows[r.slot] = r
            self.stats["prompt_tokens"] += len(r.ids)
            self.stats["reused_tokens"] += r.start
        forwards = []  # every sub-batch's forward is queued before the first read-back
        for fresh in (True, False):
            group = [r for r in plan.admitted if (r.start == 0) == fresh]
            for batch in sub_batches(group, self.prefill_tokens):
                forwards.append((batch, self._prefill(batch, fresh)))
        done: list[tuple[int, Generated]] = []
        for batch, logits in forwards:
            done += self._first_tokens(batch, logits)
        self._pinned.clear()
        for r in plan.admitted:
            self.index.add(r.slot, r.ids)  # its prompt's KV is there now, finished or not
        return done

    def _free(self, slot: int) -> bool:
        return slot in self.free

    def _copy(self, copies: list[tuple[int, int, int]]) -> None:
        import torch

        if not copies:
            return
        n = max(c[2] for c in copies)  # a row's extra positions are past its length: masked
        dst = torch.tensor([c[0] for c in copies], device=self.device)
        src = torch.tensor([c[1] for c in copies], device=self.device)
        with torch.inference_mode():
            for cache in (*self.k, *self.v):
                cache[dst, :, :n] = cache[src, :, :n]
        self.stats["copied_tokens"] += sum(c[2] for c in copies)

    def _device(self, t: Any) -> Any:
        """A host tensor on the GPU without a blocking copy (pinned, kept until the next sync),
        so the host queues the next prefill forward while the GPU runs this one."""
        if not self.cuda:
            return t
        t = t.pin_memory()
        self._pinned.append(t)
        return t.to(self.device, non_blocking=True)

    def _prefill(self, batch: list[Request], fresh: bool) -> Any:
        """One forward for the batch's prompt tokens after their cached prefix: the logits of
        each row's last prompt token [R, vocab], not yet read back (see _first_tokens)."""
        import torch

        width = max(len(r.ids) - r.start for r in batch)
        last = self.max_len - 1
        ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
        pos = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            tail = r.ids[r.start :]
            ids[i, : len(tail)] = torch.tensor(tail)
            pos[i] = torch.arange(r.start, r.start + width).clamp(max=last)  # pads: harmless
        ids, pos = self._device(ids), self._device(pos)
        rows = self._device(torch.tensor([r.slot for r in batch]))
        ends = self._device(torch.tensor([len(r.ids) - r.start - 1 for r in batch]))
        ctx = Ctx(self.k, self.v, rows[:, None], pos, fresh)
        if not fresh:
            keys = min(self.max_len, -(-max(len(r.ids) for r in batch) // 64) * 64)
            visible = self.key_range[:keys][None, None, :] <= pos[:, :, None]  # [R, W, keys]
            group = self.heads // self.kv_heads
            ctx.mask = visible[:, None, None].expand(len(batch), 1, group, width, keys)
            ctx.mask = ctx.mask.reshape(len(batch), 1, group * width, keys)
            ctx.gather, ctx.keys = rows, keys
        with torch.inference_mode(), attending(ctx):
            hidden = self.base(input_ids=ids, position_ids=pos, use_cache=False)
            h = hidden.last_hidden_state[torch.arange(len(batch), device=self.device), ends]
            logits = self.head(h).float()
        self.stats["prefill_forwards"] += 1
        return logits

    def _first_tokens(self, batch: list[Request], logits: Any) -> list[tuple[int, Generated]]:
        return self._advance(batch, *self._sample(logits, batch))

    def _advance(
        self, reqs: list[Request], tokens: list[int], logps: list[float]
    ) -> list[tuple[int, Generated]]:
        """Each request's new token (and its log-probability): a finished one gives its result
        and frees its slot, the others decode on from that token's cache position."""
        done = []
        for r, t, lp in zip(reqs, tokens, logps, strict=True):
            r.out.append(t)
            r.logps.append(lp)
            res = finish(r, self.eos, self.decode)
            if res is not None:
                done.append((r.key, res))
                self._release(r.slot)
            else:
                self.pos[r.slot] = len(r.ids) + len(r.out) - 1
                self.last[r.slot] = t
        return done

    # --- decode ----------------------------------------------------------------------------

    def _decode_step(self) -> list[tuple[int, Generated]]:
        import torch

        active = [r for r in self.rows if r is not None]
        longest = max(self.pos[r.slot] for r in active) + 1
        keys = min(self.max_len, -(-longest // KEY_STEP) * KEY_STEP)
        self.d_ids.copy_(torch.tensor(self.last, dtype=torch.long)[:, None])
        self.d_pos.copy_(torch.tensor(self.pos, dtype=torch.long)[:, None])
        logits = self._replay(keys)[[r.slot for r in active]]
        self.stats["decode_steps"] += 1
        return self._advance(active, *self._sample(logits, active))

    def _forward_decode(self, keys: int) -> Any:
        """Every slot's next-token logits [slots, vocab] (float32) from d_ids at d_pos."""
        visible = self.key_range[:keys][None, :] <= self.d_pos  # [slots, keys]
        group = self.heads // self.kv_heads
        mask = visible[:, None, None, :].expand(self.slots, 1, group, keys)
        ctx = Ctx(self.k, self.v, self.d_rows, self.d_pos, False, None, mask, keys)
        with attending(ctx):
            hidden = self.base(input_ids=self.d_ids, position_ids=self.d_pos, use_cache=False)
        return self.head(hidden.last_hidden_state[:, -1]).float()

    def _replay(self, keys: int) -> Any:
        import torch

        with torch.inference_mode():
            if not self.graphs_on:
                return self._forward_decode(keys)
            if keys not in self.graphs:
                try:
                    self.graphs[keys] = self._capture(keys)
                except Exception as e:  # eager decode still works, only slower
                    first = str(e).splitlines()[0][:200] if str(e) else ""
                    note = f"CUDA graph capture failed ({type(e).__name__}: {first}); eager decode"
                    log.warning(note)
                    self.notes.append(note)
                    self.graphs_on = False
                    return self._forward_decode(keys)
            graph, out = self.graphs[keys]
            graph.replay()
            return out

    def _capture(self, keys: int) -> tuple[Any, Any]:
        """Record the decode step at this key length. The warm-up runs write the same k/v
        as the real step will (same tokens, same positions): capturing mid-run is safe."""
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._forward_decode(keys)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = self._forward_decode(keys)
        log.info("continuous engine: decode graph for %d cache positions recorded", keys)
        return graph, out

    # --- tokens ----------------------------------------------------------------------------

    def _sample(self, logits: Any, reqs: list[Request]) -> tuple[list[int], list[float]]:
        """Greedy or temperature/top-p; end tokens held back below each row's min_new_tokens.

        Also each chosen token's log-probability under the raw logits (base.mean_logprob):
        the log-normalizer is taken before the end tokens are masked and without temperature,
        and the chosen token's own logit is never one the masking touched. One read-back for
        tokens and log-probabilities together.
        """
        import torch

        norm = torch.logsumexp(logits, -1)  # [R]: the raw distribution's log-normalizer
        early = [i for i, r in enumerate(reqs) if len(r.out) < r.params.min_new_tokens]
        if early:
            rows = torch.tensor(early, device=logits.device)
            logits[rows[:, None], self.eos_t[None, :]] = -float("inf")
        p = reqs[0].params
        if not p.do_sample:
            tokens = logits.argmax(-1)
        else:
            if self.generator is None:
                self.generator = torch.Generator(device=logits.device).manual_seed(int(p.seed))
            probs = torch.softmax(logits / float(p.temperature), -1)
            if p.top_p < 1:
                sorted_p, order = probs.sort(-1, descending=True)
                outside = sorted_p.cumsum(-1) - sorted_p > float(p.top_p)
                sorted_p[outside] = 0
                probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
            tokens = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
        logps = logits.gather(1, tokens[:, None])[:, 0] - norm
        # token ids are exact in float64 (< 2**53): one tensor, one copy to the host
        both = torch.stack([tokens.to(torch.float64), logps.to(torch.float64)]).tolist()
        return [int(t) for t in both[0]], both[1]

    def _release(self, slot: int) -> None:
        """The slot is free; its prompt's KV stays for a prompt that begins the same way."""
        self.rows[slot] = None
        self.pos[slot], self.last[slot] = self.max_len - 1, self.pad
        self.free[slot] = None
        self.free.move_to_end(slot)  # the newest free slot is given out last

    def generate(self, batch: list[list[int]], params: GenParams | list[GenParams]) -> list:
        """A whole batch through the engine (callers without run_stream)."""
        per = params if isinstance(params, list) else [params] * len(batch)
        for i, (ids, p) in enumerate(zip(batch, per, strict=True)):
            self.add(i, ids, p)
        got: dict[int, Generated] = {}
        while len(got) < len(batch):
            got.update(self.step())
        return [got[i] for i in range(len(batch))]

    def close(self) -> None:
        self.graphs = {}
        self.k = self.v = []
        try:
            self.model.set_attn_implementation("sdpa")
        except Exception as e:  # closing must never hide the run's own result
            log.debug("attention back to sdpa: %s", e)

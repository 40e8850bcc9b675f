"""engine=vllm: vLLM runs the prompts synthgen rendered and tokenized itself.

Both backends use it: transformers builds a `vllm.LLM`, unsloth takes the one Unsloth builds
for `fast_inference=True` (`model.vllm_engine`). Prompts go in as token ids (the chat
template and end-of-turn tokens are synthgen's, as for the other engines) and the new token
ids come back undecoded (`detokenize=False`): synthgen decodes them with its own tokenizer,
so the text matches what the transformers engines give.

Two ways to feed it (`engine.feed`), both measured by benchmarks/generation.py:
- stream: `VllmStreamer` on vLLM's engine step API (`llm.llm_engine.add_request`, `step`),
  driven by synthgen.generate.feed.run_stream: up to `batch_size` requests in flight, each
  finished one written at once and its answer submitted straight away (the answer's prompt
  starts with the question prompt's chunk, which vLLM's prefix cache then reuses).
  For that reuse to survive a full KV cache (an 80 GB card: 6% of prompt tokens cached with
  2,048 requests in flight, where an H200 cached 30%), the engine runs with
  `scheduling_policy="priority"` and answers get a lower priority value than questions (vLLM
  schedules the lower value first), so an answer never waits behind the questions queued
  before it; and, with prefix caching on, the requests in flight are kept within the KV cache
  vLLM reports (`kv_capacity`: their prompt + new tokens, in blocks), so nothing in flight
  evicts the blocks of a chunk whose answer is on its way.
- waves: `llm.generate` on `batch_size` prompts at a time, through run_queue.

vLLM API as of 0.26.0 (vllm/entrypoints/llm.py, vllm/v1/engine/llm_engine.py): LLMEngine.
add_request(request_id, prompt, params, ..., priority=0), step() -> [RequestOutput],
abort_request(ids); after start, llm_engine.vllm_config.cache_config holds num_gpu_blocks,
block_size and kv_cache_size_tokens (per engine, hybrid-attention aware), and
scheduler_config.policy ("fcfs" | "priority"; a priority is ignored under fcfs);
RequestOutput.request_id is the id given to add_request, .finished, .outputs[0].token_ids
(the stop token included) and .finish_reason ("stop" | "length" | ...). With
SamplingParams(logprobs=0), .outputs[0].logprobs holds, per new token, a dict token id ->
Logprob(.logprob, ...) with the sampled token in it (a list of dicts, or vllm.logprobs.
FlatLogprobs, which reads as one); vLLM's default logprobs_mode (raw_logprobs) computes them
from the raw logits, before temperature, top-p or min_tokens: Generated.logprob's definition
(synthgen/backends/base.py, mean_logprob).

Everything above the `--- vLLM itself ---` line is pure and CPU-tested without vLLM.
"""

from __future__ import annotations

import itertools
import logging
import os
import zlib
from collections.abc import Callable
from typing import Any

from synthgen.backends.base import Generated, GenParams, ModelSpec, mean_logprob
from synthgen.errors import ConfigError, OutOfMemory, SynthgenError
from synthgen.schema import engine as schema_engine

log = logging.getLogger(__name__)

FEEDS = schema_engine.FEEDS  # engine.feed
_IDS = itertools.count()  # request ids unique over the process, whatever the caller's keys


def request_seed(seed: int, ids: list[int]) -> int:
    """A sampling seed per prompt: the same text for the same prompt whatever the batch."""
    return (int(seed) * 1_000_003 + zlib.crc32(repr(ids).encode())) % 2**31


def sampling_kwargs(params: GenParams, eos: list[int], ids: list[int] | None = None) -> dict:
    """GenParams -> vllm.SamplingParams keyword arguments.

    Greedy is temperature 0; sampling gets temperature, top_p and a per-prompt seed (when the
    prompt is given). min_tokens holds the end-of-turn tokens back as min_new_tokens does.
    logprobs=0: the sampled token's log-probability only, no alternatives (Generated.logprob).
    """
    kw: dict[str, Any] = {
        "n": 1,
        "max_tokens": int(params.max_new_tokens),
        "min_tokens": int(params.min_new_tokens),
        "stop_token_ids": sorted(int(i) for i in eos),
        "detokenize": False,  # decoded by synthgen's tokenizer, as for every engine
        "logprobs": 0,
    }
    if params.stop_strings:  # a base model's reply ends at one; kept in the text as in transformers
        kw.update(stop=list(params.stop_strings), include_stop_str_in_output=True, detokenize=True)
    if params.do_sample:
        kw.update(temperature=float(params.temperature), top_p=float(params.top_p))
        if ids is not None:
            kw["seed"] = request_seed(params.seed, ids)
    else:
        kw.update(temperature=0.0, top_p=1.0)
    return kw


def llm_kwargs(
    spec: ModelSpec,
    dtype: str,
    four_bit: bool,
    gpu_memory_utilization: float,
    enable_prefix_caching: bool,
    seed: int,
    prequantized: bool = False,
) -> dict:
    """vllm.LLM keyword arguments for a model spec (dtype as a torch dtype name)."""
    kw: dict[str, Any] = {
        "model": spec.name_or_path,
        "dtype": dtype,
        "max_model_len": int(spec.max_seq_length),
        "gpu_memory_utilization": float(gpu_memory_utilization),
        "enable_prefix_caching": bool(enable_prefix_caching),
        "seed": int(seed),
    }
    if four_bit and not prequantized:  # quantized in flight; a bnb checkpoint is detected
        kw["quantization"] = "bitsandbytes"
    kw["scheduling_policy"] = "priority"  # answers before queued questions (module docstring)
    return kw


def sampled_logprobs(token_ids: list[int], logprobs: Any) -> list[float] | None:
    """Each new token's log-probability from CompletionOutput.logprobs (one dict token id ->
    Logprob per position, the sampled token always among them; a list of dicts or vLLM's
    FlatLogprobs); None where vLLM gave none, fewer positions than tokens, or a position
    without its sampled token."""
    if logprobs is None or len(logprobs) < len(token_ids):
        return None
    out: list[float] = []
    for t, at in zip(token_ids, logprobs, strict=False):
        lp = at.get(t) if at else None
        if lp is None:
            return None
        out.append(float(getattr(lp, "logprob", lp)))
    return out


def to_generated(
    token_ids: list[int],
    finish_reason: str | None,
    eos: set[int],
    decode: Callable,
    stop_strings: list[str] | None = None,
    cached: int | None = 0,
    logprobs: Any = None,
) -> Generated:
    """New token ids -> Generated, cut at the first end-of-turn token like the other engines.

    vLLM keeps the stop token in token_ids; if a version drops it, finish_reason "stop" still
    counts the turn as finished, and its end token, as the transformers engines count it. A
    stop string stays in the text, which ends right after it (its last token may hold more).
    cached: RequestOutput.num_cached_tokens, the prompt tokens its prefix cache supplied.
    logprobs: CompletionOutput.logprobs; the logprob is the mean over the kept tokens (the end
    token not counted), None without them.
    """
    end = next((i for i, t in enumerate(token_ids) if t in eos), None)
    kept = token_ids if end is None else token_ids[:end]
    finished = end is not None or finish_reason == "stop"
    text = decode(kept)
    cached = int(cached or 0)
    lp = mean_logprob(sampled_logprobs(kept, logprobs) or [])
    hits = [(text.find(s), s) for s in stop_strings or [] if s and s in text]
    if hits:
        at, s = min(hits)
        text = text[: at + len(s)]
        if end is None:  # the stop string, not an end token, ended it: no end token to count
            return Generated(text, len(kept), True, cached, logprob=lp)
    return Generated(text, len(kept) + finished, finished, cached, logprob=lp)


def in_flight_limit(llm: Any, default: int = 512) -> int:
    """batch_size=auto: twice the sequences vLLM schedules at once, so it never runs dry."""
    try:
        seqs = int(llm.llm_engine.vllm_config.scheduler_config.max_num_seqs)
    except (AttributeError, TypeError, ValueError):
        return default
    return max(2 * seqs, 1)


def kv_capacity(llm: Any) -> tuple[int, int] | None:
    """(tokens, block size) of the KV cache vLLM allocated, as its engine reports after start:
    kv_cache_size_tokens where vLLM gives it (right for models mixing sliding-window and full
    attention, such as Gemma 3), else num_gpu_blocks * block_size. None where unknown (an
    engine that reports neither keeps the count limit alone) or where prefix caching is off:
    then no cached block is worth keeping, and a budget would only leave the cache part idle
    at the end of a batch (the prompts workload: 768 prompts of ~630 tokens, ~480k, where an
    80 GB card holds ~444k)."""
    try:
        cache = llm.llm_engine.vllm_config.cache_config
        if not getattr(cache, "enable_prefix_caching", False):
            return None
        block = int(getattr(cache, "block_size", None) or 16)
        tokens = getattr(cache, "kv_cache_size_tokens", None)
        tokens = int(tokens or int(getattr(cache, "num_gpu_blocks", None) or 0) * block)
    except (AttributeError, TypeError, ValueError):
        return None
    return (tokens, block) if tokens > 0 else None


def scheduling_policy(llm: Any) -> str:
    """The engine's scheduling policy ("fcfs" where unknown: Unsloth builds its own engine)."""
    try:
        return str(llm.llm_engine.vllm_config.scheduler_config.policy)
    except AttributeError:
        return "fcfs"


def one_line(e: BaseException) -> str:
    first = " ".join(str(e).split())[:300]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


class VllmStreamer:
    """synthgen.backends.base.Streamer over vLLM's LLMEngine (add_request, step, abort).

    `priorities`: run_stream passes each request's priority (answers first); `kv_tokens`,
    `kv_block`: the KV cache it keeps the requests in flight within (0: no such limit).
    """

    def __init__(
        self,
        llm: Any,
        sampling: Callable[[GenParams, list[int]], Any],
        finish: Callable[..., Generated],
        priorities: bool = True,
        kv_budget: bool = True,
    ) -> None:
        """priorities, kv_budget: off, the feed is the first-come first-served one of before
        (benchmarks compare)."""
        self.engine = llm.llm_engine
        self.priorities = priorities
        capacity = kv_capacity(llm) if kv_budget else None
        self.kv_tokens, self.kv_block = capacity or (0, 1)
        # the renderer LLM.generate itself uses for a prompt, where this vLLM has it
        self.render = getattr(llm, "_preprocess_cmpl_one", None)
        self.sampling, self.finish = sampling, finish
        self.live: dict[str, int] = {}  # request id -> the caller's key
        self.stops: dict[str, list[str]] = {}  # request id -> its stop strings, where it has some

    def add(self, key: int, ids: list[int], params: GenParams, priority: int = 0) -> None:
        """priority: vLLM schedules the lower value first (under its priority policy)."""
        rid = f"synthgen-{next(_IDS)}"
        prompt: Any = self.prompt(rid, ids)
        if callable(self.render):
            prompt = self.render(prompt)
        try:
            self.engine.add_request(rid, prompt, self.sampling(params, ids), priority=priority)
        except Exception as e:  # a dead engine says so here first
            raise translate(e) from e
        self.live[rid] = key
        if params.stop_strings:
            self.stops[rid] = list(params.stop_strings)

    def prompt(self, rid: str, ids: list[int]) -> dict[str, Any]:
        """The request's prompt as vLLM takes it (a benchmark adds its cache_salt here)."""
        return {"prompt_token_ids": list(ids)}

    def step(self) -> list[tuple[int, Generated]]:
        try:
            outs = self.engine.step()
        except Exception as e:
            raise translate(e) from e
        done = []
        for o in outs:
            if not getattr(o, "finished", False):
                continue
            key = self.live.pop(o.request_id, None)
            if key is None:
                continue
            c = o.outputs[0]
            stops = self.stops.pop(o.request_id, None)
            cached = getattr(o, "num_cached_tokens", 0)
            args = (list(c.token_ids), c.finish_reason, cached, *([stops] if stops else []))
            done.append((key, self.finish(*args, logprobs=getattr(c, "logprobs", None))))
        return done

    def abort(self) -> None:
        if self.live:
            self.engine.abort_request(list(self.live))
        self.live.clear()
        self.stops.clear()


def translate(e: BaseException) -> BaseException:
    """CUDA out of memory -> OutOfMemory (the caller backs off); a dead engine -> one line."""
    if type(e).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(e):
        return OutOfMemory(str(e))
    if type(e).__name__ == "EngineDeadError":
        return SynthgenError(
            f"engine: the vLLM engine stopped ({one_line(e)}); rows so far are kept, "
            "the same command resumes; if it ran out of memory lower "
            "engine.gpu_memory_utilization"
        )
    return e


# --- vLLM itself (GPU only; not exercised by the CPU tests) ------------------------------------


def sampling_params(params: GenParams, eos: list[int], ids: list[int] | None = None) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        **sampling_kwargs(params, eos, ids), output_kind=RequestOutputKind.FINAL_ONLY
    )


def spawn_workers() -> str | None:
    """Call before anything builds a vLLM engine (vllm.LLM, Unsloth's fast_inference).

    vLLM starts its engine-core process with VLLM_WORKER_MULTIPROC_METHOD (fork unless set). A
    fork of a process whose CUDA is initialised (a memory check, 4-bit sizing, a benchmark's
    checkpoint builder) fails in the child: "Cannot re-initialize CUDA in forked subprocess".
    vLLM's own guard only looks at the parent, and a forked child that initialises CUDA while
    importing failed the same way, so unset means spawn here, as `vllm serve` does itself;
    spawn costs a few seconds of imports at engine start. An explicit fork is kept while CUDA
    is untouched; with CUDA initialised it cannot work, so it becomes spawn, with a warning
    and a note (returned) rather than an error: the run goes on either way.
    """
    import torch

    var = "VLLM_WORKER_MULTIPROC_METHOD"
    method = os.environ.get(var)
    if method is None:
        os.environ[var] = "spawn"
        return None
    if method == "fork" and torch.cuda.is_initialized():
        os.environ[var] = "spawn"
        note = f"{var}=fork cannot start vLLM once CUDA is initialised here: using spawn"
        log.warning(note)
        return note
    return None


def make_llm(**kwargs: Any) -> Any:
    """vllm.LLM(**kwargs); an engine that cannot start is one line naming the key to change."""
    spawn_workers()
    from vllm import LLM

    log.info("starting vLLM: %s", kwargs)
    try:
        return LLM(**kwargs)
    except Exception as e:
        text = str(e).lower()
        if "memory" in text or "cache blocks" in text or "kv cache" in text:
            raise ConfigError(
                f"engine.gpu_memory_utilization: vLLM could not start ({one_line(e)}); "
                "free the GPU, change engine.gpu_memory_utilization, lower "
                "model.max_seq_length or set model.load_in_4bit=true"
            ) from None
        raise


class VllmRunner:
    """What the backends call: a wave through `llm.generate`, or a streamer on its engine."""

    def __init__(self, llm: Any, tokenizer: Any, eos: list[int], feed: str) -> None:
        self.llm, self.tokenizer, self.feed = llm, tokenizer, feed
        self.eos, self.eos_set = list(eos), set(eos)
        # benchmarks switch these off to measure the feed of before: first come, first served,
        # as many in flight as the count limit allows, whatever the KV cache holds
        self.answers_first = True
        self.kv_budget = True
        self._greedy: dict[tuple, Any] = {}  # one SamplingParams per GenParams when greedy

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def finish(
        self,
        token_ids: list[int],
        reason: str | None,
        cached: int | None = 0,
        stop_strings: list[str] | None = None,
        logprobs: Any = None,
    ) -> Generated:
        return to_generated(
            token_ids, reason, self.eos_set, self.decode, stop_strings, cached, logprobs
        )

    def sampling(self, params: GenParams, ids: list[int]) -> Any:
        if params.do_sample:
            return sampling_params(params, self.eos, ids)
        key = (params.max_new_tokens, params.min_new_tokens, tuple(params.stop_strings))
        if key not in self._greedy:
            self._greedy[key] = sampling_params(params, self.eos)
        return self._greedy[key]

    def streamer(self) -> VllmStreamer | None:
        if self.feed != "stream":
            return None
        return VllmStreamer(
            self.llm, self.sampling, self.finish, self.answers_first, self.kv_budget
        )

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        prompts = [{"prompt_token_ids": list(ids)} for ids in batch]
        per_row = params if isinstance(params, list) else [params] * len(batch)
        sps = [self.sampling(p, ids) for p, ids in zip(per_row, batch, strict=True)]
        try:
            outs = self.llm.generate(prompts, sps, use_tqdm=False)
        except Exception as e:
            raise translate(e) from e
        return [
            self.finish(
                list(o.outputs[0].token_ids),
                o.outputs[0].finish_reason,
                getattr(o, "num_cached_tokens", 0),
                p.stop_strings,
                getattr(o.outputs[0], "logprobs", None),
            )
            for o, p in zip(outs, per_row, strict=True)
        ]

    def batch_size(self) -> int:
        return in_flight_limit(self.llm)

    def feed_note(self) -> str:
        """How the stream feed orders and sizes the requests (summary.json's engine notes)."""
        capacity = kv_capacity(self.llm) if self.kv_budget else None
        policy = scheduling_policy(self.llm)
        order = "answers first" if self.answers_first and policy == "priority" else "FCFS"
        size = (
            f"within the KV cache of {capacity[0]:,} tokens (prompt + new tokens each)"
            if capacity
            else "by count only (no KV cache size, or prefix caching off)"
        )
        return f"vLLM feed: {order} (scheduling_policy={policy}), requests in flight {size}"

    def close(self) -> None:
        llm, self.llm = self.llm, None
        try:
            engine = getattr(llm, "llm_engine", None)
            core = getattr(engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()  # the engine-core process lets go of the GPU now
        except Exception as e:  # closing must never hide the run's own result
            log.warning("vLLM shutdown: %s", one_line(e))
        del llm

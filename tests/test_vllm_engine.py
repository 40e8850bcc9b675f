"""The vllm engine's CPU-checkable parts: the parameter mapping, the result conversion, the
streamed feeding (run_stream) and the adapter on vLLM's engine step API, with stand-ins for
vLLM's objects shaped as vllm 0.26 has them. vLLM itself runs only on the GPU machine
(benchmarks/gpu_session.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from benchmarks.forcing import salt
from synthgen.backends.base import Generated, GenParams, ModelSpec
from synthgen.backends.vllm_engine import (
    VllmRunner,
    VllmStreamer,
    in_flight_limit,
    kv_capacity,
    llm_kwargs,
    request_seed,
    sampled_logprobs,
    sampling_kwargs,
    to_generated,
    translate,
)
from synthgen.errors import OutOfMemory, SynthgenError
from synthgen.generate.feed import Feed, Job, drive, run_stream


def test_greedy_maps_to_temperature_zero_with_our_stop_tokens() -> None:
    kw = sampling_kwargs(GenParams(max_new_tokens=64, min_new_tokens=8), eos=[7, 3])
    assert kw == {
        "n": 1,
        "max_tokens": 64,
        "min_tokens": 8,
        "stop_token_ids": [3, 7],
        "detokenize": False,
        "logprobs": 0,  # the sampled token's own, for Generated.logprob
        "temperature": 0.0,
        "top_p": 1.0,
    }


def test_sampling_maps_temperature_top_p_and_a_seed_per_prompt() -> None:
    p = GenParams(max_new_tokens=5, do_sample=True, temperature=0.6, top_p=0.8, seed=3)
    a = sampling_kwargs(p, [2], ids=[1, 2, 3])
    assert (a["temperature"], a["top_p"], a["max_tokens"]) == (0.6, 0.8, 5)
    assert a["seed"] == sampling_kwargs(p, [2], ids=[1, 2, 3])["seed"]  # same prompt, same seed
    assert a["seed"] != sampling_kwargs(p, [2], ids=[1, 2, 4])["seed"]
    assert request_seed(3, [1]) != request_seed(4, [1])
    assert 0 <= a["seed"] < 2**31


def test_llm_kwargs_follow_the_model_spec() -> None:
    spec = ModelSpec(name_or_path="/m", max_seq_length=4096)
    kw = llm_kwargs(spec, "bfloat16", False, 0.9, True, seed=5)
    assert kw == {
        "model": "/m",
        "dtype": "bfloat16",
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True,
        "seed": 5,
        "scheduling_policy": "priority",  # answers before the questions queued in vLLM
    }
    assert llm_kwargs(spec, "bfloat16", True, 0.5, False, 0)["quantization"] == "bitsandbytes"
    # a pre-quantized bnb checkpoint: vLLM reads its quantization_config itself
    assert "quantization" not in llm_kwargs(spec, "bfloat16", True, 0.5, False, 0, True)


def decode(ids: list[int]) -> str:
    return " ".join(map(str, ids))


def test_results_are_cut_at_the_first_end_of_turn_token_like_the_other_engines() -> None:
    eos = {9}
    assert to_generated([4, 5, 9], "stop", eos, decode) == Generated("4 5", 3, True)
    assert to_generated([4, 5, 6], "length", eos, decode) == Generated("4 5 6", 3, False)
    # a version that leaves the stop token out still counts it and the finished turn
    assert to_generated([4, 5], "stop", eos, decode) == Generated("4 5", 3, True)


def test_stop_strings_go_to_vllm_and_end_the_text_as_in_transformers() -> None:
    """A base model's stop strings (model.stop_strings): vLLM needs detokenize for them, keeps
    them in the text as the transformers engines do, and the text ends right after one."""
    kw = sampling_kwargs(GenParams(max_new_tokens=8, stop_strings=["?", "\n2."]), eos=[1])
    assert kw["stop"] == ["?", "\n2."] and kw["include_stop_str_in_output"] is True
    assert kw["detokenize"] is True
    words = {4: "What", 5: " is it?", 6: " More"}
    dec = lambda ids: "".join(words[i] for i in ids)  # noqa: E731
    cut = to_generated([4, 5, 6], "stop", {9}, dec, stop_strings=["?"])
    assert cut == Generated("What is it?", 3, True)
    assert to_generated([4, 5], "stop", {9}, dec, stop_strings=["?", "\n2."]).text == "What is it?"


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class FlatLogprobs:
    """vllm.logprobs.FlatLogprobs as 0.26 has it: flat lists, read as a list of dicts."""

    def __init__(self, positions: list[dict[int, float]]) -> None:
        self.start_indices, self.end_indices, self.token_ids, self.logprobs = [], [], [], []
        for at in positions:
            self.start_indices.append(len(self.logprobs))
            for t, lp in at.items():
                self.token_ids.append(t)
                self.logprobs.append(lp)
            self.end_indices.append(len(self.logprobs))

    def __len__(self) -> int:
        return len(self.start_indices)

    def __getitem__(self, i: int) -> dict[int, Logprob]:
        span = range(self.start_indices[i], self.end_indices[i])
        return {self.token_ids[k]: Logprob(self.logprobs[k], 1) for k in span}

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def test_the_logprob_is_the_mean_of_the_sampled_tokens_end_token_excluded() -> None:
    """logprobs=0 gives, per new token, the sampled token's Logprob (and, where it is not the
    top one, the top one's too: vLLM merges them); the end token's is not counted."""
    positions = [{4: -0.5}, {5: -1.5, 7: -0.2}, {9: -3.0}]  # token 5 was sampled, 7 was top
    for shaped in (
        [{t: Logprob(v, 1) for t, v in at.items()} for at in positions],
        FlatLogprobs(positions),
    ):
        assert sampled_logprobs([4, 5, 9], shaped) == [-0.5, -1.5, -3.0]
        g = to_generated([4, 5, 9], "stop", {9}, decode, logprobs=shaped)
        assert g == Generated("4 5", 3, True, logprob=-1.0)  # (-0.5 - 1.5) / 2
        cut = to_generated([4, 5], "length", {9}, decode, logprobs=shaped)
        assert cut.logprob == -1.0 and not cut.finished
    assert to_generated([4, 5, 9], "stop", {9}, decode).logprob is None  # none requested
    assert to_generated([9], "stop", {9}, decode, logprobs=[{9: Logprob(-1.0)}]).logprob is None
    assert sampled_logprobs([4, 5], [{4: Logprob(-0.5)}]) is None  # fewer positions than tokens
    assert sampled_logprobs([4, 5], [{4: Logprob(-0.5)}, {6: Logprob(-1.0)}]) is None
    assert sampled_logprobs([4], [None]) is None


def test_a_streamed_requests_logprobs_reach_its_result() -> None:
    class Scored(FakeEngine):
        def step(self) -> list[RequestOutput]:
            outs = super().step()
            for o in outs:
                for c in o.outputs:
                    c.logprobs = [{t: Logprob(-0.25 * (i + 1))} for i, t in enumerate(c.token_ids)]
            return outs

    eng, got = Scored(per_step=4), []
    run_stream(streamer(eng), qa_jobs(2), Feed(lambda j, o: got.append(o) or [], GenParams(), 2))
    assert [g.logprob for g in got] == [-0.25, -0.25]  # the first token's; the end's left out


def test_a_wave_through_llm_generate_carries_each_rows_logprob() -> None:
    class Tok:
        def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
            return decode(ids)

    class WaveLLM:
        def generate(self, prompts: list, sps: list, use_tqdm: bool = False) -> list:
            scored = [{4: Logprob(-2.0)}, {99: Logprob(-0.1)}]
            return [
                RequestOutput("0", [Completion([4, 99], "stop", scored)], True),
                RequestOutput("1", [Completion([4, 5, 99], "stop")], True),  # none given
            ]

    runner = VllmRunner(WaveLLM(), Tok(), [99], "waves")
    runner.sampling = lambda params, ids: "SP"  # type: ignore[method-assign]  (needs vllm)
    got = runner.generate([[1], [2]], GenParams())
    assert [(g.text, g.logprob) for g in got] == [("4", -2.0), ("4 5", None)]


def test_cuda_oom_becomes_outofmemory_and_a_dead_engine_one_line() -> None:
    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError's name
        pass

    class EngineDeadError(Exception):
        pass

    assert isinstance(translate(OutOfMemoryError("x")), OutOfMemory)
    dead = translate(EngineDeadError("EngineCore encountered an issue.\nSee above"))
    assert isinstance(dead, SynthgenError)
    assert str(dead).startswith("engine: the vLLM engine stopped") and "\n" not in str(dead)
    other = ValueError("x")
    assert translate(other) is other


# --- vLLM's LLMEngine as 0.26 has it: add_request / step / abort_request ----------------------


@dataclass
class Completion:
    token_ids: list[int]
    finish_reason: str | None
    logprobs: object = None  # per position {token id: Logprob}, with SamplingParams(logprobs=0)


@dataclass
class RequestOutput:
    request_id: str
    outputs: list[Completion]
    finished: bool


@dataclass
class FakeEngine:
    """Runs `per_step` requests a step (FCFS); request i writes [i, eos]. Counts what it saw."""

    per_step: int = 2
    oom_on_step: int | None = None
    waiting: list[tuple[str, list[int]]] = field(default_factory=list)
    added: list[list[int]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    steps: int = 0
    max_live: int = 0
    priorities: list[int] = field(default_factory=list)  # each added request's, in order

    def add_request(self, request_id: str, prompt: dict, params: object, priority: int = 0) -> str:
        assert params == "SP" and set(prompt) == {"prompt_token_ids"}
        self.waiting.append((request_id, prompt["prompt_token_ids"]))
        self.added.append(prompt["prompt_token_ids"])
        self.priorities.append(priority)
        self.max_live = max(self.max_live, len(self.waiting))
        return request_id + "-internal"

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        if self.oom_on_step == self.steps:
            raise type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory")
        done, self.waiting = self.waiting[: self.per_step], self.waiting[self.per_step :]
        running = [RequestOutput(r, [], False) for r, _ in self.waiting[:1]]  # not finished yet
        return running + [
            RequestOutput(r, [Completion([ids[0], 99], "stop")], True) for r, ids in done
        ]

    def abort_request(self, request_ids: list[str]) -> None:
        self.aborted += request_ids
        self.waiting = [w for w in self.waiting if w[0] not in request_ids]


class FakeLLM:
    def __init__(self, engine: FakeEngine) -> None:
        self.llm_engine = engine


def streamer(engine: FakeEngine) -> VllmStreamer:
    return VllmStreamer(
        FakeLLM(engine),
        sampling=lambda params, ids: "SP",
        finish=lambda ids, reason, cached=0, stops=None, logprobs=None: to_generated(
            ids, reason, {99}, decode, stops, cached, logprobs
        ),
    )


def qa_jobs(n: int) -> list[Job]:
    return [Job("question", [100 + i], i) for i in range(n)]


def answer_after_question(log: list) -> object:
    def on_result(job: Job, out: Generated) -> list[Job]:
        log.append((job.stage, job.payload, out.text))
        return [Job("answer", [200 + job.payload], job.payload)] if job.stage == "question" else []

    return on_result


def test_stream_hands_each_result_on_at_once_and_submits_its_answer_next() -> None:
    eng, seen, syncs = FakeEngine(per_step=2), [], []
    on_result = answer_after_question(seen)
    sync = lambda: syncs.append(1)  # noqa: E731
    feed = Feed(on_result, GenParams(), 3, after_batch=sync, sync_seconds=0.0)
    stats = run_stream(streamer(eng), qa_jobs(5), feed)
    assert stats.prompts == {"question": 5, "answer": 5} and stats.feed == "stream"
    assert stats.output_tokens == 20  # 10 prompts x (1 token + the end-of-turn token)
    assert eng.max_live <= 3  # never more in flight than asked
    # the answer of question 0 went in right after it finished, ahead of the other questions
    assert eng.added[:5] == [[100], [101], [102], [200], [201]]
    assert seen[0] == ("question", 0, "100") and ("answer", 0, "200") in seen[:4]
    assert syncs  # fsynced while results came in


def test_stream_oom_puts_the_requests_back_and_halves_what_is_in_flight() -> None:
    eng, seen = FakeEngine(per_step=1, oom_on_step=2), []
    stats = run_stream(streamer(eng), qa_jobs(4), Feed(answer_after_question(seen), GenParams(), 4))
    assert stats.oom_retries == [{"from": 4, "to": 2}] and stats.batch_size == 2
    assert len(eng.aborted) == 4  # every request that was in flight, by vLLM's id
    assert sorted(p for s, p, _ in seen if s == "question") == [0, 1, 2, 3]  # none lost or twice
    assert sorted(p for s, p, _ in seen if s == "answer") == [0, 1, 2, 3]


def test_stream_oom_with_one_request_in_flight_propagates() -> None:
    with pytest.raises(OutOfMemory):
        run_stream(
            streamer(FakeEngine(oom_on_step=1)), qa_jobs(1), Feed(lambda j, o: [], GenParams(), 1)
        )


def test_a_crash_in_on_result_still_syncs_what_was_written() -> None:
    syncs, handled = [], []

    def second_fails(job: Job, out: Generated) -> list[Job]:
        if handled:
            raise RuntimeError("disk full")
        handled.append(job.payload)  # the first result was written
        return []

    with pytest.raises(RuntimeError, match="disk full"):
        run_stream(
            streamer(FakeEngine(per_step=1)),
            qa_jobs(2),
            Feed(
                second_fails,
                GenParams(),
                2,
                after_batch=lambda: syncs.append(1),
                sync_seconds=3600,  # no sync on the way: only the one on the way out
            ),
        )
    assert handled == [0] and syncs == [1]


def test_drive_streams_where_the_backend_offers_it_and_batches_otherwise() -> None:
    class Streaming:
        def streamer(self, batch_size: int | None = None) -> VllmStreamer:
            return streamer(FakeEngine())

    class Batched:
        def __init__(self) -> None:
            self.calls = 0

        def streamer(self, batch_size: int | None = None) -> None:
            return None

        def generate(self, batch: list[list[int]], params: GenParams) -> list[Generated]:
            self.calls += 1
            return [Generated("x", 1, True) for _ in batch]

    seen: list = []
    assert drive(
        Streaming(), qa_jobs(3), Feed(answer_after_question(seen), GenParams(), 8)
    ).feed == ("stream")
    b = Batched()
    assert drive(b, qa_jobs(3), Feed(answer_after_question([]), GenParams(), 8)).feed == "batches"
    assert b.calls == 2  # the questions, then their answers


def test_in_flight_limit_reads_vllms_max_num_seqs() -> None:
    class Sched:
        max_num_seqs = 1024

    llm = FakeLLM(FakeEngine())
    llm.llm_engine.vllm_config = type("C", (), {"scheduler_config": Sched()})()
    assert in_flight_limit(llm) == 2048
    assert in_flight_limit(object()) == 512  # an engine without it: a fixed default


def test_salted_requests_each_get_their_own_cache_salt() -> None:
    """The benchmark's no-reuse run on an engine with prefix caching on."""
    seen: list[dict] = []

    class Salted(FakeEngine):
        def add_request(
            self, request_id: str, prompt: dict, params: object, priority: int = 0
        ) -> str:
            seen.append(prompt)
            return request_id

    s = salt(VllmStreamer(FakeLLM(Salted()), sampling=lambda p, ids: "SP", finish=lambda *a: None))
    s.add(0, [1, 2], GenParams())
    s.add(1, [1, 2], GenParams())
    assert seen[0]["prompt_token_ids"] == seen[1]["prompt_token_ids"] == [1, 2]
    assert seen[0]["cache_salt"] != seen[1]["cache_salt"]
    assert to_generated([5, 99], "stop", {99}, decode, cached=32).cached_tokens == 32


# --- answers first, and no more in flight than vLLM's KV cache holds -------------------------


class PriorityEngine(FakeEngine):
    """vLLM's priority policy: the waiting request of the lowest priority value runs first,
    the earliest of equals."""

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        order = sorted(range(len(self.waiting)), key=lambda i: (self.prio[i], i))
        pick = set(order[: self.per_step])
        done = [w for i, w in enumerate(self.waiting) if i in pick]
        self.waiting = [w for i, w in enumerate(self.waiting) if i not in pick]
        self.prio = [p for i, p in enumerate(self.prio) if i not in pick]
        return [RequestOutput(r, [Completion([ids[0], 99], "stop")], True) for r, ids in done]

    def add_request(self, request_id: str, prompt: dict, params: object, priority: int = 0) -> str:
        self.prio = [*getattr(self, "prio", []), priority]
        return super().add_request(request_id, prompt, params, priority)


def finish_order(eng: FakeEngine, priorities: bool, n: int = 4) -> list[tuple[str, int]]:
    seen: list = []
    s = streamer(eng)
    s.priorities = priorities
    run_stream(s, qa_jobs(n), Feed(answer_after_question(seen), GenParams(), n))
    return [(stage, k) for stage, k, _ in seen]


def test_answers_are_scheduled_before_the_questions_queued_ahead_of_them() -> None:
    eng = PriorityEngine(per_step=1)
    got = finish_order(eng, priorities=True)
    # every question went in at once; each answer still ran right after its question
    assert got == [(s, k) for k in range(4) for s in ("question", "answer")]
    assert sorted((ids[0], p) for ids, p in zip(eng.added, eng.priorities, strict=True)) == [
        *[(100 + k, 1) for k in range(4)],  # questions: 1
        *[(200 + k, 0) for k in range(4)],  # answers: 0, lower goes first in vLLM
    ]
    # the feed of before (benchmarks' reuse_fifo run): no priority, the answers queue last
    fifo = PriorityEngine(per_step=1)
    assert finish_order(fifo, priorities=False)[:4] == [("question", k) for k in range(4)]
    assert set(fifo.priorities) == {0}


@dataclass
class Cache:
    block_size: int = 16
    num_gpu_blocks: int | None = 10
    kv_cache_size_tokens: int | None = None
    enable_prefix_caching: bool = True


def llm_with(cache: Cache, policy: str = "priority") -> FakeLLM:
    llm = FakeLLM(FakeEngine(per_step=1))
    sched = type("S", (), {"policy": policy, "max_num_seqs": 1024})()
    llm.llm_engine.vllm_config = type("C", (), {"cache_config": cache, "scheduler_config": sched})
    return llm


def test_kv_capacity_is_what_vllm_reports_after_start() -> None:
    assert kv_capacity(llm_with(Cache())) == (160, 16)  # num_gpu_blocks * block_size
    # vLLM's own count where it gives one (sliding-window layers hold fewer tokens)
    assert kv_capacity(llm_with(Cache(kv_cache_size_tokens=1000))) == (1000, 16)
    assert kv_capacity(llm_with(Cache(num_gpu_blocks=None))) is None
    # prefix caching off: no cached block to keep, so no budget (the prompts workload)
    assert kv_capacity(llm_with(Cache(enable_prefix_caching=False))) is None
    assert kv_capacity(FakeLLM(FakeEngine())) is None  # not reported: the count limit only


def test_requests_in_flight_fit_the_kv_cache_in_blocks() -> None:
    llm = llm_with(Cache())  # 160 tokens in blocks of 16
    s = VllmStreamer(llm, lambda p, ids: "SP", streamer(llm.llm_engine).finish)
    assert (s.kv_tokens, s.kv_block) == (160, 16)
    jobs = [Job("question", [7] * 20, i) for i in range(12)]  # 20 + 8 new: 2 blocks, 32 tokens
    stats = run_stream(s, jobs, Feed(lambda j, o: [], GenParams(max_new_tokens=8), 100))
    assert stats.most_in_flight == 5 == llm.llm_engine.max_live  # 5 x 32 = 160, not 100
    assert stats.kv_tokens == 160 and stats.batch_size == 100
    assert stats.prompts["question"] == 12  # every one ran, five at a time
    # a request larger than the whole cache still goes in, alone
    big = VllmStreamer(llm_with(Cache()), lambda p, ids: "SP", s.finish)
    one = run_stream(big, [Job("question", [7] * 500, 0)], Feed(lambda j, o: [], GenParams(), 8))
    assert one.prompts["question"] == 1 and one.most_in_flight == 1


def test_the_runner_can_feed_as_before_and_says_how_it_feeds() -> None:
    runner = VllmRunner(llm_with(Cache()), tokenizer=None, eos=[99], feed="stream")
    on = runner.streamer()
    assert on.priorities and on.kv_tokens == 160
    assert runner.feed_note() == (
        "vLLM feed: answers first (scheduling_policy=priority), requests in flight within the "
        "KV cache of 160 tokens (prompt + new tokens each)"
    )
    runner.answers_first = runner.kv_budget = False  # benchmarks/workload.py's reuse_fifo
    off = runner.streamer()
    assert not off.priorities and off.kv_tokens == 0
    assert runner.feed_note().startswith("vLLM feed: FCFS")
    fcfs = VllmRunner(llm_with(Cache(), "fcfs"), tokenizer=None, eos=[99], feed="stream")
    assert "FCFS (scheduling_policy=fcfs)" in fcfs.feed_note()  # Unsloth's own engine


# --- the engine start never forks a process whose CUDA is initialised -------------------------


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch):
    """A `vllm` module whose LLM records, when it is built, the start method and CUDA's state."""
    import sys
    import types

    import torch

    seen: list[tuple[str | None, bool]] = []

    class LLM:
        def __init__(self, **kwargs: object) -> None:
            import os

            seen.append((os.environ.get("VLLM_WORKER_MULTIPROC_METHOD"), cuda[0]))

    cuda = [False]
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: cuda[0])
    # set, then unset: monkeypatch restores the variable as it was, whatever the code sets
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "unset")
    monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD")
    return seen, cuda


def test_vllm_starts_with_spawn_when_the_method_is_unset(fake_vllm) -> None:
    from synthgen.backends.vllm_engine import make_llm

    seen, cuda = fake_vllm
    cuda[0] = True  # a memory check before the engine touched CUDA
    make_llm(model="m")
    assert seen == [("spawn", True)]


def test_an_explicit_method_is_kept_unless_fork_meets_initialised_cuda(
    fake_vllm, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from synthgen.backends.vllm_engine import make_llm, spawn_workers

    seen, cuda = fake_vllm
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    make_llm(model="m")  # CUDA untouched: the user's fork works and stays
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    make_llm(model="m")
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    cuda[0] = True
    note = spawn_workers()
    make_llm(model="m")
    assert seen == [("fork", False), ("spawn", False), ("spawn", True)]
    assert note and "fork" in note and "spawn" in note and note in caplog.text


def test_the_backend_sets_spawn_after_cuda_is_touched_and_before_vllm_starts(
    fake_vllm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers' Backend.load_vllm: choose_4bit's memory check has initialised CUDA by
    then; the engine must still start (the 2026-12-06 benchmark failed there)."""
    from types import SimpleNamespace

    from synthgen.backends import transformers as tb

    seen, cuda = fake_vllm
    cuda[0] = True
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    monkeypatch.setattr(tb, "load_tokenizer", lambda spec: "TOK")
    monkeypatch.setattr(tb, "eos_ids", lambda tok, spec, gen: [1])
    monkeypatch.setattr(tb, "generation_config", lambda path: None)
    spec = ModelSpec(name_or_path="/m")
    fake = SimpleNamespace(
        load_spec=spec,
        spec=spec,
        path="/m",
        dtype="torch.bfloat16",
        options={**tb.VLLM_DEFAULTS, "seed": 0},
        prequantized=False,
        notes=[],
    )
    tokenizer, runner = tb.Backend.load_vllm(fake)
    assert seen == [("spawn", True)] and tokenizer == "TOK"
    assert any("spawn" in n for n in fake.notes)

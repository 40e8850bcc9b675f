"""The generation queue: batching by length, answers following questions, OOM backoff."""

from __future__ import annotations

import pytest

from synthgen.backends.base import Generated, GenParams
from synthgen.errors import OutOfMemory
from synthgen.generate.feed import Feed, Job, run_queue


class Recorder:
    def __init__(self, oom_above: int | None = None) -> None:
        self.batches: list[list[int]] = []  # prompt lengths per call
        self.oom_above = oom_above

    def __call__(self, batch: list[list[int]], params: GenParams) -> list[Generated]:
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise OutOfMemory("fake")
        self.batches.append([len(ids) for ids in batch])
        return [Generated(text=str(len(ids)), tokens=3, finished=True) for ids in batch]


def test_batches_are_sorted_by_length_and_answers_follow() -> None:
    gen = Recorder()
    jobs = [Job("question", [0] * n, n) for n in (5, 50, 7, 40, 6, 45)]
    results: list[tuple[str, int]] = []

    def on_result(job: Job, out: Generated) -> list[Job]:
        results.append((job.stage, job.payload))
        return (
            [Job("answer", [0] * (job.payload + 1), job.payload)] if job.stage == "question" else []
        )

    stats = run_queue(gen, jobs, Feed(on_result, GenParams(), size=3))
    assert gen.batches[0] == [50, 45, 40]  # longest questions first, similar lengths together
    assert gen.batches[1] == [51, 46, 41]  # a full batch of answers runs before more questions
    assert gen.batches[2] == [7, 6, 5]
    assert stats.prompts == {"question": 6, "answer": 6}
    assert stats.output_tokens == 36
    assert sorted(p for s, p in results if s == "answer") == [5, 6, 7, 40, 45, 50]


def test_oom_halves_the_batch_and_loses_nothing() -> None:
    gen = Recorder(oom_above=2)
    jobs = [Job("question", [0] * 10, i) for i in range(7)]
    done: list[int] = []
    stats = run_queue(gen, jobs, Feed(lambda j, o: done.append(j.payload) or [], GenParams(), 8))
    assert sorted(done) == list(range(7))  # every prompt ran exactly once
    assert stats.oom_retries == [{"from": 8, "to": 4}, {"from": 4, "to": 2}]
    assert stats.batch_size == 2
    assert all(len(b) <= 2 for b in gen.batches)


def test_oom_at_batch_one_propagates() -> None:
    with pytest.raises(OutOfMemory):
        run_queue(
            Recorder(oom_above=0), [Job("question", [1], 0)], Feed(lambda j, o: [], GenParams(), 4)
        )


def test_stop_strings_end_a_reply_right_after_the_first_match(tiny_model) -> None:
    """The real transformers backend and StopStringCriteria, greedy on the tiny model: with
    a piece of its own output as stop string, the reply is that output cut after the piece."""
    from synthgen.backends.transformers import Backend

    b = Backend(name_or_path=str(tiny_model), max_seq_length=256, eos_tokens=[])
    ids = b.tokenizer("Context: the long take and the montage of the film.")["input_ids"]
    free = b.generate([ids], GenParams(max_new_tokens=12))[0]
    assert not free.finished and free.tokens == 12
    text = free.text
    stop = next(text[i : i + 2] for i in range(2, len(text) - 1) if text[i : i + 2].strip())
    cut = b.generate([ids, ids], GenParams(max_new_tokens=12, stop_strings=[stop, "\x00never"]))
    for g in cut:
        assert g.finished and g.text == text[: text.index(stop) + len(stop)]
        assert g.tokens <= 12
    b.close()


def test_a_stop_string_counts_once_the_reply_has_begun(tiny_model) -> None:
    """A base model often opens with a blank line: a "\\n\\n" stop string must not end the
    reply there (an empty answer); the cut comes after the first text."""
    from synthgen.backends.transformers import Backend

    b = Backend(name_or_path=str(tiny_model), max_seq_length=256, eos_tokens=[])
    g = b.batched.decode(
        b.tokenizer("\n\nThe long take.\n\nMore", add_special_tokens=False)["input_ids"],
        stop_strings=["\n\n"],
    )
    assert g.text.strip() == "The long take." and g.finished
    assert not b.batched.decode(
        b.tokenizer("\n\n", add_special_tokens=False)["input_ids"],
        stop_strings=["\n\n"],
    ).finished
    b.close()


def test_after_content_holds_a_stop_back_while_the_reply_is_blank(tiny_model) -> None:
    import torch
    from transformers import AutoTokenizer

    from synthgen.backends.batched import after_content

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = tok("Question:", add_special_tokens=False)["input_ids"]

    def every_row_matches(input_ids, scores, **kw):
        return torch.ones(input_ids.shape[0], dtype=torch.bool)

    stop = after_content(every_row_matches, tok, len(prompt))
    for reply, done in (("\n\n", False), ("Why?\n\n", True)):
        ids = torch.tensor([prompt + tok(reply, add_special_tokens=False)["input_ids"]])
        assert stop(ids, None).tolist() == [done], reply


def test_jobs_with_their_own_params_reach_the_engine_per_prompt() -> None:
    """Benchmarks force each row's length: a job's params go with it, batched or streamed."""
    from synthgen.generate.feed import run_stream

    seen: list[object] = []

    def gen(batch: list[list[int]], params: object) -> list[Generated]:
        seen.append(params)
        return [Generated("x", 1, True) for _ in batch]

    own = GenParams(max_new_tokens=5, min_new_tokens=5)
    run_queue(
        gen,
        [Job("question", [1], 0, own), Job("question", [2], 1)],
        Feed(lambda j, o: [], GenParams(), 2),
    )
    assert seen == [[own, GenParams()]]  # one GenParams per prompt where a job has its own
    run_queue(gen, [Job("question", [1], 0)], Feed(lambda j, o: [], GenParams(), 2))
    assert seen[-1] == GenParams()  # else the run's, as before

    class Streamer:
        def __init__(self) -> None:
            self.added: list[tuple[int, GenParams]] = []

        def add(self, key: int, ids: list[int], params: GenParams) -> None:
            self.added.append((key, params))

        def step(self) -> list[tuple[int, Generated]]:
            done = [(k, Generated("x", 1, True)) for k, _ in self.added]
            self.added.clear()
            return done

        def abort(self) -> None:
            pass

    st = Streamer()
    got: list[GenParams] = []
    orig = st.add
    st.add = lambda k, ids, p: (got.append(p), orig(k, ids, p))  # type: ignore[method-assign]
    run_stream(
        st,
        [Job("answer", [1], 0, own), Job("question", [2], 1)],
        Feed(lambda j, o: [], GenParams(), 4),
    )
    assert got == [own, GenParams()]


def test_stop_starts_no_new_question_but_finishes_what_started() -> None:
    """A timed benchmark's deadline: every started question still gets its answer."""
    from synthgen.generate.feed import run_stream

    calls = {"n": 0}

    def on_result(job: Job, out: Generated) -> list[Job]:
        return [Job("answer", [0], job.payload)] if job.stage == "question" else []

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 1  # true from the second check on

    stats = run_queue(
        Recorder(),
        [Job("question", [0], i) for i in range(6)],
        Feed(on_result, GenParams(), 2, stop=stop),
    )
    assert stats.prompts == {"question": 2, "answer": 2} and stats.dropped == 4

    class OneAStep:
        def __init__(self) -> None:
            self.live: list[int] = []

        def add(self, key: int, ids: list[int], params: GenParams) -> None:
            self.live.append(key)

        def step(self) -> list[tuple[int, Generated]]:
            return [(self.live.pop(0), Generated("x", 1, True))] if self.live else []

        def abort(self) -> None:
            self.live.clear()

    calls["n"] = 0
    jobs = [Job("question", [0], i) for i in range(6)]
    stats = run_stream(OneAStep(), jobs, Feed(on_result, GenParams(), 3, stop=stop))
    assert stats.prompts == {"question": 3, "answer": 3} and stats.dropped == 3

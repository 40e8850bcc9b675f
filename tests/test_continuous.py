"""engine=continuous: the same greedy tokens as plain `generate`, rows of any length.

The engine's speed is a GPU matter (benchmarks/workload.py); here it must be exact: rows that
end early (an end token) or late (max_new_tokens), per-row lengths, slots refilled, prompts
whose beginning comes from another slot's cache (in place and copied from a running row).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthgen.backends.base import GenParams, encode
from synthgen.backends.continuous import PrefixIndex, Request, plan_admission, sub_batches
from synthgen.generate import pipeline, prompting
from tests.conftest import REPO, compose


def req(key: int, ids: list[int]) -> Request:
    return Request(key, ids, GenParams())


def test_prefix_index_finds_the_longest_cached_beginning_exactly() -> None:
    idx = PrefixIndex(block=4)
    idx.add(0, list(range(20)))
    idx.add(1, [*range(10), 99, 98, 97, 96, 95])
    assert idx.longest([*range(12), 7, 7]) == (0, 12)  # exact, past the last full block
    assert idx.longest([*range(10), 99, 98, 97, 96, 1]) == (1, 14)
    assert idx.longest([5, 6, 7, 8, 9]) == (None, 0)
    assert idx.longest([0, 1, 2]) == (None, 0)  # under a block: not worth a reuse
    assert idx.longest(list(range(8)), prefer=lambda s: s == 1)[0] == 1  # ties: the preferred
    idx.remove(0)
    assert idx.longest(list(range(20))) == (1, 10)


def test_admission_reuses_in_place_then_copies_then_fills_oldest_free_first() -> None:
    idx = PrefixIndex(block=4)
    idx.add(3, list(range(8)))  # a free slot: its question just finished
    idx.add(5, list(range(100, 108)))  # a running slot
    waiting = [
        req(0, [50, 51, 52, 53, 54]),  # nothing cached
        req(1, [*range(8), 9]),  # its chunk in free slot 3: in place
        req(2, [*range(100, 108), 1]),  # its chunk in running slot 5: a copy
        req(3, [*range(8), 7]),  # slot 3 taken by request 1: a copy of it
        req(4, [60, 61]),  # no free slot left
    ]
    plan = plan_admission(waiting, [1, 3, 2, 4], idx, lambda s: s in (1, 2, 3, 4))
    got = {r.key: (r.slot, r.start) for r in plan.admitted}
    assert got == {1: (3, 8), 2: (1, 8), 3: (2, 8), 0: (4, 0)}
    assert plan.copies == [(1, 5, 8), (2, 3, 8)]
    assert waiting[4].slot == -1  # waits for the next free slot
    # a whole prompt cached: one token is still prefilled, for the first new token's logits
    again = plan_admission([req(9, list(range(8)))], [3], idx, lambda s: True)
    assert (again.admitted[0].slot, again.admitted[0].start) == (3, 7)


def test_a_prompt_sharing_only_the_header_never_takes_the_slot_an_answer_waits_for() -> None:
    idx = PrefixIndex(block=4)
    idx.add(3, [1, 2, 3, 4, *range(10, 30)])  # a finished question: header, then its chunk
    waiting = [req(0, [1, 2, 3, 4, 99, 98]), req(1, [1, 2, 3, 4, *range(10, 30), 7])]
    plan = plan_admission(waiting, [3, 1], idx, lambda s: s in (1, 3))
    assert {r.key: (r.slot, r.start) for r in plan.admitted} == {1: (3, 24), 0: (1, 4)}


def test_sub_batches_keep_to_the_token_budget() -> None:
    reqs = [req(i, [0] * n) for i, n in enumerate((10, 300, 290, 20, 280))]
    groups = sub_batches(reqs, 600)
    assert [[len(r.ids) for r in g] for g in groups] == [[300, 290], [280, 20], [10]]
    even = sub_batches([req(i, [0] * 50) for i in range(16)], 750)  # 15 fit: two forwards
    assert [len(g) for g in even] == [8, 8]


@pytest.fixture(scope="module")
def engines(tiny_model: Path):
    from synthgen.backends.transformers import Backend

    spec = {"name_or_path": str(tiny_model), "dtype": "float32"}
    ref = Backend(engine="dynamic", **spec)
    cont = Backend(engine="continuous", vllm={"enable_prefix_caching": True}, **spec)
    # the token the random model writes most often early on, made an end token of both
    # engines: rows then end at many lengths, as a real model's do
    from collections import Counter

    import torch

    seen: Counter[int] = Counter()
    for x in prompts(ref.tokenizer):
        with torch.inference_mode():  # the token ids themselves: the text re-encodes otherwise
            out = ref.model.generate(torch.tensor([x]), max_new_tokens=6, do_sample=False)
        seen.update(out[0, len(x) + 1 : len(x) + 5].tolist())
    ref.eos = cont.eos = sorted({*ref.eos, seen.most_common(1)[0][0]})
    yield ref, cont
    cont.close()


def prompts(tok) -> list[list[int]]:
    """Question, follow-up and answer prompts of three chunks: long shared beginnings."""
    pr = compose(["prompt=notebook"]).prompt
    chunks = [p.read_text()[:700] for p in sorted((REPO / "data" / "movies_src").glob("*.md"))[:3]]
    user = [prompting.question_prompt(pr.question, c) for c in chunks]
    user += [prompting.answer_prompt(pr.answer, c, "What is it?") for c in chunks]
    user += [prompting.question_prompt(pr.question, chunks[0], pr.followup, ["What is it?"])]
    user += ["x", "the director"]  # short ones
    return [encode(tok, [{"role": "user", "content": u}]) for u in user]


def test_tokens_equal_plain_generate_with_refills_and_prefix_reuse(engines) -> None:
    ref, cont = engines
    ids = prompts(ref.tokenizer)
    lengths = [(0, 9), (2, 4), (0, 12), (0, 7), (3, 3), (0, 10), (1, 8), (0, 5), (0, 11)]
    params = [GenParams(max_new_tokens=hi, min_new_tokens=lo) for lo, hi in lengths]
    want = [ref.generate([x], p)[0] for x, p in zip(ids, params, strict=True)]
    assert {w.finished for w in want} == {True, False}  # some end early, some at their max
    eng = cont.streamer(2)  # two slots: every row after the second refills a finished one
    eng.reset_prefix()
    # questions first, then their answers while the last question still runs: in-place reuse
    # of finished questions' slots and a copy from the running one
    first = [eng.add(i, x, p) for i, (x, p) in enumerate(zip(ids[:3], params[:3], strict=True))]
    got: dict[int, object] = {}
    while len(got) < 2:
        got.update(eng.step())
    for i in range(3, len(ids)):
        eng.add(i, ids[i], params[i])
    while len(got) < len(ids):
        got.update(eng.step())
    assert first == [None] * 3
    assert [same(got[i]) for i in range(len(ids))] == [same(w) for w in want]
    assert eng.stats["reused_tokens"] > 300 and eng.stats["copied_tokens"] > 0
    assert sum(got[i].cached_tokens for i in got) == eng.stats["reused_tokens"]
    # the batch call with one GenParams per prompt gives the same (the benchmarks' forcing)
    assert [same(g) for g in cont.generate(ids, params)] == [same(w) for w in want]


def same(g) -> tuple:
    """What must match between engines (cached_tokens is how, not what)."""
    return g.text, g.tokens, g.finished


def test_dynamic_engine_ends_each_row_at_its_own_forced_length(engines) -> None:
    ref, _ = engines
    ids = prompts(ref.tokenizer)[:4]
    params = [GenParams(max_new_tokens=n, min_new_tokens=n) for n in (3, 11, 6, 1)]
    batched = ref.generate(ids, params)
    assert [o.tokens for o in batched] == [3, 11, 6, 1]
    assert not any(o.finished for o in batched)  # cut at the length, as vLLM's max_tokens
    alone = [ref.generate([x], p)[0] for x, p in zip(ids, params, strict=True)]
    assert [same(o) for o in batched] == [same(o) for o in alone]
    # each row's logprob is its own, padding and the forced end token excluded (float noise
    # between a padded batch and one row alone: not compared exactly)
    assert [o.logprob for o in batched] == pytest.approx([o.logprob for o in alone], abs=1e-4)


def test_pipeline_rows_with_the_continuous_engine_equal_the_dynamic_engines(
    tiny_model: Path, tmp_path: Path
) -> None:
    common = [f"model.name_or_path={tiny_model}", "num_rows=3", "generation.max_new_tokens=12"]
    pipeline.run(compose([*common, "engine=dynamic", "generation.batch_size=1"]), tmp_path / "a")
    s = pipeline.run(
        compose([*common, "engine=continuous", "generation.batch_size=2"]),
        tmp_path / "b",
    )
    assert s["this_session"]["engine"]["name"] == "continuous"
    assert s["this_session"]["engine"]["feed"] == "stream"
    for split in ("train", "val"):
        a = json.loads((tmp_path / "a" / f"{split}.json").read_text())
        b = json.loads((tmp_path / "b" / f"{split}.json").read_text())
        assert [(r["question"], r["answer"], r["tokens"]) for r in a] == [
            (r["question"], r["answer"], r["tokens"]) for r in b
        ]


def test_answers_wait_ahead_of_questions_first_come_first_served_within_each() -> None:
    from collections import deque

    from synthgen.backends.admission import enqueue

    waiting: deque[Request] = deque()
    for key, prio in ((0, 1), (1, 1), (2, 0), (3, 1), (4, 0)):  # questions 1, answers 0
        enqueue(waiting, Request(key, [key], GenParams(), priority=prio))
    assert [r.key for r in waiting] == [2, 4, 0, 1, 3]

"""Generated.logprob (synthgen/backends/base.py, mean_logprob) from the local engines: the mean
ln p of the reply's tokens under the raw logits, end token excluded, checked against one
independent full forward over prompt + reply on the tiny random Llama.

The reply's token ids are the ones each engine decoded its text from (recorded at the
tokenizer's decode), so sampled replies and replies held back by min_new_tokens are checked
too: their logprob is the raw distribution's, before temperature, top-p or the end-token mask.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from synthgen.backends.base import Generated, GenParams, encode, mean_logprob

ENGINES = ("dynamic", "static", "continuous")
TOL = 1e-3


def test_mean_logprob_is_the_plain_mean_and_none_without_tokens() -> None:
    assert mean_logprob([-1.0, -2.0, -0.5]) == pytest.approx(-7 / 6)
    assert mean_logprob([]) is None
    assert Generated("x", 1, True).logprob is None  # an engine that gives none


def prompts(tok) -> list[list[int]]:
    users = [
        "x",
        "the director",
        "What is the question? The answer is that the film and the director matter.",
        "Context: the long take and the montage of the film. Ask one question about it.",
        "Write a question about the film.",
        "montage",
    ]
    return [encode(tok, [{"role": "user", "content": u}]) for u in users]


@pytest.fixture(scope="module")
def backends(tiny_model: Path):
    from synthgen.backends.transformers import Backend

    spec = {"name_or_path": str(tiny_model), "dtype": "float32", "max_seq_length": 512}
    made = {e: Backend(engine=e, **spec) for e in ENGINES}
    ref = made["dynamic"]
    # the three tokens the random model writes most often, made end tokens of every engine:
    # rows then end at many lengths, as a real model's do (test_continuous does the same)
    seen: Counter[int] = Counter()
    for _, ids in run(ref, prompts(ref.tokenizer), GenParams(max_new_tokens=12)):
        seen.update(ids[1:11])
    eos = sorted({*ref.eos, *(t for t, _ in seen.most_common(3))})
    for b in made.values():
        b.eos = eos
    yield made
    for b in made.values():
        b.close()


def run(b, batch: list[list[int]], params) -> list[tuple[Generated, list[int]]]:
    """Each reply with the token ids its text was decoded from (the tokenizer's decode sees
    exactly the kept tokens, in every engine)."""
    calls: list[tuple[str, list[int]]] = []
    tok = b.tokenizer
    orig = tok.decode

    def recording(ids, *args, **kwargs):
        text = orig(ids, *args, **kwargs)
        calls.append((text, list(ids)))
        return text

    tok.decode = recording
    try:
        if b.engine == "continuous":
            b.streamer(3)  # three slots: rows refill finished ones
        got = b.generate(batch, params)
    finally:
        del tok.decode
    out = []
    for g in got:
        same = {tuple(ids) for text, ids in calls if text == g.text}
        assert len(same) <= 1, "two token lists with one text"
        if not same:  # cut after a stop string: the last decode its text begins
            same = {tuple(next(ids for text, ids in reversed(calls) if text.startswith(g.text)))}
        out.append((g, list(same.pop())))
    return out


def reference(model, prompt: list[int], reply: list[int]) -> float | None:
    """Mean log_softmax of the reply's tokens, one forward over prompt + reply, no padding."""
    import torch

    if not reply:
        return None
    ids = torch.tensor([prompt + reply])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], -1)
    return logp.gather(1, torch.tensor(reply)[:, None]).mean().item()


def check(b, batch: list[list[int]], params) -> list[Generated]:
    import torch

    model = b.model
    if b.engine == "continuous":  # its attention function needs its slots: an sdpa twin
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(b.path, dtype=torch.float32)
    model.eval()
    results = run(b, batch, params)
    for (g, reply), prompt in zip(results, batch, strict=True):
        want = reference(model, prompt, reply)
        if want is None:
            assert g.logprob is None
            continue
        assert g.logprob is not None and g.logprob <= 0
        assert g.logprob == pytest.approx(want, abs=TOL), (b.engine, g)
        # the end token is counted in tokens, never in the logprob
        assert g.tokens - len(reply) in (0, 1) and (g.finished or g.tokens == len(reply))
    return [g for g, _ in results]


@pytest.mark.parametrize("engine", ENGINES)
def test_greedy_rows_of_different_lengths_each_get_their_own_logprob(backends, engine) -> None:
    b = backends[engine]
    batch = prompts(b.tokenizer)
    got = check(b, batch, GenParams(max_new_tokens=12))
    assert {g.finished for g in got} == {True, False}  # rows end early and at their max
    assert len({g.tokens for g in got}) >= 3
    assert len({round(g.logprob, 6) for g in got if g.logprob is not None}) >= 4
    # a row's logprob is its own: the same alone as in the padded batch
    alone = [run(b, [x], GenParams(max_new_tokens=12))[0][0] for x in batch[:3]]
    for a, g in zip(alone, got, strict=False):
        assert a.text == g.text and a.logprob == pytest.approx(g.logprob, abs=TOL)


@pytest.mark.parametrize("engine", ENGINES)
def test_sampled_and_held_back_replies_are_scored_on_the_raw_logits(backends, engine) -> None:
    """temperature/top-p change which tokens come, not how they are scored; the end tokens
    held back below min_new_tokens (one setting for all, or per row) still count in the
    normalizer."""
    b = backends[engine]
    batch = prompts(b.tokenizer)
    b.set_seed(1)
    sampled = GenParams(max_new_tokens=10, do_sample=True, temperature=0.5, top_p=0.8, seed=1)
    check(b, batch, sampled)
    check(b, batch, GenParams(max_new_tokens=8, min_new_tokens=5))
    lengths = [(0, 9), (2, 4), (0, 12), (3, 3), (0, 10), (1, 8)]
    per_row = [GenParams(max_new_tokens=hi, min_new_tokens=lo) for lo, hi in lengths]
    got = check(b, batch, per_row)
    assert [g.tokens <= hi for g, (_, hi) in zip(got, lengths, strict=True)] == [True] * 6


def test_a_reply_cut_by_a_stop_string_counts_its_tokens_up_to_the_stop(backends) -> None:
    b = backends["dynamic"]
    batch = prompts(b.tokenizer)
    free = b.generate(batch, GenParams(max_new_tokens=12))
    x, text = max(zip(batch, (g.text for g in free), strict=True), key=lambda xt: len(xt[1]))
    stop = next(text[i : i + 2] for i in range(2, len(text) - 1) if text[i : i + 2].strip())
    for g in check(b, [x], GenParams(max_new_tokens=12, stop_strings=[stop])):
        assert g.finished and g.text.endswith(stop)


def test_the_continuous_engine_scores_before_temperature_and_the_end_token_mask() -> None:
    """_sample on made-up logits: the chosen token's ln p under softmax(raw logits)."""
    import torch

    from synthgen.backends.admission import Request
    from synthgen.backends.continuous import SlotEngine

    eng = SlotEngine.__new__(SlotEngine)
    eng.eos_t, eng.generator = torch.tensor([0]), None
    logits = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.0, 2.0, 2.5, 1.0]])
    raw = torch.log_softmax(logits, -1)
    held = Request(0, [1], GenParams(min_new_tokens=2))  # its end token (0) is masked
    free = Request(1, [1], GenParams())
    tokens, logps = eng._sample(logits.clone(), [held, free])
    assert tokens == [1, 2]
    assert logps == pytest.approx([raw[0, 1].item(), raw[1, 2].item()])
    p = GenParams(do_sample=True, temperature=0.3, top_p=0.9, seed=0)
    tokens, logps = eng._sample(logits.clone(), [Request(0, [1], p), Request(1, [1], p)])
    assert logps == pytest.approx([raw[i, t].item() for i, t in enumerate(tokens)])

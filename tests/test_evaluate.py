"""Evaluation metrics on a constructed case whose rankings are known by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from synthgen.embed import evaluate, retrieval
from synthgen.rundir.reading import Split
from tests.test_negatives import bow_model

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
WORDS += ["juliet", "kilo", "lima"]
# twelve one-word chunks: a question's cosine with chunk w is (count of w) / |question|
CORPUS = {f"d{i}": w for i, w in enumerate(WORDS)}


def q(counts: dict[int, int]) -> str:
    return " ".join(" ".join([WORDS[i]] * n) for i, n in counts.items())


# question -> its relevant chunk, which the word counts put at rank 1, 2, 3 and 12
CASES = [
    (q({0: 1}), "d0"),  # rank 1
    (q({1: 2, 2: 1}), "d2"),  # rank 2 (bravo outscores charlie)
    (q({0: 3, 1: 2, 3: 1}), "d3"),  # rank 3
    (q({i: 13 - i for i in range(12)}), "d11"),  # rank 12: outside the top 10
]
EXPECTED = {
    "hit@1": 1 / 4,
    "hit@5": 3 / 4,
    "hit@10": 3 / 4,
    "mrr@10": (1 + 1 / 2 + 1 / 3 + 0) / 4,
    "ndcg@10": (1 + 1 / math.log2(3) + 1 / math.log2(4) + 0) / 4,
}


@pytest.fixture(scope="module")
def case() -> tuple[object, Split]:
    rows = [{"id": f"q{i}", "question": t, "chunk_id": c} for i, (t, c) in enumerate(CASES)]
    return bow_model(WORDS), Split("val", rows, CORPUS)


def test_known_ranks_give_known_metrics(case, tmp_path: Path) -> None:
    model, split = case
    res = evaluate.score_model(model, split, "", 8, tmp_path)
    for m, v in EXPECTED.items():
        assert res[m] == pytest.approx(v), m
    assert res["queries"] == 4
    assert res["check_max_diff"] == pytest.approx(0, abs=1e-12)
    preds = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    ranks = [
        next((i + 1 for i, h in enumerate(p["results"]) if h["corpus_id"] == c), None)
        for p, (_, c) in zip(preds, CASES, strict=True)
    ]
    assert ranks == [1, 2, 3, None]


def test_evaluator_and_retrieval_metrics_agree_on_the_same_rankings(case) -> None:
    """rank_embeddings + synthgen.embed.retrieval.metrics give the evaluator's numbers."""
    model, split = case
    ids, texts = list(split.corpus), list(split.corpus.values())
    ranked = retrieval.rank_embeddings(model, [r["question"] for r in split.rows], ids, texts)
    ours = retrieval.metrics(ranked, [{r["chunk_id"]} for r in split.rows])
    theirs = evaluate.score_model(model, split, "", 8)
    for m in evaluate.METRICS:
        assert ours[m] == pytest.approx(theirs[m]) == pytest.approx(EXPECTED[m]), m


def test_query_prefix_reaches_the_queries(case) -> None:
    """The prefix is encoded with every question: 'lima' x 40 puts chunk d11 first for all
    four, so only the question about d11 hits at rank 1, and every other relevant chunk moves
    up one place behind it, into the top 10."""
    model, split = case
    res = evaluate.score_model(model, split, "lima " * 40, 8)
    assert res["hit@1"] == pytest.approx(1 / 4)
    assert res["mrr@10"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1) / 4)
    assert res["hit@10"] == 1.0


def test_report_table_and_chart(case, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    model, split = case
    cfg = OmegaConf.create({"embedder": {"query_prefix": "", "batch_size": 8}})
    ev = evaluate.run_eval(cfg, split, tmp_path, model, model, {"base": "bow", "tuned": "bow"})
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["base"]["ndcg@10"] == pytest.approx(EXPECTED["ndcg@10"])
    assert saved["tuned"]["mrr@10"] == pytest.approx(EXPECTED["mrr@10"])
    assert saved["delta"]["ndcg@10"] == pytest.approx(0)
    assert set(saved["bm25"]) >= set(evaluate.METRICS)
    assert ev["corpus_chunks"] == 12 and ev["queries"] == 4
    md = (tmp_path / "eval.md").read_text()
    assert "| base (bow) | 0.250 | 0.750 | 0.750 |" in md and "tuned - base" in md
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

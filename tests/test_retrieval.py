"""Retrieval metrics on hand-made cases with known answers."""

from __future__ import annotations

import math

import pytest

from synthgen.embed.retrieval import metrics, rank_bm25, rank_embeddings

DOCS = {
    "a": "The director framed every scene with a handheld camera.",
    "b": "Film music guides the audience through the emotional arc.",
    "c": "Casting an unknown actress changed the tone of the picture.",
    "d": "Horror films turn anxiety into a shared experience in the theater.",
}


def test_bm25_queries_identical_to_their_chunk_rank_it_first() -> None:
    ids, texts = list(DOCS), list(DOCS.values())
    ranked = rank_bm25(texts, ids, texts, k=4)
    assert [r[0] for r in ranked] == ids
    m = metrics(ranked, [{i} for i in ids])
    assert m["hit@1"] == 1.0 and m["mrr@10"] == 1.0 and m["ndcg@10"] == 1.0


def test_bm25_stopword_query_finds_nothing() -> None:
    ids, texts = list(DOCS), list(DOCS.values())
    assert rank_bm25(["the a of"], ids, texts) == [[]]


def test_metrics_known_values() -> None:
    ranked = [["x", "a", "y"], ["b"], ["z", "w"]]
    relevant = [{"a"}, {"b"}, {"c"}]
    m = metrics(ranked, relevant, hits=(1, 2))
    assert m["hit@1"] == pytest.approx(1 / 3)
    assert m["hit@2"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + 0) / 3)
    assert metrics([], [])["queries"] == 0


class BagOfWords:
    """A stand-in encoder with the sentence-transformers encode() signature: exact word overlap."""

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = vocab

    def encode(self, texts, convert_to_tensor=True, normalize_embeddings=True, **kw):
        import torch

        v = torch.tensor([[float(w in t.lower().split()) for w in self.vocab] for t in texts])
        return torch.nn.functional.normalize(v, dim=1) if normalize_embeddings else v


def test_rank_embeddings_orders_by_cosine() -> None:
    ids, texts = list(DOCS), list(DOCS.values())
    model = BagOfWords(["camera", "music", "actress", "horror", "director"])
    ranked = rank_embeddings(model, ["camera director", "music"], ids, texts, k=2)
    assert ranked[0][0] == "a" and ranked[1][0] == "b"


def test_rank_embeddings_with_a_real_sentence_transformers_model(tiny_embedder) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_embedder), device="cpu")
    ids, texts = list(DOCS), list(DOCS.values())
    ranked = rank_embeddings(model, texts, ids, texts, k=4)
    # identical text embeds identically: cosine 1.0 puts each doc first for itself
    assert [r[0] for r in ranked] == ids
    assert all(sorted(r) == sorted(ids) for r in ranked)

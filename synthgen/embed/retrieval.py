"""Retrieval scoring shared by the comparison report and the fine-tuning evaluation.

Each question is a query over all chunks of its split; its source chunk is the one relevant
document. Rankings come from BM25 (bm25s, a maintained library) or an embedding model
(sentence-transformers); the metrics are plain functions of the rankings.
"""

from __future__ import annotations

import math
from typing import Any

HITS = (1, 5, 10)  # hit@k reported, k in results
AT = 10  # MRR@AT and NDCG@AT, results
KEYS = (*(f"hit@{k}" for k in HITS), f"mrr@{AT}", f"ndcg@{AT}")  # the names metrics() returns
DEPTH = max(*HITS, AT)  # ranks kept per query


def score_bm25(
    queries: list[str], relevant: list[set[str]], doc_ids: list[str], doc_texts: list[str]
) -> dict[str, float]:
    """metrics() of BM25's rankings: the floor an embedding model is compared with."""
    return metrics(rank_bm25(queries, doc_ids, doc_texts, k=DEPTH), relevant)


def score_embeddings(
    model: Any,
    queries: list[str],
    relevant: list[set[str]],
    doc_ids: list[str],
    doc_texts: list[str],
    query_prefix: str = "",
    batch_size: int = 32,
) -> dict[str, float]:
    """metrics() of an embedding model's rankings (cosine similarity)."""
    ranked = rank_embeddings(model, queries, doc_ids, doc_texts, DEPTH, query_prefix, batch_size)
    return metrics(ranked, relevant)


def rank_bm25(
    queries: list[str], doc_ids: list[str], doc_texts: list[str], k: int = 10
) -> list[list[str]]:
    """Top-k doc ids per query by BM25 (English stopwords removed, bm25s defaults)."""
    import bm25s

    k = min(k, len(doc_ids))
    if not queries or not k:
        return [[] for _ in queries]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(doc_texts, stopwords="en", show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
    results, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    out = []
    for row, srow in zip(results, scores, strict=True):
        # a query of stopwords only scores 0 everywhere: it found nothing, rank nothing
        out.append([doc_ids[int(i)] for i, s in zip(row, srow, strict=True) if s > 0])
    return out


def rank_embeddings(
    model: Any,
    queries: list[str],
    doc_ids: list[str],
    doc_texts: list[str],
    k: int = 10,
    query_prefix: str = "",
    batch_size: int = 32,
) -> list[list[str]]:
    """Top-k doc ids per query by cosine similarity of a sentence-transformers model."""
    import torch

    k = min(k, len(doc_ids))
    if not queries or not k:
        return [[] for _ in queries]
    q = model.encode(
        [query_prefix + x for x in queries],
        batch_size=batch_size,
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    d = model.encode(
        doc_texts,
        batch_size=batch_size,
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    top = torch.topk(q @ d.T, k=k, dim=1).indices.tolist()
    return [[doc_ids[i] for i in row] for row in top]


def metrics(
    ranked: list[list[str]],
    relevant: list[set[str]],
    hits: tuple[int, ...] = HITS,
    at: int = AT,
) -> dict[str, float]:
    """hit@k (share of queries with a relevant doc in the top k), MRR@at and NDCG@at."""
    n = len(ranked)
    if n == 0:
        return {
            **{f"hit@{k}": 0.0 for k in hits},
            f"mrr@{at}": 0.0,
            f"ndcg@{at}": 0.0,
            "queries": 0,
        }
    out: dict[str, float] = {}
    for k in hits:
        out[f"hit@{k}"] = (
            sum(any(d in rel for d in r[:k]) for r, rel in zip(ranked, relevant, strict=True)) / n
        )
    mrr = ndcg = 0.0
    for r, rel in zip(ranked, relevant, strict=True):
        first = next((i for i, d in enumerate(r[:at]) if d in rel), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(r[:at]) if d in rel)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), at)))
        ndcg += dcg / ideal if ideal else 0.0
    out[f"mrr@{at}"] = mrr / n
    out[f"ndcg@{at}"] = ndcg / n
    out["queries"] = n
    return out

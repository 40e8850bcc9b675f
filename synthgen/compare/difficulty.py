"""Retrieval difficulty of a run's val questions: each one a query over ALL val chunks.

Scored by synthgen.embed.retrieval (what task=evaluate uses too), with BM25 and the embedding
model that synthgen.embed.embedding opens.
"""

from __future__ import annotations

import logging
from typing import Any

from synthgen.compare.options import Options
from synthgen.compare.runs import Run
from synthgen.embed import retrieval

log = logging.getLogger(__name__)


class CachedEncoder:
    """A sentence-transformers model whose outputs are kept per text: runs that share a val
    corpus (same corpus and chunking) embed its chunks once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[str, Any] = {}

    def encode(self, texts: list[str], **kw: Any) -> Any:
        import torch

        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            kw["convert_to_tensor"] = True
            for t, e in zip(missing, self.model.encode(missing, **kw), strict=True):
                self.cache[t] = e
        return torch.stack([self.cache[t] for t in texts])


def val_task(run: Run) -> tuple[list[str], list[set[str]], list[str], list[str]]:
    """Each val question is a query over ALL val chunks; its own chunk is the relevant one."""
    rows = run.rows.get("val", [])
    corpus = run.corpus.get("val", {})
    queries = [r["question"] for r in rows]
    relevant = [{r["chunk_id"]} for r in rows]
    return queries, relevant, list(corpus), list(corpus.values())


def load_embedder(opts: Options) -> tuple[Any | None, str]:
    """(model or None, a line for the report saying what was used or why nothing was)."""
    if opts.embedder is None:
        return None, "embedding retrieval skipped (compare.embedder=null)"
    try:
        from synthgen.embed import embedding

        model = embedding.open_model(str(opts.embedder), "compare.embedder", opts.device)
    except Exception as e:  # offline, a wrong name, no weights: the rest of the report stands
        msg = " ".join(str(e).split())[:300].rstrip(".")
        log.warning("compare: embedder %s not loaded: %s", opts.embedder, msg)
        return None, (
            f"embedding retrieval not computed: {opts.embedder} could not be loaded "
            f"({type(e).__name__}: {msg})"
        )
    return CachedEncoder(model), f"embedding retrieval with {opts.embedder}"


def retrieval_scores(runs: list[Run], opts: Options) -> tuple[list[dict[str, Any]], str]:
    """One row per (run, method) with hit@k, MRR, NDCG over the run's val split."""
    out: list[dict[str, Any]] = []
    ok = [r for r in runs if r.ok]
    for run in ok:
        queries, relevant, ids, texts = val_task(run)
        m = retrieval.score_bm25(queries, relevant, ids, texts)
        out.append(_retrieval_row(run, "bm25", "bm25s", m, len(ids)))
    model, note = load_embedder(opts) if ok else (None, "no complete run")
    if model is not None:
        try:
            for run in ok:
                queries, relevant, ids, texts = val_task(run)
                m = retrieval.score_embeddings(
                    model, queries, relevant, ids, texts, opts.query_prefix, opts.batch_size
                )
                out.append(_retrieval_row(run, "embedding", str(opts.embedder), m, len(ids)))
        except Exception as e:  # e.g. out of memory: keep BM25 and say why
            out = [r for r in out if r["method"] != "embedding"]
            note = f"embedding retrieval failed: {type(e).__name__}: {' '.join(str(e).split())}"
            log.warning("compare: %s", note)
    return out, note


def _retrieval_row(
    run: Run, method: str, model: str, m: dict[str, float], n: int
) -> dict[str, Any]:
    scores = {key: (v if m["queries"] else None) for key, v in m.items() if key != "queries"}
    return {
        "run": run.label,
        "method": method,
        "model": model,
        "queries": int(m["queries"]),
        "val_chunks": n,
        **scores,
    }

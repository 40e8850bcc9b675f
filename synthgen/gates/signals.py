"""Per-row quality signals: numbers that say how good a question is, stored in every row and
every reject, so gates can act on them now and `task=filter` can act on them later.

- `logprob`: the generator's mean log-probability per token of the question reply (nats per
  token, <= 0; None where the engine did not report it). InPars keeps the queries the model
  was most sure of.
- `bm25_rank`: where BM25 ranks the question's own chunk among its split's chunks when the
  question is the query (1 = first; ties count against it; a question that shares no word
  with its chunk ranks last). Promptagator keeps a question only if a retriever finds its
  source again ("round-trip consistency"): a question that finds its chunk is about it.
- `embed_rank`, `easiness` (only with an embedder): the same rank by embedding cosine, and
  the cosine of question and chunk. NeMo Curator drops the easiest questions: one that
  copies its chunk's wording teaches an embedder little.
- `chunks`: how many chunks the ranks are among (a rank means little among 3 chunks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# the signals a row can carry; "chunks" is context for the ranks, not a signal to gate on
NAMES = ("logprob", "answer_logprob", "bm25_rank", "embed_rank", "easiness", "chunks")


def round4(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


class Scorer:
    """Ranks a question's own chunk among its split's chunks (BM25, and an embedder if given).

    corpus: split -> {chunk id: text}, the split's retrieval corpus (<split>_corpus.json).
    Indexes are built on first use per split; chunk embeddings are computed once.
    """

    def __init__(
        self,
        corpus: dict[str, dict[str, str]],
        embedder: Callable[[], Any] | None = None,
        query_prefix: str = "",
    ) -> None:
        self.corpus = {s: dict(c) for s, c in corpus.items()}
        self.load_embedder, self.query_prefix = embedder, query_prefix
        self._bm25: dict[str, tuple[Any, list[str]]] = {}
        self._emb: dict[str, tuple[Any, list[str]]] = {}
        self._model: Any = None

    @property
    def embeds(self) -> bool:
        return self.load_embedder is not None

    def question(self, split: str, chunk_id: str, question: str) -> dict[str, Any]:
        """The retrieval signals of one question about chunk `chunk_id` of `split`."""
        return self.questions(split, [chunk_id], [question])[0]

    def questions(
        self, split: str, chunk_ids: list[str], questions: list[str]
    ) -> list[dict[str, Any]]:
        """Signals of many questions of one split (task=filter scores a whole split at once)."""
        docs = self.corpus.get(split, {})
        out: list[dict[str, Any]] = [{"chunks": len(docs)} for _ in questions]
        if not questions or not docs:
            return out
        for o, r in zip(out, self._bm25_ranks(split, chunk_ids, questions), strict=True):
            o["bm25_rank"] = r
        if self.embeds:
            ranks, cos = self._embed_ranks(split, chunk_ids, questions)
            for o, r, c in zip(out, ranks, cos, strict=True):
                o["embed_rank"], o["easiness"] = r, c
        return out

    def _bm25_ranks(self, split: str, chunk_ids: list[str], questions: list[str]) -> list[int]:
        import bm25s

        if split not in self._bm25:
            ids = list(self.corpus[split])
            retriever = bm25s.BM25()
            texts = [self.corpus[split][i] for i in ids]
            retriever.index(
                bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False
            )
            self._bm25[split] = retriever, ids
        retriever, ids = self._bm25[split]
        pos = {c: i for i, c in enumerate(ids)}
        tokens = bm25s.tokenize(questions, stopwords="en", return_ids=False, show_progress=False)
        ranks = []
        for cid, toks in zip(chunk_ids, tokens, strict=True):
            scores = retriever.get_scores(toks) if toks else [0.0] * len(ids)
            ranks.append(_rank(list(map(float, scores)), pos.get(cid)))
        return ranks

    def _embed_ranks(
        self, split: str, chunk_ids: list[str], questions: list[str]
    ) -> tuple[list[int], list[float | None]]:
        import torch

        if self._model is None:
            assert self.load_embedder is not None
            self._model = self.load_embedder()
        if split not in self._emb:
            ids = list(self.corpus[split])
            texts = [self.corpus[split][i] for i in ids]
            vecs = self._model.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
            self._emb[split] = vecs, ids
        vecs, ids = self._emb[split]
        pos = {c: i for i, c in enumerate(ids)}
        q = self._model.encode(
            [self.query_prefix + x for x in questions],
            convert_to_tensor=True,
            normalize_embeddings=True,
        )
        sims = (q @ vecs.T).to(torch.float32).cpu().tolist()
        ranks, cos = [], []
        for cid, row in zip(chunk_ids, sims, strict=True):
            i = pos.get(cid)
            ranks.append(_rank(row, i))
            cos.append(None if i is None else round(row[i], 4))
        return ranks, cos


def _rank(scores: list[float], own: int | None) -> int:
    """1 + how many other chunks score at least as high as the own one: a tie counts against
    it (a retriever could have returned the other first), and an own score of 0 ranks last."""
    n = len(scores)
    if own is None:
        return n + 1  # the chunk is not in the corpus (dropped as a copy): never found
    mine = scores[own]
    if mine <= 0:
        return n
    return 1 + sum(s >= mine for i, s in enumerate(scores) if i != own)


def of_reply(logprob: float | None) -> dict[str, Any]:
    """The signals a reply has before its text is parsed: the generator's confidence."""
    return {"logprob": round4(logprob)}

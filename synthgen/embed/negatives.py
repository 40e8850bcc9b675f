"""Hard negatives: chunks of the same split that the base model ranks close to a question but
that are not its source chunk.

Candidates come from `sentence_transformers.util.mine_hard_negatives` (the split's questions
against every chunk of the split). The guard is applied here, not inside that function, so
that every candidate it removes is counted by reason: a chunk whose text is the positive's
(another file with the same text), or one scoring too close to the positive (a near-duplicate,
such as an overlapping neighbour chunk, which would teach the model that the answer is wrong).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synthgen.errors import ConfigError
from synthgen.rundir.reading import Split
from synthgen.schema import Mining

log = logging.getLogger(__name__)


@dataclass
class Guard:
    """Thresholds relative to the positive's score (cosine); None = that rule is off.

    The rules are those of mine_hard_negatives: relative_margin=0.05 keeps a candidate only if
    it scores at least 5% of |positive| below the positive (NV-Retriever's TopK-PercPos 95%).
    """

    relative_margin: float | None = Mining.relative_margin  # finetune.mining.*'s defaults
    absolute_margin: float | None = Mining.absolute_margin
    max_score: float | None = Mining.max_score

    def reason(self, score: float, positive: float) -> str | None:
        """Why a candidate with `score` is too close to a positive scoring `positive`, or None."""
        if self.relative_margin is not None and score > positive - abs(positive) * (
            self.relative_margin
        ):
            return "relative_margin"
        if self.absolute_margin is not None and score > positive - self.absolute_margin:
            return "absolute_margin"
        if self.max_score is not None and score > self.max_score:
            return "max_score"
        return None


@dataclass
class Mined:
    """k negatives (texts) per row, in row order, with counts for the summary.

    A row whose every candidate the guard removed (and with no safe chunk left to draw) has
    none: it is trained on in-batch negatives only.
    """

    negatives: list[list[str]]
    stats: dict[str, Any] = field(default_factory=dict)


def select(
    candidates: list[tuple[str, float]],
    positive_text: str,
    positive_score: float,
    k: int,
    guard: Guard,
    removed: Counter[str],
) -> list[str]:
    """The first k candidates (best first) that are not the positive and pass the guard.

    A candidate with the positive's exact text is never used, whatever its score.
    """
    kept: list[str] = []
    for text, score in candidates:
        if text == positive_text:
            removed["identical"] += 1
            continue
        why = guard.reason(score, positive_score)
        if why:
            removed[why] += 1
            continue
        if text not in kept:
            kept.append(text)
    return kept[:k]


def mine(
    model: Any,
    split: Split,
    k: int,
    guard: Guard,
    range_max: int,
    query_prefix: str = "",
    batch_size: int = 32,
    seed: int = 0,
    key: str = "finetune.hard_negatives",
) -> Mined:
    """k negatives per row of `split`, from its own chunks, ranked by `model`.

    The best-ranked candidates that pass the guard come first. A row left with fewer than k
    is topped up at random from chunks ranked below the whole window, when the window's lowest
    candidate passed the guard (so they pass too), as FlagEmbedding's own miner tops up. A row
    still short repeats its own negatives; a row with none keeps none.
    """
    texts = list(dict.fromkeys(split.corpus.values()))  # distinct texts, chunk order
    if len(texts) < 2:
        raise ConfigError(f"{key}: the {split.name} corpus has {len(texts)} distinct chunk(s)")
    window = max(1, min(range_max, len(texts) - 1))
    positives = [split.positive(r) for r in split.rows]
    found = _candidates(model, split, texts, positives, window, query_prefix, batch_size)

    same_text = Counter(split.corpus.values())  # chunk ids sharing one text (files with same text)
    rng = random.Random(seed)
    removed: Counter[str] = Counter()
    tally: Counter[str] = Counter()  # candidates, random_filled, repeated, without
    negatives: list[list[str]] = []
    for row, pos in zip(split.rows, positives, strict=True):
        docs, scores = found.get((row["question"], pos), ([pos], [1.0]))
        cands = list(zip(docs[1:], scores[1:], strict=True))
        tally["candidates"] += len(cands) + same_text[pos] - 1
        # other chunk ids with the positive's text were merged with it before ranking; count them
        removed["identical"] += same_text[pos] - 1
        kept = select(cands, pos, scores[0], k, guard, removed)
        negatives.append(_fill(kept, cands, pos, scores[0], k, guard, texts, rng, tally))
    stats = _stats(split, k, window, guard, removed, tally)
    log.info(
        "hard negatives: %d per question for %d questions; guard removed %d of %d candidates %s",
        k,
        len(split.rows),
        stats["removed_by_guard"],
        tally["candidates"],
        stats["removed"],
    )
    return Mined(negatives, stats)


def _candidates(
    model: Any,
    split: Split,
    texts: list[str],
    positives: list[str],
    window: int,
    query_prefix: str,
    batch_size: int,
) -> dict[tuple[str, str], tuple[list[str], list[float]]]:
    """(question, positive) -> ([positive, candidate_1, ...], [its score, score_1, ...]): every
    candidate of the window, best first; the guard runs afterwards so it can count."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    data = Dataset.from_dict({"anchor": [r["question"] for r in split.rows], "positive": positives})
    out = mine_hard_negatives(
        data,
        model,
        corpus=texts,
        range_max=window,
        num_negatives=window,  # all candidates of the window come back; the guard runs below
        sampling_strategy="top",
        output_format="labeled-list",
        output_scores=True,
        query_prompt=query_prefix,
        batch_size=batch_size,
        verbose=False,
    )
    # labeled-list: positive = [positive, candidate_1, ...], scores = [pos_score, score_1, ...]
    found: dict[tuple[str, str], tuple[list[str], list[float]]] = {}
    for a, docs, scores in zip(out["anchor"], out["positive"], out["scores"], strict=True):
        found[(a, docs[0])] = (docs, scores)
    return found


def _fill(
    kept: list[str],
    cands: list[tuple[str, float]],
    pos: str,
    pos_score: float,
    k: int,
    guard: Guard,
    texts: list[str],
    rng: random.Random,
    tally: Counter[str],
) -> list[str]:
    """A row's negatives topped up to k: at random from below the window, then repeated."""
    if len(kept) < k:
        # chunks outside the window score no higher than its lowest candidate: safe to draw
        # from only if that lowest one passed the guard (every rule is "score above a bound")
        lowest_ok = not cands or guard.reason(cands[-1][1], pos_score) is None
        seen = {pos, *(d for d, _ in cands)}
        pool = [t for t in texts if t not in seen] if lowest_ok else []
        extra = rng.sample(pool, min(k - len(kept), len(pool)))
        tally["random_filled"] += len(extra)
        kept += extra
    if not kept:  # every other chunk is too close to this question's source chunk
        tally["without"] += 1
    else:
        short = k - len(kept)  # a corpus too small for k: repeat (MNRL needs equal columns)
        kept += [kept[i % len(kept)] for i in range(short)]
        tally["repeated"] += short
    return kept


def _stats(
    split: Split, k: int, window: int, guard: Guard, removed: Counter[str], tally: Counter[str]
) -> dict[str, Any]:
    return {
        "per_question": k,
        "questions": len(split.rows),
        "corpus_chunks": len(split.corpus),
        "window": window,
        "candidates": tally["candidates"],
        "removed_by_guard": sum(removed.values()),
        "removed": dict(sorted(removed.items())),
        "guard": {
            "relative_margin": guard.relative_margin,
            "absolute_margin": guard.absolute_margin,
            "max_score": guard.max_score,
        },
        "random_filled": tally["random_filled"],
        "repeated": tally["repeated"],
        "questions_without_negative": tally["without"],
    }


def random_negatives(split: Split, k: int, seed: int = 0) -> list[list[str]]:
    """k other chunks of the split per row, at random (FlagEmbedding's advice without mining).

    Never the positive, nor a chunk with the positive's exact text.
    """
    rng = random.Random(seed)
    texts = list(dict.fromkeys(split.corpus.values()))
    out = []
    for row in split.rows:
        pos = split.positive(row)
        pool = [t for t in texts if t != pos]
        out.append(rng.sample(pool, min(k, len(pool))))
    return out

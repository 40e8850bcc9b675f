"""Pure text measures of a run's questions: variety, copying, shared openings, keywords.

Words are synthgen.gates.text's (`\\w+`, case folded), the ones the quality gates see.
"""

from __future__ import annotations

from collections import Counter

from synthgen.corpus import selection
from synthgen.gates.text import ngrams, words


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams / all n-grams over the texts (None without any n-gram)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else None


def copies_span(question: str, chunk: str, span: int) -> bool:
    """True when `span` consecutive words of the question appear in the chunk verbatim."""
    q = ngrams(words(question), span)
    return bool(q) and not set(q).isdisjoint(ngrams(words(chunk), span))


def openings(texts: list[str]) -> tuple[float | None, str | None]:
    """(share of texts whose first three words open another text too, 'most common opening
    (its share)')."""
    if not texts:
        return None, None
    opens = [tuple(w[:3]) if len(w := words(t)) >= 3 else None for t in texts]
    counts = Counter(o for o in opens if o)
    shared = sum(1 for o in opens if o and counts[o] > 1) / len(texts)
    top, n = counts.most_common(1)[0] if counts else ((), 0)
    return shared, f"{' '.join(top)} ({n / len(texts):.0%})" if n > 1 else "none repeats"


def length_stats(values: list[float]) -> dict[str, float | None]:
    """mean, p50, p90 (numpy's linear interpolation)."""
    import numpy as np

    if not values:
        return {"mean": None, "p50": None, "p90": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"mean": float(np.mean(values)), "p50": float(p50), "p90": float(p90)}


def keyword_coverage(keywords: list[str], match: str, texts: list[str]) -> float | None:
    """Share of keywords found (by the run's own match rule) in at least one of the texts."""
    keywords = [str(w) for w in keywords if str(w)]
    if not keywords:
        return None
    blob = "\n\n".join(texts)
    return sum(selection.keyword_matcher([w], match)(blob) for w in keywords) / len(keywords)

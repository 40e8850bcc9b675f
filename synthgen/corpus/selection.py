"""Stage 3: keep chunks inside the length bounds that mention a keyword; count why others go."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping

from synthgen.records import Chunk

# a selection reason that drops more than this share of a split's chunks is told in one line
# (dry run, run log, summary.json's `warnings`) with the setting to change
WARN_SHARE = 0.5


def keyword_matcher(words: list[str], match: str) -> Callable[[str], bool]:
    """`word`: whole word, any case. `substring`: the notebook's `w in text`, case-sensitive."""
    words = [str(w) for w in words if str(w)]
    if not words:
        return lambda text: True
    if match == "substring":
        return lambda text: any(w in text for w in words)
    if match == "word":
        # \b fails next to non-word characters ("C++"), so test the neighbours instead
        alt = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alt})(?!\w)", re.IGNORECASE)
        return lambda text: pattern.search(text) is not None
    raise ValueError(f"keywords.match must be 'word' or 'substring', got {match!r}")


def select(
    chunks: list[Chunk], min_chars: int, max_chars: int, words: list[str], match: str
) -> tuple[list[Chunk], Counter[str]]:
    """Keep min_chars < len(text) < max_chars (as the notebook) and a keyword hit.

    Returns (kept chunks in input order, rejected count per reason).
    """
    has_keyword = keyword_matcher(words, match)
    kept: list[Chunk] = []
    rejected: Counter[str] = Counter()
    for c in chunks:
        n = len(c.text)
        if n <= min_chars:
            rejected["too_short"] += 1
        elif n >= max_chars:
            rejected["too_long"] += 1
        elif not has_keyword(c.text):
            rejected["no_keyword"] += 1
        else:
            kept.append(c)
    return kept, rejected


def warnings(
    split: str,
    total: int,
    rejected: Mapping[str, int],
    min_chars: int,
    max_chars: int,
    bounds: str,
) -> list[str]:
    """One line for each reason (length bounds, keywords) that drops more than WARN_SHARE of
    the split's `total` chunks, naming the setting to change.

    A corpus whose text packs more characters into a token than prose (technical help, code)
    can lose most of its chunks to max_chars with nothing but a count in the summary to say so.
    """
    fit = "" if bounds == "fit" else " or use chunking.bounds=fit"
    why = {
        "too_long": f"are too long (chunking.max_chars={max_chars} characters); raise it{fit}",
        "too_short": f"are too short (chunking.min_chars={min_chars} characters); lower it{fit}",
        "no_keyword": "mention none of keywords.words; use keywords=none to keep every chunk, "
        "or other words",
    }
    out = []
    for reason, what in why.items():
        n = rejected.get(reason, 0)
        if total and n / total > WARN_SHARE:
            out.append(f"warning: {n} of {total} {split} chunks ({n / total:.0%}) {what}")
    return out

"""Near-duplicates: passages shared by train and val, copies inside a split, repeated questions.

Chunks are compared by their word shingles (k words in a row, after case, accents and
punctuation are folded), exactly, through an inverted index: a corpus of a few thousand
chunks takes well under a second, with no MinHash error to tune. (datasketch's MinHash LSH
would estimate the same Jaccard for corpora too big for that.)

- Leak between splits: a val chunk whose shingles lie mostly inside one train chunk
  (containment: shared / the smaller chunk's shingles) is the same passage. Containment, not
  Jaccard, because a copied passage seldom falls on the same chunk boundaries: a val chunk
  that holds half of a train chunk's paragraph plus its own text is still a leak.
- Copies within a split (the same file under two names, a reprinted chapter): a chunk whose
  Jaccard with an earlier chunk of its split reaches the threshold is generated once.
- Questions: a question whose folded text is within `question_threshold` (difflib ratio) of
  an earlier one of its split, with the same numbers in it, is a duplicate, like an exact
  repeat: "What is the director's name?" and "What was the director's name" are one
  question (0.95), "When was the film released?" and "... restored?" are two (0.89).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from synthgen.records import Chunk

_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\d+")


def fold(text: str) -> str:
    """Case, accents, punctuation and spacing folded: what makes two texts "the same"."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_WORD.findall(text))


def shingles(text: str, k: int) -> set[int]:
    words = fold(text).split()
    if len(words) < k:
        return {hash(" ".join(words))} if words else set()
    return {hash(" ".join(words[i : i + k])) for i in range(len(words) - k + 1)}


@dataclass(frozen=True)
class Match:
    """Chunk `chunk` (a copy, or the val side of a leak) and the chunk it repeats."""

    chunk: Chunk
    of: Chunk
    similarity: float  # Jaccard (copies) or containment (leaks), 0-1

    def record(self, a: str = "chunk", b: str = "copy_of") -> dict[str, Any]:
        return {
            f"{a}_id": self.chunk.id,
            f"{a}_source": self.chunk.source,
            f"{b}_id": self.of.id,
            f"{b}_source": self.of.source,
            "similarity": round(self.similarity, 3),
        }


class ShingleIndex:
    """Chunks by shingle; `best(chunk)` is the indexed chunk sharing the most shingles."""

    def __init__(self, k: int, min_shingles: int) -> None:
        self.k, self.min = k, min_shingles
        self.by_shingle: dict[int, list[int]] = {}
        self.chunks: list[Chunk] = []
        self.sizes: list[int] = []

    def add(self, chunk: Chunk, sh: set[int] | None = None) -> None:
        sh = shingles(chunk.text, self.k) if sh is None else sh
        n = len(self.chunks)
        self.chunks.append(chunk)
        self.sizes.append(len(sh))
        for s in sh:
            self.by_shingle.setdefault(s, []).append(n)

    def overlaps(self, sh: set[int]) -> Counter[int]:
        shared: Counter[int] = Counter()
        for s in sh:
            for n in self.by_shingle.get(s, ()):
                shared[n] += 1
        return shared


def copies(chunks: list[Chunk], k: int, threshold: float, min_shingles: int) -> list[Match]:
    """Chunks that repeat an earlier chunk of the same list (Jaccard >= threshold)."""
    index = ShingleIndex(k, min_shingles)
    texts: dict[str, int] = {}  # text -> its first chunk in the index
    out = []
    for c in chunks:
        sh = shingles(c.text, k)
        best: tuple[float, int] | None = None
        if c.text in texts:
            best = (1.0, texts[c.text])
        elif len(sh) >= min_shingles:
            for n, shared in index.overlaps(sh).items():
                j = shared / (len(sh) + index.sizes[n] - shared)
                if j >= threshold and (best is None or j > best[0]):
                    best = (j, n)
        if best is not None:
            out.append(Match(c, index.chunks[best[1]], best[0]))
        else:
            texts[c.text] = len(index.chunks)
            index.add(c, sh)
    return out


def leaks(
    train: list[Chunk], val: list[Chunk], k: int, threshold: float, min_shingles: int
) -> list[Match]:
    """Val chunks whose shingles lie inside a train chunk (containment >= threshold)."""
    index = ShingleIndex(k, min_shingles)
    for c in train:
        sh = shingles(c.text, k)
        if len(sh) >= min_shingles:
            index.add(c, sh)
    out = []
    for c in val:
        sh = shingles(c.text, k)
        if len(sh) < min_shingles:
            continue
        best: tuple[float, int] | None = None
        for n, shared in index.overlaps(sh).items():
            contain = shared / min(len(sh), index.sizes[n])
            if contain >= threshold and (best is None or contain > best[0]):
                best = (contain, n)
        if best is not None:
            out.append(Match(c, index.chunks[best[1]], best[0]))
    return out


# A question is compared in full (difflib) only with the few earlier questions that share the
# most of its rarest words: a near-duplicate differs from it in a word or two, so it shares
# nearly all of them. This keeps a split of 100,000 questions (or the same few words over and
# over, as a random-weight model writes) near-linear instead of comparing every pair.
RARE_WORDS = 4  # the query's rarest words whose questions are candidates (words)
POSTING_CAP = 512  # per word, only its latest questions are looked at (questions)
CANDIDATES = 16  # at most this many candidates get the full comparison (questions)


class QuestionSet:
    """The questions of one split so far; `match(q)` is an earlier one q repeats, or None."""

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.exact: dict[str, str] = {}  # folded -> the question as first asked
        self.words: dict[str, frozenset[str]] = {}  # folded -> its words
        self.by_word: dict[str, list[str]] = {}  # folded word -> folded questions with it

    def match(self, question: str) -> tuple[str, float] | None:
        key = fold(question)
        if key in self.exact:
            return self.exact[key], 1.0
        if self.threshold >= 1.0 or not key:
            return None
        words = frozenset(key.split())
        by_word = self.by_word
        known = sorted((w for w in words if w in by_word), key=lambda w: (len(by_word[w]), w))
        votes = Counter(o for w in known[:RARE_WORDS] for o in by_word[w][-POSTING_CAP:])
        shared = {o: len(words & self.words[o]) for o, _ in votes.most_common(4 * CANDIDATES)}
        ranked = sorted(shared, key=lambda o: -shared[o])[:CANDIDATES]
        sm = SequenceMatcher(None, autojunk=False)
        sm.set_seq2(key)
        numbers = _DIGITS.findall(key)
        best: tuple[float, str] | None = None
        for other in ranked:
            if shared[other] < len(words) / 2:  # too few words in common to be the same question
                continue
            if _DIGITS.findall(other) != numbers:  # "in 1990?" and "in 1991?" differ
                continue
            sm.set_seq1(other)
            if sm.real_quick_ratio() < self.threshold or sm.quick_ratio() < self.threshold:
                continue
            r = sm.ratio()
            if r >= self.threshold and (best is None or r > best[0]):
                best = (r, other)
        return (self.exact[best[1]], best[0]) if best else None

    def add(self, question: str) -> None:
        key = fold(question)
        if key in self.exact:
            return
        self.exact[key] = question
        self.words[key] = frozenset(key.split())
        for w in self.words[key]:
            self.by_word.setdefault(w, []).append(key)

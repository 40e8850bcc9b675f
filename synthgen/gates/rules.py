"""The quality gates, one small class each, as datatrove's filters are.

`check(text, chunk[, question])` returns None (keep) or a `Drop(reason, score, threshold)`;
synthgen.gates.filters builds the set a config names and decides which reason counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from synthgen.errors import ConfigError
from synthgen.gates.text import STOPWORDS, interrogative, looks_english, ngrams, stem, words

_UNIT_LOOP = re.compile(r"(.{2,12}?)\1{2,}", re.DOTALL)  # a piece said 3 times or more in a row
_LETTER = re.compile(r"[^\W\d_]")  # a letter: "0000" and "____" are numbers and rules, not loops
_WORDY = re.compile(r"[^\W_]")  # a letter or digit: "-----" is no word
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+|\n+")
PLACEHOLDER = re.compile(r"\{(?:context|question|num_questions|previous|examples|passage|answer)\}")
# reasons a gate may give; every other reason in rejected.jsonl comes from parsing or dedup
REASONS = (
    "prompt_echo",
    "repeated_sentence",
    "repeated_ngrams",
    "repeated_chars",
    "not_question",
    "meta_reference",
    "refusal",
    "too_short",
    "too_long",
    "ungrounded",
    "ungrounded_embedding",
    "restated_question",
    "near_duplicate_answer",
    "round_trip",
    "low_logprob",
    "too_easy",
)


@lru_cache(maxsize=512)
def _chunk_ngrams(chunk: str, n: int) -> frozenset[tuple[str, ...]]:
    return frozenset(ngrams(words(chunk), n))


@lru_cache(maxsize=512)
def _stem_set(text: str) -> frozenset[str]:
    """The stems of a chunk's (or a question's) words, once per text."""
    return frozenset(stem(w) for w in words(text))


def _frame_stems(frame_words: Iterable[str]) -> frozenset[str]:
    return frozenset(s for ws in frame_words for s in _stem_set(ws))


def _content_stems(text: str, frame: frozenset[str]) -> list[str]:
    """Stems of the words that can carry a topic: not stopwords, not frame words."""
    return [s for w in words(text) if w not in STOPWORDS and (s := stem(w)) not in frame]


@dataclass(frozen=True)
class Drop:
    """Why a text was dropped: the gate's reason, its score and the threshold it crossed."""

    reason: str
    score: float
    threshold: float
    detail: str = ""  # e.g. the phrase that matched

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": round(self.score, 4), "threshold": self.threshold}
        if self.detail:
            out["detail"] = self.detail
        return out


class PromptEcho:
    """The output repeats the prompt template's own wording (its instructions, not the chunk).

    Score: share of the output's word n-grams that occur in the template text and not in the
    chunk or the question (an n-gram those have too is their wording, not the prompt's).
    """

    def __init__(self, templates: Iterable[str], ngram: int, max_share: float) -> None:
        self.n, self.max_share = ngram, max_share
        self.grams: set[tuple[str, ...]] = set()
        for t in templates:
            for part in PLACEHOLDER.split(t or ""):  # no n-gram spans a placeholder
                self.grams.update(ngrams(words(part), ngram))

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        grams = ngrams(words(text), self.n)
        if not grams or not self.grams:
            return None
        own = _chunk_ngrams(chunk, self.n) | _chunk_ngrams(question, self.n)
        echo = sum(1 for g in grams if g in self.grams and g not in own)
        share = echo / len(grams)
        return Drop("prompt_echo", share, self.max_share) if share > self.max_share else None


class Repetition:
    """Degenerate repetition inside one output: a sentence said twice, or n-grams looping.

    repeated_sentence: the most frequent sentence (its words) of at least min_sentence_words
    words occurs more than max_sentence_repeats times; shorter pieces repeat in good prose
    ("if... elif... elif... else."). repeated_ngrams: the share of the output's words covered
    by a word n-gram that occurs twice or more exceeds max_share. repeated_chars: a piece of 2-12
    characters with a letter in it said more than max_unit_repeats times in a row, which words
    do not show ("key_key_key_key_key_..." is one \\w+ word); 0 = off.
    """

    def __init__(
        self,
        max_sentence_repeats: int,
        ngram: int,
        max_share: float,
        min_sentence_words: int = 1,
        max_unit_repeats: int = 0,
    ) -> None:
        self.max_repeats, self.n, self.max_share = max_sentence_repeats, ngram, max_share
        self.min_sentence_words, self.max_units = min_sentence_words, max_unit_repeats

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        if self.max_units:
            for m in _UNIT_LOOP.finditer(text):
                copies = len(m.group(0)) // len(m.group(1))
                if copies > self.max_units and _LETTER.search(m.group(1)):
                    return Drop("repeated_chars", copies, self.max_units, m.group(1))
        pieces = (words(s) for s in _SENTENCE_END.split(text))
        sentences = [" ".join(ws) for ws in pieces if ws and len(ws) >= self.min_sentence_words]
        if sentences:
            top, count = Counter(sentences).most_common(1)[0]
            if count > self.max_repeats:
                return Drop("repeated_sentence", count, self.max_repeats, top[:80])
        ws = words(text)
        grams = ngrams(ws, self.n)
        if not grams:
            return None
        counts = Counter(grams)
        covered = [False] * len(ws)
        for i, g in enumerate(grams):
            if counts[g] > 1:
                covered[i : i + self.n] = [True] * self.n
        share = sum(covered) / len(ws)
        if share > self.max_share:
            top = max(counts, key=counts.get)
            return Drop("repeated_ngrams", share, self.max_share, " ".join(top))
        return None


class NotQuestion:
    """The question is not one: no '?' and no interrogative form.

    Score: signals found, '?' and (English only) an interrogative form; threshold: how many
    are needed (min_signals, 1 = either, 2 = both). Where the form cannot be checked (text
    with no common English word) the '?' alone is needed.
    """

    def __init__(self, min_signals: int) -> None:
        self.min_signals = min_signals

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        mark = "?" in text or "？" in text
        ws = words(text)
        need = self.min_signals
        if looks_english(ws):
            found = int(mark) + int(interrogative(text))
        else:
            found, need = int(mark), min(need, 1)
        return Drop("not_question", found, need) if found < need else None


class Phrases:
    """Regular expressions (case-insensitive) that disqualify a text; score = matches."""

    def __init__(self, reason: str, patterns: Iterable[str], key: str) -> None:
        self.reason = reason
        self.patterns = []
        for p in patterns:
            try:
                self.patterns.append(re.compile(str(p), re.IGNORECASE))
            except re.error as e:
                raise ConfigError(f"{key}: bad regular expression {str(p)!r}: {e}") from None

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        hits = [m.group(0) for p in self.patterns if (m := p.search(text))]
        return Drop(self.reason, len(hits), 0, hits[0]) if hits else None


class Length:
    """Too few or too many words (whitespace-separated pieces with a letter or digit in them:
    an answer that is only the prompt's "---------------------" rule has none)."""

    def __init__(self, min_words: int, max_words: int) -> None:
        self.min_words, self.max_words = min_words, max_words

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        n = sum(1 for piece in text.split() if _WORDY.search(piece))
        if n < self.min_words:
            return Drop("too_short", n, self.min_words)
        if n > self.max_words:
            return Drop("too_long", n, self.max_words)
        return None


class LexicalGrounding:
    """The text is not drawn from its chunk: too few of its content words occur there.

    Score: share of the text's content words (not stopwords, not frame words; Snowball stems)
    found among the chunk's words. Frame words ("name", "purpose", "first") shape a question
    without naming its topic, so they neither ground a text nor count against it: "What is the
    name of the student who is the first to answer?" on a chunk about sockets matches "name"
    and "first" and nothing it is about. Only the chunk counts: an answer that restates an
    off-topic question is off-topic too. Texts with fewer than min_content_words content words
    ("Yes.") pass.
    """

    def __init__(
        self, min_overlap: float, min_content_words: int, frame_words: Iterable[str] = ()
    ) -> None:
        self.min_overlap, self.min_content = min_overlap, min_content_words
        self.frame = _frame_stems(frame_words)

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        content = _content_stems(text, self.frame)
        if len(content) < max(self.min_content, 1):
            return None
        known = _stem_set(chunk)
        share = sum(1 for w in content if w in known) / len(content)
        return Drop("ungrounded", share, self.min_overlap) if share < self.min_overlap else None


class RestatedQuestion:
    """The answer only gives its question back: none of its content words is new.

    "What is the name of the clinic?" -> "Clinic"; "What is the difference between a class and a
    module?" -> "A class is a module."; "What is the current state of the LED?" -> "The current
    state of the LED is:". Score: content words (not stopwords, not frame words; stemmed) that
    are not in the question; below min_new_words: reason restated_question. An answer with no
    content word at all ("Yes.") is left to the other gates.
    """

    def __init__(self, min_new_words: int, frame_words: Iterable[str] = ()) -> None:
        self.min_new = min_new_words
        self.frame = _frame_stems(frame_words)

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        content = _content_stems(text, self.frame)
        if not content or not question:
            return None
        asked = _stem_set(question)
        new = sum(1 for w in content if w not in asked)
        return Drop("restated_question", new, self.min_new) if new < self.min_new else None


class EmbeddingGrounding:
    """The answer's embedding is too far from its chunk's (cosine similarity, -1..1).

    `encode(texts) -> normalized vectors` comes from the embedding model, loaded on first use.
    """

    def __init__(self, load: Callable[[], Any], min_similarity: float) -> None:
        self.load, self.min_similarity = load, min_similarity
        self.model: Any = None
        self.chunks: dict[str, Any] = {}

    def _encode(self, texts: list[str]) -> Any:
        if self.model is None:
            self.model = self.load()
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        if chunk not in self.chunks:
            if len(self.chunks) > 4096:
                self.chunks.clear()
            self.chunks[chunk] = self._encode([chunk])[0]
        sim = float(self._encode([text])[0] @ self.chunks[chunk])
        if sim < self.min_similarity:
            return Drop("ungrounded_embedding", sim, self.min_similarity)
        return None


class NearDuplicateAnswers:
    """An answer (nearly) the same as an accepted answer of another chunk of the split.

    Score: Jaccard similarity of word n-gram sets; answers shorter than min_words are exempt
    (short facts such as a year or a name repeat legitimately). Which one stays is the one
    accepted first: finishing order while generating, dataset order in task=filter and merge.
    Only the earlier answers that share the most of this answer's rarest n-grams are scored
    (a near-duplicate shares most of its n-grams, the rare ones too), so a split of 100,000
    answers stays near-linear instead of comparing every pair.
    """

    RARE = 16  # the answer's rarest n-grams whose answers are candidates (n-grams)
    POSTING_CAP = 512  # per n-gram, only its latest answers are looked at (answers)
    CANDIDATES = 32  # at most this many candidates are scored (answers)

    def __init__(self, ngram: int, max_similarity: float, min_words: int) -> None:
        self.n, self.max_similarity, self.min_words = ngram, max_similarity, min_words
        self.index: dict[str, dict[tuple[str, ...], list[int]]] = {}  # split -> n-gram -> ids
        self.kept: dict[str, list[tuple[str, frozenset]]] = {}  # split -> (chunk id, n-grams)

    def _shingles(self, text: str) -> frozenset[tuple[str, ...]] | None:
        ws = words(text)
        return frozenset(ngrams(ws, self.n)) if len(ws) >= max(self.min_words, self.n) else None

    def check(self, text: str, split: str, chunk_id: str) -> Drop | None:
        sh = self._shingles(text)
        if not sh:
            return None
        index, kept = self.index.get(split, {}), self.kept.get(split, [])
        known = sorted((g for g in sh if g in index), key=lambda g: (len(index[g]), g))
        votes = Counter(i for g in known[: self.RARE] for i in index[g][-self.POSTING_CAP :])
        best, best_id = 0.0, ""
        for i, _ in votes.most_common(self.CANDIDATES):
            other_chunk, other = kept[i]
            if other_chunk == chunk_id:
                continue
            n = len(sh & other)
            sim = n / (len(sh) + len(other) - n)
            if sim > best:
                best, best_id = sim, other_chunk
        if best >= self.max_similarity:
            return Drop("near_duplicate_answer", best, self.max_similarity, f"chunk {best_id}")
        return None

    def add(self, text: str, split: str, chunk_id: str) -> None:
        sh = self._shingles(text)
        if not sh:
            return
        kept = self.kept.setdefault(split, [])
        index = self.index.setdefault(split, {})
        for g in sh:
            index.setdefault(g, []).append(len(kept))
        kept.append((chunk_id, sh))


# --- gates on a question's signals (synthgen/gates/signals.py) ------------------------------
# A row without the signal a gate reads (an endpoint that returns no log-probabilities, no
# embedder) is not judged by that gate: it passes, and its signal shows null.


class RoundTrip:
    """Promptagator's round-trip consistency: the question, as a query over its split's
    chunks, must find its own chunk within the top k. One that does not is off its chunk,
    too vague to find it, or about what many chunks share."""

    def __init__(self, k: int, retriever: str) -> None:
        self.k, self.retriever = k, retriever
        self.key = "bm25_rank" if retriever == "bm25" else "embed_rank"

    def check_signals(self, sig: dict[str, Any]) -> Drop | None:
        rank = sig.get(self.key)
        if rank is None or rank <= self.k:
            return None
        return Drop("round_trip", rank, self.k, f"{self.retriever} rank of its own chunk")


class LogprobFloor:
    """InPars: the generator's own confidence. A question the model wrote with a low mean
    token log-probability is more often a garbled or off-pattern one."""

    def __init__(self, floor: float) -> None:
        self.floor = floor

    def check_signals(self, sig: dict[str, Any]) -> Drop | None:
        lp = sig.get("logprob")
        if lp is None or lp >= self.floor:
            return None
        return Drop("low_logprob", lp, self.floor)


class Easiness:
    """NeMo Curator's easiness filter: a question whose embedding is this close to its chunk's
    copies the chunk's wording, and teaches an embedder little."""

    def __init__(self, max_similarity: float) -> None:
        self.max_similarity = max_similarity

    def check_signals(self, sig: dict[str, Any]) -> Drop | None:
        e = sig.get("easiness")
        if e is None or e <= self.max_similarity:
            return None
        return Drop("too_easy", e, self.max_similarity)

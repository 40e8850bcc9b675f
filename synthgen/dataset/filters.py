"""Stage 5: quality gates for parsed questions and answers (the `filters` config group).

A row is worth training an embedder on only if its question is a question, written for the
chunk and not copied from the prompt, and its answer comes from the chunk. Each gate is a
small class, as datatrove's filters are: `check(text, chunk)` returns None (keep) or a
`Drop(reason, score, threshold)`. The first gate that drops a text decides its one reason;
the pipeline writes it to rejected.jsonl and counts it in summary.json.

Gates look at words (`\\w+`, case folded): the checks that need a language (interrogative
form, stopwords, the phrase lists) are written for English and stay out of the way elsewhere.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.config import ConfigError

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+|\n+")
_CLAUSE_END = re.compile(r"[.!?;:,()\"“”。？！]|\s[-–—]\s|\n")
PLACEHOLDER = re.compile(r"\{(?:context|question|num_questions|previous)\}")

_WH = "what which who whom whose when where why how whether"
_AUX = (
    "is are was were am do does did have has had can could will would shall should "
    "may might must isn aren wasn weren don doesn didn haven hasn hadn can't cannot couldn "
    "won wouldn shouldn"
)
# very common English words: a text with none of them is not checked for English-only rules
_ENGLISH = (
    "the a an of to in on at for and or but is are was were be been do does did what which who "
    "whom whose when where why how that this these those it its with from by as not there their "
    "they he she his her we you i"
)
_STOP = (
    "about above after again against all also am any because before being below between both "
    "can could down during each few further had has have having here hers herself him himself "
    "into itself just me more most my myself no nor now off once only other our ours out over "
    "own same should so some such than then theirs them themselves through too under until up "
    "very while will would your yours yourself yes one may might must shall upon s t"
)
WH_WORDS, AUX_WORDS = frozenset(_WH.split()), frozenset(_AUX.split())
ENGLISH = frozenset(_ENGLISH.split())
STOPWORDS = ENGLISH | frozenset(_STOP.split())
# reasons a gate may give; every other reason in rejected.jsonl comes from parsing or dedup
REASONS = (
    "prompt_echo",
    "repeated_sentence",
    "repeated_ngrams",
    "not_question",
    "meta_reference",
    "refusal",
    "too_short",
    "too_long",
    "ungrounded",
    "ungrounded_embedding",
    "near_duplicate_answer",
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def ngrams(ws: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball's English stemmer (nltk, pure Python): "analyses" meets "analysis"."""
    return _stemmer().stem(word)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.snowball import EnglishStemmer

    return EnglishStemmer()


@lru_cache(maxsize=512)
def _chunk_ngrams(chunk: str, n: int) -> frozenset[tuple[str, ...]]:
    return frozenset(ngrams(words(chunk), n))


@lru_cache(maxsize=512)
def _chunk_stems(chunk: str) -> frozenset[str]:
    return frozenset(stem(w) for w in words(chunk))


def looks_english(ws: list[str]) -> bool:
    return any(w in ENGLISH for w in ws)


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


# --- the gates ----------------------------------------------------------------------------------


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
    by a word n-gram that occurs twice or more exceeds max_share.
    """

    def __init__(
        self, max_sentence_repeats: int, ngram: int, max_share: float, min_sentence_words: int = 1
    ) -> None:
        self.max_repeats, self.n, self.max_share = max_sentence_repeats, ngram, max_share
        self.min_sentence_words = min_sentence_words

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
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


def interrogative(text: str) -> bool:
    """English interrogative form: some clause opens with an auxiliary verb ("Did ...",
    "..., is it ...") or has a wh-word among its first three words ("In what year ...")."""
    for clause in _CLAUSE_END.split(text):
        ws = words(clause)
        if ws and (ws[0] in AUX_WORDS or any(w in WH_WORDS for w in ws[:3])):
            return True
    return False


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
    """Too few or too many words (whitespace-separated)."""

    def __init__(self, min_words: int, max_words: int) -> None:
        self.min_words, self.max_words = min_words, max_words

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        n = len(text.split())
        if n < self.min_words:
            return Drop("too_short", n, self.min_words)
        if n > self.max_words:
            return Drop("too_long", n, self.max_words)
        return None


class LexicalGrounding:
    """The text is not drawn from its chunk: too few of its content words occur there.

    Score: share of the text's content words (not stopwords; Snowball stems) found among the
    chunk's words. Only the chunk counts: an answer that restates an off-topic question is
    off-topic too. Texts with fewer than min_content_words content words ("Yes.") pass.
    """

    def __init__(self, min_overlap: float, min_content_words: int) -> None:
        self.min_overlap, self.min_content = min_overlap, min_content_words

    def check(self, text: str, chunk: str, question: str = "") -> Drop | None:
        content = [stem(w) for w in words(text) if w not in STOPWORDS]
        if len(content) < max(self.min_content, 1):
            return None
        known = _chunk_stems(chunk)
        share = sum(1 for w in content if w in known) / len(content)
        return Drop("ungrounded", share, self.min_overlap) if share < self.min_overlap else None


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


# --- the set of gates a config names -------------------------------------------------------------


def _node(cfg: Any) -> dict[str, Any]:
    node = cfg.get("filters") if cfg is not None else None
    if node is None:
        return {"name": "none", "enabled": False}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _templates(prompt: Any) -> list[str]:
    if prompt is None:
        return []
    return [str(prompt.get(k) or "") for k in ("system", "question", "followup", "answer")]


class Gates:
    """The gates of `filters` for one prompt: question(), answer(), then the cross-row check.

    Built from the whole config (`filters`, `prompt`, and `embedder` for the optional
    embedding gate); a config without `filters` (an older run dir) gets no gates.
    """

    def __init__(self, cfg: Any, prompt: Any = None) -> None:
        node = _node(cfg)
        self.name = str(node.get("name", "custom"))
        self.questions: list[Any] = []
        self.answers: list[Any] = []
        self.duplicates: NearDuplicateAnswers | None = None
        if not node.get("enabled", True):
            return

        def on(key: str) -> dict[str, Any] | None:
            g = node.get(key) or {}
            return g if g.get("enabled", True) and g else None

        if g := on("prompt_echo"):
            _num(g, "filters.prompt_echo", ngram=(1, None), max_share=(0, 1))
            echo = PromptEcho(_templates(prompt), g["ngram"], g["max_share"])
            self.questions.append(echo)
            self.answers.append(echo)
        if g := on("repetition"):
            g.setdefault("min_sentence_words", 1)  # a config saved before the key existed
            _num(
                g,
                "filters.repetition",
                max_sentence_repeats=(1, None),
                min_sentence_words=(1, None),
                ngram=(1, None),
                max_share=(0, 1),
            )
            rep = Repetition(
                g["max_sentence_repeats"], g["ngram"], g["max_share"], g["min_sentence_words"]
            )
            self.questions.append(rep)
            self.answers.append(rep)
        if g := on("refusal"):
            ref = Phrases("refusal", g.get("patterns") or [], "filters.refusal.patterns")
            self.questions += [ref] if g.get("questions", True) else []
            self.answers += [ref] if g.get("answers", True) else []
        if g := on("not_question"):
            _num(g, "filters.not_question", min_signals=(1, 2))
            self.questions.append(NotQuestion(g["min_signals"]))
        if g := on("meta_reference"):
            meta = Phrases(
                "meta_reference", g.get("patterns") or [], "filters.meta_reference.patterns"
            )
            self.questions += [meta] if g.get("questions", True) else []
            self.answers += [meta] if g.get("answers", False) else []
        if g := on("length"):
            _num(
                g,
                "filters.length",
                question_min_words=(0, None),
                question_max_words=(1, None),
                answer_min_words=(0, None),
                answer_max_words=(1, None),
            )
            self.questions.append(Length(g["question_min_words"], g["question_max_words"]))
            self.answers.append(Length(g["answer_min_words"], g["answer_max_words"]))
        if g := on("grounding"):
            if g.get("lexical", True):
                _num(g, "filters.grounding", min_overlap=(0, 1), min_content_words=(0, None))
                self.answers.append(LexicalGrounding(g["min_overlap"], g["min_content_words"]))
            if g.get("questions", False):
                _num(g, "filters.grounding", question_min_overlap=(0, 1))
                self.questions.append(
                    LexicalGrounding(g["question_min_overlap"], g["min_content_words"])
                )
            if g.get("embedding", False):
                _num(g, "filters.grounding", min_similarity=(-1, 1))
                self.answers.append(EmbeddingGrounding(_embedder(cfg, g), g["min_similarity"]))
        if g := on("near_duplicate_answer"):
            _num(
                g,
                "filters.near_duplicate_answer",
                ngram=(1, None),
                max_similarity=(0, 1),
                min_words=(0, None),
            )
            self.duplicates = NearDuplicateAnswers(g["ngram"], g["max_similarity"], g["min_words"])

    @property
    def active(self) -> bool:
        return bool(self.questions or self.answers or self.duplicates)

    def prepare(self) -> None:
        """Load what a gate needs (the embedding model) now rather than at the first answer."""
        for g in self.answers:
            if isinstance(g, EmbeddingGrounding) and g.model is None:
                g.model = g.load()

    def question(self, text: str, chunk: str) -> Drop | None:
        return next((d for g in self.questions if (d := g.check(text, chunk))), None)

    def answer(
        self, text: str | None, chunk: str, question: str = "", split: str = "", chunk_id: str = ""
    ) -> Drop | None:
        """Every answer gate, then the near-duplicate check against accepted answers.

        A questions-only row (prompt.answer: null) has no answer: nothing to gate."""
        if text is None:
            return None
        d = next((d for g in self.answers if (d := g.check(text, chunk, question))), None)
        if d is None and self.duplicates is not None:
            d = self.duplicates.check(text, split, chunk_id)
        return d

    def accept(self, answer: str | None, split: str, chunk_id: str) -> None:
        """Remember an accepted answer for the near-duplicate check of later ones."""
        if self.duplicates is not None and answer is not None:
            self.duplicates.add(answer, split, chunk_id)


def _num(g: dict[str, Any], key: str, **bounds: tuple[float, float | None]) -> None:
    """Each named key is a number within its bounds, or one line naming it."""
    for name, (low, high) in bounds.items():
        v = g.get(name)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and v >= low
        ok = ok and (high is None or v <= high)
        if not ok:
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ConfigError(f"{key}.{name}: must be a number {span}, got {v!r}")


def _embedder(cfg: Any, g: dict[str, Any]) -> Callable[[], Any]:
    """The embedding gate's model, loaded when first needed (never for a dry run)."""
    from synthgen.embed import embedding

    path = g.get("embedder")
    key = "filters.grounding.embedder" if path else "embedder.name_or_path"
    embedding.check_embedder(cfg, path, key)  # a wrong name stops the run before any model
    return lambda: embedding.load_embedder(cfg, path, key)


def name(cfg: Any) -> str:
    """The gate set's name (filters.name) for summaries; 'none' for a config without filters."""
    return str(_node(cfg).get("name", "custom"))


def check(cfg: Any) -> None:
    """Validate `filters` (numbers in range, regular expressions compile); loads nothing."""
    Gates(cfg, cfg.get("prompt"))


def counts(rejected: Iterable[dict]) -> dict[str, int]:
    """Gate rejects per 'stage:reason' (parse and dedup rejects are not the gates')."""
    c = Counter(f"{r['stage']}:{r['reason']}" for r in rejected if r.get("reason") in REASONS)
    return dict(sorted(c.items()))

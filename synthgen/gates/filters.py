"""Stage 5: quality gates for parsed questions and answers (the `filters` config group).

A row is worth training an embedder on only if its question is a question, written for the
chunk and not copied from the prompt, and its answer comes from the chunk. Each gate is a
small class (synthgen.gates.rules), as datatrove's filters are: `check(text, chunk)`
returns None (keep) or a `Drop(reason, score, threshold)`. The first gate that drops a text
decides its one reason; the pipeline writes it to rejected.jsonl and counts it in summary.json.

Gates look at words (`\\w+`, case folded; synthgen.gates.text): the checks that need a
language (interrogative form, stopwords, the phrase lists) are written for English and stay
out of the way elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.errors import ConfigError
from synthgen.gates import signals
from synthgen.gates.rules import (  # noqa: F401  (the gates are part of this module's API)
    PLACEHOLDER,
    REASONS,
    Drop,
    Easiness,
    EmbeddingGrounding,
    Length,
    LexicalGrounding,
    LogprobFloor,
    NearDuplicateAnswers,
    NotQuestion,
    Phrases,
    PromptEcho,
    Repetition,
    RestatedQuestion,
    RoundTrip,
)
from synthgen.gates.text import (  # noqa: F401
    AUX_WORDS,
    ENGLISH,
    STOPWORDS,
    WH_WORDS,
    interrogative,
    looks_english,
    ngrams,
    stem,
    words,
)
from synthgen.generate import prompting

Gate = Any  # a gate object: check(text, chunk, question="") -> Drop | None


def _node(cfg: Any) -> dict[str, Any]:
    node = cfg.get("filters") if cfg is not None else None
    if node is None:
        return {"name": "none", "enabled": False}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _templates(prompt: Any) -> list[str]:
    """The prompt's own text, worked examples included: a reply that copies it is an echo."""
    if prompt is None:
        return []
    texts = [str(prompt.get(k) or "") for k in ("system", "question", "followup", "answer")]
    for e in prompting.load_examples(prompt.get("examples")):
        texts += [e.passage, e.question, e.answer or ""]
    return texts


# --- one builder per gate config: (gates for questions, gates for answers) ---------------------


def _prompt_echo(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    _num(g, "filters.prompt_echo", ngram=(1, None), max_share=(0, 1))
    echo = PromptEcho(_templates(prompt), g["ngram"], g["max_share"])
    return [echo], [echo]


def _repetition(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    g.setdefault("min_sentence_words", 1)  # a config saved before the key existed
    g.setdefault("max_unit_repeats", 0)
    _num(
        g,
        "filters.repetition",
        max_sentence_repeats=(1, None),
        min_sentence_words=(1, None),
        ngram=(1, None),
        max_share=(0, 1),
        max_unit_repeats=(0, None),
    )
    rep = Repetition(
        g["max_sentence_repeats"],
        g["ngram"],
        g["max_share"],
        g["min_sentence_words"],
        int(g["max_unit_repeats"]),
    )
    return [rep], [rep]


def _phrases(reason: str, answers_default: bool) -> Callable[..., tuple[list[Gate], list[Gate]]]:
    def build(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
        gate = Phrases(reason, g.get("patterns") or [], f"filters.{reason}.patterns")
        return (
            [gate] if g.get("questions", True) else [],
            [gate] if g.get("answers", answers_default) else [],
        )

    return build


def _not_question(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    _num(g, "filters.not_question", min_signals=(1, 2))
    return [NotQuestion(g["min_signals"])], []


def _length(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    _num(
        g,
        "filters.length",
        question_min_words=(0, None),
        question_max_words=(1, None),
        answer_min_words=(0, None),
        answer_max_words=(1, None),
    )
    return (
        [Length(g["question_min_words"], g["question_max_words"])],
        [Length(g["answer_min_words"], g["answer_max_words"])],
    )


def _grounding(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    questions: list[Gate] = []
    answers: list[Gate] = []
    frame = _words_list(g, "filters.grounding.frame_words")
    if g.get("lexical", True):
        _num(g, "filters.grounding", min_overlap=(0, 1), min_content_words=(0, None))
        answers.append(LexicalGrounding(g["min_overlap"], g["min_content_words"], frame))
    if g.get("questions", False):
        _num(g, "filters.grounding", question_min_overlap=(0, 1))
        questions.append(LexicalGrounding(g["question_min_overlap"], g["min_content_words"], frame))
    if g.get("embedding", False):
        _num(g, "filters.grounding", min_similarity=(-1, 1))
        answers.append(EmbeddingGrounding(_embedder(cfg, g), g["min_similarity"]))
    return questions, answers


def _restated_question(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    _num(g, "filters.restated_question", min_new_words=(0, None))
    frame = _words_list(_node(cfg).get("grounding") or {}, "filters.grounding.frame_words")
    return [], [RestatedQuestion(int(g["min_new_words"]), frame)]


# in the order a text meets them: the first gate that drops it gives its one reason
BUILDERS = {
    "prompt_echo": _prompt_echo,
    "repetition": _repetition,
    "refusal": _phrases("refusal", answers_default=True),
    "not_question": _not_question,
    "meta_reference": _phrases("meta_reference", answers_default=False),
    "length": _length,
    "grounding": _grounding,
    "restated_question": _restated_question,
}


def _round_trip(g: dict, cfg: Any) -> RoundTrip:
    _num(g, "filters.round_trip", k=(1, None))
    retriever = g.get("retriever", "bm25")
    if retriever not in ("bm25", "embedding"):
        raise ConfigError(
            f"filters.round_trip.retriever: must be bm25 or embedding, got {retriever!r}"
        )
    return RoundTrip(int(g["k"]), retriever)


def _logprob(g: dict, cfg: Any) -> LogprobFloor:
    _num(g, "filters.logprob", min=(-1e9, 0))
    return LogprobFloor(float(g["min"]))


def _easiness(g: dict, cfg: Any) -> Easiness:
    _num(g, "filters.easiness", max_similarity=(-1, 1))
    return Easiness(float(g["max_similarity"]))


# gates on a question's signals (synthgen/gates/signals.py), after the text gates
SIGNAL_BUILDERS = {"round_trip": _round_trip, "logprob": _logprob, "easiness": _easiness}


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
        self.signal_gates: list[Any] = []
        self.embed_signals = False  # the rows' signals include embed_rank and easiness
        self._embedder_model: Any = None
        if not node.get("enabled", True):
            return

        def on(key: str) -> dict[str, Any] | None:
            g = node.get(key) or {}
            return g if g.get("enabled", True) and g else None

        for key, build in BUILDERS.items():
            if g := on(key):
                questions, answers = build(g, cfg, prompt)
                self.questions += questions
                self.answers += answers
        if g := on("near_duplicate_answer"):
            _num(
                g,
                "filters.near_duplicate_answer",
                ngram=(1, None),
                max_similarity=(0, 1),
                min_words=(0, None),
            )
            self.duplicates = NearDuplicateAnswers(g["ngram"], g["max_similarity"], g["min_words"])
        for key, build_signal in SIGNAL_BUILDERS.items():
            if g := on(key):
                self.signal_gates.append(build_signal(g, cfg))
        self.embed_signals = bool(node.get("embed_signals", False)) or any(
            isinstance(x, Easiness) or (isinstance(x, RoundTrip) and x.retriever == "embedding")
            for x in self.signal_gates
        )
        if self.embed_signals:
            self._load_embedder = _embedder(cfg, {})
            self._query_prefix = str(cfg.embedder.get("query_prefix") or "")

    @property
    def active(self) -> bool:
        return bool(self.questions or self.answers or self.duplicates or self.signal_gates)

    def scorer(self, corpus: dict[str, dict[str, str]]) -> signals.Scorer:
        """The signal scorer over the splits' retrieval corpora (split -> {chunk id: text});
        with an embedder where embed_signals or an embedding gate asks for one."""
        if not self.embed_signals:
            return signals.Scorer(corpus)
        return signals.Scorer(corpus, self._embedder, self._query_prefix)

    def _embedder(self) -> Any:
        if self._embedder_model is None:
            self._embedder_model = self._load_embedder()
        return self._embedder_model

    def signals(self, sig: dict[str, Any]) -> Drop | None:
        """The first signal gate that drops a question with these signals."""
        return next((d for g in self.signal_gates if (d := g.check_signals(sig))), None)

    def prepare(self) -> None:
        """Load what a gate needs (the embedding model) now rather than at the first answer."""
        for g in self.answers:
            if isinstance(g, EmbeddingGrounding) and g.model is None:
                g.model = g.load()
        if self.embed_signals:
            self._embedder()

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


def _words_list(g: dict[str, Any], key: str) -> list[str]:
    """A list of words (null = none), or one line naming the key."""
    v = g.get(key.rsplit(".", 1)[1]) or []
    if isinstance(v, str) or not all(isinstance(w, str) for w in v):
        raise ConfigError(f"{key}: must be a list of words, got {v!r}")
    return list(v)


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

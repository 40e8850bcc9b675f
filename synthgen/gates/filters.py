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
from synthgen.schema import Filters
from synthgen.schema.fields import check_types

Gate = Any  # a gate object: check(text, chunk, question="") -> Drop | None


NO_GROUP = "none"  # the name of the gates of a config without `filters` (no gate ran)


def _node(cfg: Any) -> dict[str, Any] | None:
    """The `filters` group as a dict; None for a config without it (a run dir older than the
    gates)."""
    node = cfg.get("filters") if cfg is not None else None
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
    echo = PromptEcho(_templates(prompt), g["ngram"], g["max_share"])
    return [echo], [echo]


def _repetition(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    rep = Repetition(
        g["max_sentence_repeats"],
        g["ngram"],
        g["max_share"],
        g["min_sentence_words"],
        int(g["max_unit_repeats"]),
    )
    return [rep], [rep]


def _phrases(reason: str) -> Callable[..., tuple[list[Gate], list[Gate]]]:
    def build(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
        gate = Phrases(reason, g["patterns"] or [], f"filters.{reason}.patterns")
        return ([gate] if g["questions"] else [], [gate] if g["answers"] else [])

    return build


def _not_question(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    return [NotQuestion(g["min_signals"])], []


def _length(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    return (
        [Length(g["question_min_words"], g["question_max_words"])],
        [Length(g["answer_min_words"], g["answer_max_words"])],
    )


def _grounding(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    questions: list[Gate] = []
    answers: list[Gate] = []
    frame = list(g["frame_words"] or [])
    if g["lexical"]:
        answers.append(LexicalGrounding(g["min_overlap"], g["min_content_words"], frame))
    if g["questions"]:
        questions.append(LexicalGrounding(g["question_min_overlap"], g["min_content_words"], frame))
    if g["embedding"]:
        answers.append(EmbeddingGrounding(_embedder(cfg, g), g["min_similarity"]))
    return questions, answers


def _restated_question(g: dict, cfg: Any, prompt: Any) -> tuple[list[Gate], list[Gate]]:
    frame = list(_node(cfg)["grounding"]["frame_words"] or [])
    return [], [RestatedQuestion(int(g["min_new_words"]), frame)]


# in the order a text meets them: the first gate that drops it gives its one reason
BUILDERS = {
    "prompt_echo": _prompt_echo,
    "repetition": _repetition,
    "refusal": _phrases("refusal"),
    "not_question": _not_question,
    "meta_reference": _phrases("meta_reference"),
    "length": _length,
    "grounding": _grounding,
    "restated_question": _restated_question,
}


def _round_trip(g: dict, cfg: Any) -> RoundTrip:
    return RoundTrip(int(g["k"]), g["retriever"])


def _logprob(g: dict, cfg: Any) -> LogprobFloor:
    return LogprobFloor(float(g["min"]))


def _easiness(g: dict, cfg: Any) -> Easiness:
    return Easiness(float(g["max_similarity"]))


# gates on a question's signals (synthgen/gates/signals.py), after the text gates
SIGNAL_BUILDERS = {"round_trip": _round_trip, "logprob": _logprob, "easiness": _easiness}


class Gates:
    """The gates of `filters` for one prompt: question(), answer(), then the cross-row check.

    Built from the whole config (`filters`, `prompt`, and `embedder` for the optional
    embedding gate), checked before (filters.check); every key is there (the schema's, or
    rundir.upgrade_config's for an old run dir), but a config without `filters` at all (a run
    dir older than the gates) gets none.
    """

    def __init__(self, cfg: Any, prompt: Any = None) -> None:
        node = _node(cfg)
        self.name = str(node["name"]) if node is not None else NO_GROUP
        self.questions: list[Any] = []
        self.answers: list[Any] = []
        self.duplicates: NearDuplicateAnswers | None = None
        self.signal_gates: list[Any] = []
        self.embed_signals = False  # the rows' signals include embed_rank and easiness
        self._embedder_model: Any = None
        if node is None or not node["enabled"]:
            return

        def on(key: str) -> dict[str, Any] | None:
            return node[key] if node[key]["enabled"] else None

        for key, build in BUILDERS.items():
            if g := on(key):
                questions, answers = build(g, cfg, prompt)
                self.questions += questions
                self.answers += answers
        if g := on("near_duplicate_answer"):
            self.duplicates = NearDuplicateAnswers(g["ngram"], g["max_similarity"], g["min_words"])
        for key, build_signal in SIGNAL_BUILDERS.items():
            if g := on(key):
                self.signal_gates.append(build_signal(g, cfg))
        self.embed_signals = bool(node["embed_signals"]) or any(
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


def _embedder(cfg: Any, g: dict[str, Any]) -> Callable[[], Any]:
    """The embedding gate's model, loaded when first needed (never for a dry run)."""
    from synthgen.embed import embedding

    path = g.get("embedder")  # the grounding gate's own model; {} for the signals' (the group's)
    key = "filters.grounding.embedder" if path else "embedder.name_or_path"
    embedding.check_embedder(cfg, path, key)  # a wrong name stops the run before any model
    return lambda: embedding.load_embedder(cfg, path, key)


def name(cfg: Any) -> str:
    """The gate set's name (filters.name) for summaries; 'none' for a config without filters."""
    node = _node(cfg)
    return str(node["name"]) if node is not None else NO_GROUP


def check(cfg: Any) -> None:
    """Validate `filters`: the schema's ranges and types (synthgen/schema/filters.py), then the
    gates are built, so their regular expressions compile; loads nothing."""
    Filters.check(cfg)  # first: its messages say what a number must be (in [0, 1])
    check_types(cfg, Filters, "filters.")
    Gates(cfg, cfg.get("prompt"))


def counts(rejected: Iterable[dict]) -> dict[str, int]:
    """Gate rejects per 'stage:reason' (parse and dedup rejects are not the gates')."""
    c = Counter(f"{r['stage']}:{r['reason']}" for r in rejected if r.get("reason") in REASONS)
    return dict(sorted(c.items()))

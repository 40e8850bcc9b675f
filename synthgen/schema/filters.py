"""The `filters` group: the quality gates for every parsed question and answer
(synthgen/gates/filters.py, docs/quality.md "Quality gates"). Each gate is a sub-group with its
`enabled` and its thresholds; each field: its one default (conf/filters/default.yaml's measured
thresholds) and its help (meaning and unit). The ranges are checked here, the patterns compile
when the gates are built (filters.check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from omegaconf import DictConfig, OmegaConf

from synthgen.checks import need, number
from synthgen.schema.fields import key, nested

# the refusal gate's patterns: regular expressions, case-insensitive, searched anywhere
REFUSALS = (
    r"\b(the|this|that) (context|passage|text|document|article|excerpt|paragraph|information|source)s? (does|do|did) ?(not|n't)\b",  # noqa: E501
    r"\b(is|are|was|were) not (mentioned|stated|specified|provided|given|discussed|addressed|included|described|found|available) in the (given |provided )?(context|passage|text|document|article|information|excerpt)\b",  # noqa: E501
    r"\b(not|no) (in|from|within) the (given |provided )?(context|passage|text|document)\b",
    r"\bI (cannot|can ?not|can't|am unable to|am not able to|do not know|don't know|could not|couldn't|won't be able to)\b",  # noqa: E501
    r"\bI'?m (sorry|afraid|unable|not able)\b",
    r"\bI apologi[sz]e\b",
    r"\bas an? (AI|artificial intelligence|language model|assistant)\b",
    r"\b(not enough|insufficient) information (to|is|in)\b",
    r"\b(does not|doesn't|do not|don't) (provide|contain|give|include|mention|specify|say|state) (any |enough |specific )?(information|details|an answer)\b",  # noqa: E501
    r"\b(cannot|can ?not|can't) be (answered|determined|inferred) (from|based on|with) (the|this) (given |provided )?(context|passage|text|information|document)\b",  # noqa: E501
    r"\bunanswerable\b",
)
# the meta_reference gate's patterns: regular expressions, case-insensitive
META_REFERENCES = (
    r"\baccording to (the|this|that) (given |provided |above )?(context|passage|text|document|article|excerpt|paragraph|information|author|source|material)\b",  # noqa: E501
    r"\b(the|this|that|above|given|provided|following|aforementioned) (context|passage|excerpt|paragraph|snippet|chunk)\b(?!\s+of\b)",  # noqa: E501
    r"\b(given|provided|above|following|aforementioned) (text|document|article|information|material|source)\b",  # noqa: E501
    r"\b(in|from|within|by) (the|this) (text|document|article)\b(?!\s+of\b)",
    r"\bthe (text|document|article|information) (above|below|provided|given|shown)\b",
    r"\bas (mentioned|stated|described|discussed|noted|shown|said) (above|earlier|before|previously|here)\b",  # noqa: E501
    r"\b(is|are|was|were) (mentioned|described|discussed|stated|referred to|given) (above|earlier|here)\b",  # noqa: E501
    r"\bthis (study|paper|article|text|document|passage|excerpt|section|report)\b",
    r"\bthe (following|above|previous|given) (questions?|query|queries|options|choices|statements?|sentences?|list)\b",  # noqa: E501
    # seen from Gemma 3 270M on the Python HOWTOs: "What is the purpose of the following
    # command?", "... in the following Python code?"
    r"\bthe (following|above|preceding|below) (\w+ ){0,2}(commands?|code|snippets?|examples?|lines?|functions?|programs?|tables?|figures?|outputs?|definitions?|expressions?|quotes?|words?|terms?|phrases?)\b",  # noqa: E501
    # a question that ends at "the following class?": what follows is not there
    r"\bthe following( [\w-]+){0,3}\s*[?:]?\s*$",
    # the asker's own situation: the prompt's teacher/quiz role played back ("What is the
    # most important thing you learned in this course?")
    r"\byou (have |had )?(learned|learnt|studied|read|heard|seen|saw)\b",
    r"\byou are (currently |now )?(using|working on|reading|studying|learning|in)\b",
    r"\byour (class|course|teacher|professor|lesson|exam|quiz|homework|classmates?)\b",
)
# words that frame a question or answer without naming its topic: they neither ground a text nor
# count against it (stemmed, case-folded). Without them, "What is the name of the student who is
# the first to answer the question correctly?" (Gemma 3 270M on the Socket HOWTO, the notebook
# prompt's quiz played back) counted as grounded by "first" alone.
FRAME_WORDS = (
    "name",
    "named",
    "purpose",
    "meaning",
    "mean",
    "important",
    "thing",
    "first",
    "main",
    "kind",
    "type",
    "way",
    "example",
    "difference",
    "different",
    "role",
    "reason",
    "part",
    "point",
    "term",
    "word",
    "call",
    "called",
)


@dataclass(frozen=True)
class PromptEchoGate:
    """the output repeats the prompt template's own wording ("The question should be diverse in
    nature ...")"""

    enabled: bool = key(True, "false: this gate is off")
    ngram: int = key(4, "length of the word n-grams compared (words)")
    max_share: float = key(
        0.5,
        "most share (0-1) of the output's n-grams found in the prompt template's text and not in "
        "the chunk; above: reason prompt_echo",
    )


@dataclass(frozen=True)
class RepetitionGate:
    """degenerate repetition inside one question or answer"""

    enabled: bool = key(True, "false: this gate is off")
    max_sentence_repeats: int = key(
        1, "most times one sentence may occur in an output (count); more: reason repeated_sentence"
    )
    min_sentence_words: int = key(
        3,
        'shorter sentences are not counted (words): "if... elif... elif... else." repeats "elif"',
    )
    ngram: int = key(4, "length of the word n-grams looked for twice (words)")
    max_share: float = key(
        0.4,
        "most share (0-1) of the output's words inside an n-gram that occurs twice or more; "
        "above: reason repeated_ngrams",
    )
    max_unit_repeats: int = key(
        4,
        'most copies in a row of one 2-12 character piece with a letter ("key_key_key_key_key_", '
        "one word to the n-grams); more: reason repeated_chars; 0 = off",
    )


@dataclass(frozen=True)
class RefusalGate:
    """the model declines or says the chunk does not answer ("The context does not say", "I
    cannot")"""

    enabled: bool = key(True, "false: this gate is off")
    questions: bool = key(True, "check questions")
    answers: bool = key(True, "check answers")
    patterns: tuple[str, ...] = key(
        REFUSALS,
        "regular expressions, case-insensitive, searched anywhere in the text; any match: reason "
        "refusal",
    )


@dataclass(frozen=True)
class NotQuestionGate:
    """the question is no question: no '?' and no interrogative form"""

    enabled: bool = key(True, "false: this gate is off")
    min_signals: int = key(
        1,
        "question signals needed: '?' and an interrogative form (English: opens with an "
        "auxiliary, or a wh-word in its first three words); 1 = either, 2 = both; reason "
        "not_question",
    )


@dataclass(frozen=True)
class MetaReferenceGate:
    """the question points at a text the reader of the dataset never sees ("the passage",
    "according to the document")"""

    enabled: bool = key(True, "false: this gate is off")
    questions: bool = key(True, "check questions (a retriever's query must stand alone)")
    answers: bool = key(False, 'check answers too ("The text states that ..."); strict turns it on')
    patterns: tuple[str, ...] = key(
        META_REFERENCES, "regular expressions, case-insensitive; any match: reason meta_reference"
    )


@dataclass(frozen=True)
class LengthGate:
    """too few or too many words (whitespace-separated)"""

    enabled: bool = key(True, "false: this gate is off")
    question_min_words: int = key(3, "fewest words in a question (words); fewer: reason too_short")
    question_max_words: int = key(60, "most words in a question (words); more: reason too_long")
    answer_min_words: int = key(1, "fewest words in an answer (words)")
    answer_max_words: int = key(300, "most words in an answer (words)")


@dataclass(frozen=True)
class GroundingGate:
    """the answer (and the question) is not drawn from its chunk: off topic, made up, or the
    prompt's words"""

    enabled: bool = key(True, "false: this gate is off")
    lexical: bool = key(
        True,
        "check the share of the answer's content words (not stopwords, stemmed) found among the "
        "chunk's words",
    )
    min_overlap: float = key(
        0.15,
        "least share (0-1) of the answer's content words found in the chunk; below: reason "
        "ungrounded",
    )
    questions: bool = key(
        True,
        "check questions the same way (an off-topic question is dropped before its answer is "
        "generated)",
    )
    question_min_overlap: float = key(
        0.1,
        "least share (0-1) of the question's content words found in the chunk; below: reason "
        "ungrounded (stage question)",
    )
    min_content_words: int = key(
        1,
        'texts with fewer content words (words) are not checked ("Yes."); frame words do not count',
    )
    frame_words: tuple[str, ...] = key(
        FRAME_WORDS,
        "words that frame a question or answer without naming its topic: they neither ground a "
        "text nor count against it (stemmed, case-folded)",
    )
    embedding: bool = key(
        False,
        "also check the cosine similarity of answer and chunk with an embedding model (loads "
        "it; slower)",
    )
    embedder: str | None = key(
        None,
        "sentence-transformers model for that (pypi:<package>, hub id or folder); null = "
        "embedder.name_or_path",
    )
    min_similarity: float = key(
        0.5,
        "least cosine similarity (-1..1) of answer and chunk embeddings; below: reason "
        "ungrounded_embedding",
    )


@dataclass(frozen=True)
class RestatedQuestionGate:
    """the answer only gives its question back ("What is the name of the clinic?" -> "Clinic")"""

    enabled: bool = key(True, "false: this gate is off")
    min_new_words: int = key(
        1,
        "fewest content words (not stopwords, not grounding.frame_words; stemmed) that the answer "
        "adds to its question (words); fewer: reason restated_question",
    )


@dataclass(frozen=True)
class NearDuplicateAnswerGate:
    """the same answer for different chunks of a split ("the same answer for 9 chunks")"""

    enabled: bool = key(True, "false: this gate is off")
    ngram: int = key(3, "length of the word n-grams (shingles) compared (words)")
    max_similarity: float = key(
        0.8,
        "an answer whose Jaccard similarity (0-1) of n-gram sets with an accepted answer of "
        "another chunk reaches this is dropped: reason near_duplicate_answer",
    )
    min_words: int = key(
        8,
        "answers shorter than this (words) are never compared: short facts (a year, a name) "
        "repeat legitimately",
    )


@dataclass(frozen=True)
class RoundTripGate:
    """Promptagator's round-trip consistency: the question, as a query over its split's chunks,
    must find its own chunk"""

    enabled: bool = key(False, "false: this gate is off (the signal bm25_rank is stored anyway)")
    retriever: Literal["bm25", "embedding"] = key(
        "bm25", "bm25 | embedding (the embedder group's model)"
    )
    k: int = key(
        1, "the own chunk must rank within the top k (rank, 1 = first); else reason round_trip"
    )


@dataclass(frozen=True)
class LogprobGate:
    """InPars: the generator's mean log-probability per token of the question"""

    enabled: bool = key(False, "false: this gate is off (the signal logprob is stored anyway)")
    min: float = key(
        -1.5, "least mean log-probability (nats per token, <= 0); below: reason low_logprob"
    )


@dataclass(frozen=True)
class EasinessGate:
    """NeMo Curator's easiness filter: a question that copies its chunk's wording teaches an
    embedder little"""

    enabled: bool = key(False, "false: this gate is off")
    max_similarity: float = key(
        0.9,
        "most cosine similarity (-1..1) of question and chunk embeddings; above: reason too_easy",
    )


@dataclass(frozen=True)
class Filters:
    """The `filters` group: a question that fails a gate is never answered; an answer that fails
    one gives no row (rejected.jsonl: stage, reason, score, threshold)."""

    name: str = key("default", "recorded in summary.json (filters.name) and in every gate reject")
    enabled: bool = key(True, "false: no gate runs (as filters=none)")
    prompt_echo: PromptEchoGate = nested(PromptEchoGate)
    repetition: RepetitionGate = nested(RepetitionGate)
    refusal: RefusalGate = nested(RefusalGate)
    not_question: NotQuestionGate = nested(NotQuestionGate)
    meta_reference: MetaReferenceGate = nested(MetaReferenceGate)
    length: LengthGate = nested(LengthGate)
    grounding: GroundingGate = nested(GroundingGate)
    restated_question: RestatedQuestionGate = nested(RestatedQuestionGate)
    near_duplicate_answer: NearDuplicateAnswerGate = nested(NearDuplicateAnswerGate)
    # gates on each question's signals (synthgen/gates/signals.py), after the text gates
    embed_signals: bool = key(
        False,
        "true: also store embed_rank and easiness for every question (loads the embedder group's "
        "model); on by itself when a gate below needs them",
    )
    round_trip: RoundTripGate = nested(RoundTripGate)
    logprob: LogprobGate = nested(LogprobGate)
    easiness: EasinessGate = nested(EasinessGate)

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """The ranges, written as what a value must be (a number in [0, 1]); the type check
        after it (schema.fields.check_types) holds the integers to integers."""
        for dotted, low, high in RANGES:
            number(cfg, f"filters.{dotted}", low, high)
        frame = OmegaConf.select(cfg, "filters.grounding.frame_words")
        need(
            OmegaConf.is_list(frame) and all(isinstance(w, str) for w in frame),
            f"filters.grounding.frame_words: must be a list of words, got {frame!r}",
        )
        retriever = OmegaConf.select(cfg, "filters.round_trip.retriever")
        need(
            retriever in ("bm25", "embedding"),
            f"filters.round_trip.retriever: must be bm25 or embedding, got {retriever!r}",
        )


# (key under filters, least value, most value or None): each a number in its range
RANGES: tuple[tuple[str, float, float | None], ...] = (
    ("prompt_echo.ngram", 1, None),
    ("prompt_echo.max_share", 0, 1),
    ("repetition.max_sentence_repeats", 1, None),
    ("repetition.min_sentence_words", 1, None),
    ("repetition.ngram", 1, None),
    ("repetition.max_share", 0, 1),
    ("repetition.max_unit_repeats", 0, None),
    ("not_question.min_signals", 1, 2),
    ("length.question_min_words", 0, None),
    ("length.question_max_words", 1, None),
    ("length.answer_min_words", 0, None),
    ("length.answer_max_words", 1, None),
    ("grounding.min_overlap", 0, 1),
    ("grounding.question_min_overlap", 0, 1),
    ("grounding.min_content_words", 0, None),
    ("grounding.min_similarity", -1, 1),
    ("restated_question.min_new_words", 0, None),
    ("near_duplicate_answer.ngram", 1, None),
    ("near_duplicate_answer.max_similarity", 0, 1),
    ("near_duplicate_answer.min_words", 0, None),
    ("round_trip.k", 1, None),
    ("logprob.min", -math.inf, 0),
    ("easiness.max_similarity", -1, 1),
)

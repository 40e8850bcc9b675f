"""The `prompt` group: what the model is asked. Each field: its one default and its help
(meaning and unit). Its checks (templates hold their placeholders, reply mode and answer agree,
examples load) are config.check_prompt's: they read the prompt's templates with
synthgen.generate.prompting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import MISSING

from synthgen.schema.fields import key


@dataclass(frozen=True)
class Prompt:
    """The `prompt` group (synthgen/generate/prompting.py; conf/prompt/)."""

    name: str = key(MISSING, "recorded in every row's `prompt` field and in the row key")
    system: str | None = key(None, "optional system message; null = none")
    question: str = key(
        MISSING,
        "the question prompt: {context} = the chunk text; with {num_questions} in it, one call "
        "asks for all questions of a chunk as a numbered list",
    )
    answer: str | None = key(
        MISSING,
        "the answer prompt: {context} = the chunk text, {question} = the parsed question; null "
        "= questions only (no answer stage)",
    )
    followup: str | None = key(
        None,
        "asked for a chunk's 2nd and later questions when questions_per_chunk > 1 and the "
        "question prompt has no {num_questions}: appended to it; {previous} = the questions "
        "already asked, one per line; null = none",
    )
    reply: Literal["question", "qa_pair"] = key(
        "question",
        "what one reply to the question prompt holds: question | qa_pair (a question and its "
        "answer; prompt.answer must be null)",
    )
    questions_per_chunk: int = key(
        1, "questions asked per selected chunk (rows per chunk, before rejects)"
    )
    require_question_mark: bool = key(False, "true: reject a question without '?'")
    examples: Any = key(
        None,
        "worked examples shown before the chunk ({examples}): a list of passage/question/answer "
        "maps, or the path of a JSONL file of them; null = none",
    )
    example: str | None = key(
        None,
        "the template of one worked example: {passage}, {question} and, where shown, {answer}",
    )
    examples_separator: str = key(
        "\n\n\n", "text between two examples, and between the last one and the target passage"
    )
    stop_strings: Any = key(
        None,
        "per stage (question, answer): stop strings added to the model's (strings, kept in the "
        "text); null = none",
    )

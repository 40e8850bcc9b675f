from __future__ import annotations

import pytest

from synthgen.generate.prompting import (
    answer_prompt,
    fill,
    messages,
    normalize,
    parse_answer,
    parse_qa_pair,
    parse_question,
    parse_question_list,
    question_prompt,
)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("What is montage?", "What is montage?"),
        ("Here is a question for the quiz:\n\nWhat is montage?", "What is montage?"),
        ("Sure! Here's one question:\nWhat is montage?", "What is montage?"),
        ("Question: What is montage?", "What is montage?"),
        ("**Question:** What is montage?", "What is montage?"),
        ('"What is montage?"', "What is montage?"),
        ("“What is montage?”", "What is montage?"),
        ("1. What is montage?", "What is montage?"),
        ("Q1: What is montage?", "What is montage?"),
        ("What is montage?\n\nAnswer: cutting shots together.", "What is montage?"),
        ("What is montage?\nAnswer: cutting.", "What is montage?"),
        ("  What   is\nmontage?  ", "What is montage?"),
        ("Explain the role of the soundtrack", "Explain the role of the soundtrack"),
        (
            "A-list actors of the 1980s: who were they?",
            "A-list actors of the 1980s: who were they?",
        ),
        ("A.I. in film: what is it?", "A.I. in film: what is it?"),
        ("Q: What?", "What?"),
        ("A) It cuts.", "It cuts."),
        # the prompt's rule lines given back (Gemma 3 270M, prompt=factoid, the curses HOWTO)
        (
            "---------------------\nWhat is the size of the screen?",
            "What is the size of the screen?",
        ),
        ("--------------------- What is the purpose of curses?", "What is the purpose of curses?"),
        ("What is a pad?\n=====", "What is a pad?"),
        ("-- a dash is text", "-- a dash is text"),
    ],
)
def test_parse_question_strips_wrapping(raw: str, want: str) -> None:
    assert parse_question(raw) == (want, None)


def test_parse_question_keeps_text_without_question_mark_by_default() -> None:
    # random-weight test models never write '?': they must still yield rows
    assert parse_question("xq zzv brr")[0] == "xq zzv brr"
    assert parse_question("xq zzv brr", require_question_mark=True) == (None, "no_question_mark")


@pytest.mark.parametrize(
    "raw", ["", "   \n\n", "Question:", '""', "Here is a question:\n", "----------------"]
)
def test_parse_rejects_empty(raw: str) -> None:
    assert parse_question(raw) == (None, "empty")
    assert parse_answer(raw)[1] == "empty" or raw.startswith("Here") or raw == "Question:"


def test_parse_answer_keeps_paragraphs() -> None:
    text, _ = parse_answer("Answer: First part.\n\nSecond part.")
    assert text == "First part.\n\nSecond part."
    assert parse_answer("  ") == (None, "empty")
    # an answer that is only the prompt's rule (13 of 45 rows of a 270M run) is no answer
    assert parse_answer("---------------------\n") == (None, "empty")
    assert parse_answer("---------------------\nA pad is a window.") == ("A pad is a window.", None)


def test_parse_question_list_numbered_and_json() -> None:
    raw = "Here are three questions:\n1. What is A?\n2) What is B?\n3. What is C?\n4. extra"
    assert parse_question_list(raw, 3) == ["What is A?", "What is B?", "What is C?"]
    assert parse_question_list('["What is A?", {"question": "What is B?"}]', 3) == [
        "What is A?",
        "What is B?",
        None,
    ]


def test_fill_replaces_placeholders_of_the_template_only() -> None:
    # a chunk that itself contains "{question}" is not rewritten
    assert (
        fill("{context}|{question}", context="a {question} b", question="Q?") == "a {question} b|Q?"
    )


def test_fill_leaves_other_braces() -> None:
    t = 'Context: {context}\nReply as JSON: {"questions": [...]}'
    assert fill(t, context="X") == 'Context: X\nReply as JSON: {"questions": [...]}'


def test_prompts_and_followup() -> None:
    q = question_prompt("C={context}", "text", "\nAsked:\n{previous}", ["Q1?", "Q2?"])
    assert q == "C=text\nAsked:\n- Q1?\n- Q2?"
    assert answer_prompt("{context}|{question}", "c", "q") == "c|q"


def test_messages_fold_system_without_system_role() -> None:
    assert messages(None, "u") == [{"role": "user", "content": "u"}]
    assert messages("s", "u")[0] == {"role": "system", "content": "s"}
    assert messages("s", "u", system_role=False) == [{"role": "user", "content": "s\n\nu"}]


def test_normalize_for_dedup() -> None:
    assert normalize("What is  Montage?") == normalize("what is montage")
    assert normalize("Café?") == normalize("café")
    assert normalize("What is A?") != normalize("What is B?")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (
            "Question: What is montage?\nAnswer: Cutting shots.",
            ("What is montage?", "Cutting shots."),
        ),
        ("**Question:** What?\n**Answer:** It cuts.", ("What?", "It cuts.")),
        ("Sure! Here is one:\nQ: Who?\nA: Her.", ("Who?", "Her.")),
        ('{"question": "Why?", "answer": "Because."}', ("Why?", "Because.")),
        ("Question: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer: A2.", ("Q1?", "A1.")),
        (
            "Question: Why?\nAnswer: First.\n\nSecond paragraph.",
            ("Why?", "First.\n\nSecond paragraph."),
        ),
    ],
)
def test_parse_qa_pair_splits_the_reply(raw: str, want: tuple[str, str]) -> None:
    assert parse_qa_pair(raw) == (*want, None, "answer")


@pytest.mark.parametrize(
    ("raw", "reason", "stage"),
    [
        ("", "empty", "question"),
        ("What is montage? It is cutting.", "not_a_pair", "question"),
        ("Answer: cutting", "not_a_pair", "question"),
        ("Question:\nAnswer: cutting", "empty", "question"),
        ("Question: What is montage?\nAnswer:   ", "empty", "answer"),
        ('{"question": "Why?"}', "not_a_pair", "question"),
    ],
)
def test_parse_qa_pair_rejects_with_a_reason(raw: str, reason: str, stage: str) -> None:
    q, a, why, where = parse_qa_pair(raw)
    assert (why, where) == (reason, stage) and a is None
    assert q is None or stage == "answer"


def test_qa_pair_question_mark_rule() -> None:
    assert parse_qa_pair("Question: Tell me\nAnswer: no", require_question_mark=True)[2:] == (
        "no_question_mark",
        "question",
    )

"""Stage 4: prompts from templates, and parsing of what the model wrote back.

Instruct models wrap their text: "Sure! Here is a question:", "**Question:**", "1.",
quotes. Parsing strips that wrapping and rejects what is left empty, with a reason.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# {examples}: the worked examples block (prompt.examples); {passage}, {answer}: an example's parts
PLACEHOLDERS = ("context", "question", "num_questions", "previous", "examples", "passage", "answer")


def fill(template: str, **values: object) -> str:
    """Replace the named placeholders (PLACEHOLDERS); leave other braces alone.

    str.format would choke on the literal braces of a JSON example inside a prompt.
    """
    for name in values:
        if name not in PLACEHOLDERS:
            raise KeyError(name)
    # one pass over the template only: a "{question}" inside the chunk text stays as it is
    pattern = re.compile("|".join(re.escape("{" + n + "}") for n in values))
    return pattern.sub(lambda m: str(values[m.group(0)[1:-1]]), template) if values else template


def messages(system: str | None, user: str, system_role: bool = True) -> list[dict[str, str]]:
    """Chat messages; a model without a system role gets the system text atop the user turn."""
    if not system:
        return [{"role": "user", "content": user}]
    if not system_role:
        return [{"role": "user", "content": f"{system}\n\n{user}"}]
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


REPLIES = ("question", "qa_pair")  # prompt.reply: what one reply to the question prompt holds


def reply_mode(prompt: Any) -> str:
    """prompt.reply, `question` where the config has none (every shipped prompt but qa_pair)."""
    return str(prompt.get("reply") or "question")


def asks_for_list(question_template: str) -> bool:
    """A question template with {num_questions} asks for all of a chunk's questions in one call."""
    return "{num_questions}" in question_template


def question_prompt(
    template: str,
    context: str,
    followup: str | None = None,
    previous: list[str] | None = None,
    num_questions: int = 1,
    examples: str = "",
) -> str:
    text = fill(template, context=context, num_questions=num_questions, examples=examples)
    if previous and followup:
        text += fill(followup, previous="\n".join(f"- {q}" for q in previous))
    return text


def answer_prompt(template: str, context: str, question: str, examples: str = "") -> str:
    return fill(template, context=context, question=question, examples=examples)


# --- worked examples (few-shot) --------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One worked example shown before the target chunk: a passage, its question, its answer.

    A base model does not follow instructions; it continues a pattern. Three or four
    passage/question/answer triples from other domains (InPars, Promptagator) are the pattern.
    """

    passage: str
    question: str
    answer: str | None = None


def load_examples(spec: Any) -> list[Example]:
    """prompt.examples: a list of {passage, question, answer} maps, or the path of a JSONL file
    of such objects (relative to where run.py is started). Raises ValueError in one line."""
    if spec is None:
        return []
    where = "prompt.examples"
    if isinstance(spec, str | Path):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"{where}: file {str(path)!r} not found")
        items = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: {path}, line {n} is not JSON ({e.msg})") from None
        where = f"{where} ({path})"
    else:
        items = list(spec)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) and not hasattr(item, "keys"):
            raise ValueError(f"{where}[{i}]: must be a map with passage, question and answer")
        item = {str(k): v for k, v in dict(item).items()}
        extra = set(item) - {"passage", "question", "answer"}
        if extra:
            raise ValueError(f"{where}[{i}]: unknown key(s) {', '.join(sorted(extra))}")
        for key in ("passage", "question"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ValueError(f"{where}[{i}].{key}: must be a non-empty string")
        answer = item.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise ValueError(f"{where}[{i}].answer: must be a string")
        out.append(Example(item["passage"].strip(), item["question"].strip(), answer))
    return out


def render_examples(examples: list[Example], template: str, separator: str) -> str:
    """The {examples} block: each example through prompt.example, joined by the separator, and
    the separator once more at the end, so the target passage follows as one more example."""
    if not examples:
        return ""
    parts = [
        fill(template, passage=e.passage, question=e.question, answer=(e.answer or "").strip())
        for e in examples
    ]
    return separator.join(parts) + separator


# --- parsing -------------------------------------------------------------------------------

_PREAMBLE = re.compile(
    r"^\s*(?:sure|okay|ok|certainly|of course|absolutely|great|alright|here(?:'s| is| are)|"
    r"below is|the following|i have|i'?ve|let me|based on)\b[^\n]*?:\s*(?:\n|$)",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^\s*[*_#>\s]*(?:"
    r"(?:quiz\s+|exam\s+)?(?:question|answer)\s*\d*\s*[*_]*\s*[:：.)\-]"
    # one-letter labels need a colon or ")" or ". ": "A-list actors" and "A.I." are text
    r"|(?:q|a)\s*\d*\s*[*_]*\s*(?:[:：)]|\.(?=\s))"
    r")\s*[*_]*\s*",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^\s*(?:\(?\d{1,3}[.)]|[-*•])\s+")
# the prompt's own rule lines ("---------------------" around the context) given back
_RULES = re.compile(
    r"^(?:[ \t]*[-=_~–—]{3,}[ \t]*(?:\n|$|[ \t]))+|(?:\n[ \t]*[-=_~–—]{3,}[ \t]*)+$"
)
_QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"), ("«", "»"), ("`", "`")]
_ANSWER_LINE = re.compile(r"^\s*[*_]*\s*answer\s*[*_]*\s*[:：]", re.IGNORECASE | re.MULTILINE)


def _strip_wrapping(text: str) -> str:
    text = text.strip()
    for _ in range(3):  # wrappers nest: **"Question: ..."**
        before = text
        text = _RULES.sub("", text).strip()
        text = _PREAMBLE.sub("", text, count=1).strip()
        text = _LABEL.sub("", text, count=1).strip()
        text = _NUMBER.sub("", text, count=1).strip()
        if text.startswith("**") and text.endswith("**") and len(text) > 4:
            text = text[2:-2].strip()
        for a, b in _QUOTES:
            if len(text) >= 2 and text.startswith(a) and text.endswith(b) and text.count(b) <= 2:
                text = text[1:-1].strip()
        if text == before:
            break
    return text


def _first_question(text: str) -> str:
    """The lines up to the end of the first question.

    A base model goes on after its question: it repeats it as a numbered list ("1. ...?\n2.
    ...?"), starts the next "Q:"/"A:" pair, or writes a statement under it. A later line that
    opens a new item ends the question, and so does a line that ends with its "?" (a wrapped
    question spans lines until then).
    """
    out: list[str] = []
    for i, line in enumerate(text.split("\n")):
        if i and (_NUMBER.match(line) or _LABEL.match(line)):
            break
        out.append(line)
        if line.rstrip().rstrip("\"'”’*_)").endswith("?"):
            break
    return "\n".join(out)


def parse_question(raw: str, require_question_mark: bool = False) -> tuple[str | None, str | None]:
    """Returns (question, None) or (None, reason). Keeps the first question only."""
    text = raw.strip()
    m = _ANSWER_LINE.search(text)
    if m and m.start() > 0:  # the model answered its own question: keep the question
        text = text[: m.start()]
    text = _strip_wrapping(text)
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    text = _first_question(text)
    text = " ".join(_strip_wrapping(text).split())
    text = _TRAILING_NUMBER.sub("", text)
    if not text:
        return None, "empty"
    if require_question_mark and "?" not in text:
        return None, "no_question_mark"
    return text, None


_NEXT_QUESTION = re.compile(
    r"^\s*[*_#>]*\s*(?:question\s*\d*|q\s*\d*)\s*[*_]*\s*[:：]", re.IGNORECASE | re.MULTILINE
)


# a last line that is only a list number, a label or a rule ("2.", "Question", "-----")
_BARE_MARKER = re.compile(
    r"^\s*(?:\d{1,3}[.)]|question\s*\d*|q\s*\d*|[-=_*]{3,})\s*[:：]?\s*$", re.I
)
_TRAILING_NUMBER = re.compile(r"\s+\d{1,2}[.)]$")  # "... the orchestra. 2." (the next item)


def _cut_loop(text: str) -> str:
    """A base model's answer that starts over: cut at the next "Question:"/"Q:" line, at the
    first line that repeats an earlier one (a greedy loop), and drop a last line that is only
    a list number or a label (where a stop string such as "\n2." ended the reply)."""
    m = _NEXT_QUESTION.search(text)
    if m and m.start() > 0:
        text = text[: m.start()]
    seen: set[str] = set()
    out: list[str] = []
    for line in text.split("\n"):
        key = normalize(line)
        if key and key in seen:
            break
        seen.add(key)
        out.append(line)
    while len(out) > 1 and (not out[-1].strip() or _BARE_MARKER.match(out[-1])):
        out.pop()
    return "\n".join(out)


def parse_answer(raw: str) -> tuple[str | None, str | None]:
    """Returns (answer, None) or (None, reason). Keeps paragraphs, strips wrapping."""
    text = _strip_wrapping(_cut_loop(raw.strip()))
    if not text:
        return None, "empty"
    return text, None


_QUESTION_LINE = re.compile(
    r"^\s*[*_#>\s]*(?:q|question)\s*\d*\s*[*_]*\s*[:：][*_]*", re.IGNORECASE | re.MULTILINE
)
_PAIR_ANSWER = re.compile(
    r"^\s*[*_#>\s]*(?:a|answer)\s*\d*\s*[*_]*\s*[:：][*_]*", re.IGNORECASE | re.MULTILINE
)


def parse_qa_pair(
    raw: str, require_question_mark: bool = False
) -> tuple[str | None, str | None, str | None, str]:
    """A `prompt.reply=qa_pair` reply -> (question, answer, reason, stage).

    Accepts `Question: ...` then `Answer: ...` (labels in any case, bold or not, `Q:`/`A:`
    too) or a JSON object with "question" and "answer". The first pair counts; text after a
    second "Question:" is dropped. reason is None when both parts parse, else why not, with
    the stage it belongs to: `empty` or `not_a_pair` (no answer part) for the question,
    `empty` for the answer.
    """
    text = raw.strip()
    if not text:
        return None, None, "empty", "question"
    pair = _json_pair(text)
    if pair is None:
        m = _PAIR_ANSWER.search(text)
        if m is None or m.start() == 0:
            return None, None, "not_a_pair", "question"
        q_part, a_part = text[: m.start()], text[m.end() :]
        nxt = _QUESTION_LINE.search(a_part)
        if nxt is not None:  # a second pair follows: keep the first
            a_part = a_part[: nxt.start()]
        pair = q_part, a_part
    q, reason = parse_question(pair[0], require_question_mark)
    if q is None:
        return None, None, reason, "question"
    a, reason = parse_answer(pair[1])
    if a is None:
        return q, None, reason, "answer"
    return q, a, None, "answer"


def _json_pair(text: str) -> tuple[str, str] | None:
    m = re.search(r"\{.*\}", text, re.DOTALL)
    if not m:
        return None
    try:
        data = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    low = {str(k).lower(): v for k, v in data.items()}
    q, a = low.get("question"), low.get("answer")
    return (q, a) if isinstance(q, str) and isinstance(a, str) else None


def parse_question_list(raw: str, n: int, require_question_mark: bool = False) -> list[str | None]:
    """Split a numbered list or a JSON array into at most n questions (None where missing/empty)."""
    items: list[str] = []
    m = re.search(r"\[.*\]", raw, re.DOTALL)
    if m:
        try:
            data = json.loads(m.group(0))
            items = [
                str(x.get("question", "")) if isinstance(x, dict) else str(x)
                for x in data
                if isinstance(x, str | dict)
            ]
        except json.JSONDecodeError:
            items = []
    if not items:
        lines = [ln for ln in raw.splitlines() if ln.strip()]
        numbered = [ln for ln in lines if _NUMBER.match(ln) or _LABEL.match(ln)]
        items = numbered or lines
        items = [ln for ln in items if not _PREAMBLE.match(ln + "\n")]
    out: list[str | None] = []
    for item in items[:n]:
        q, _ = parse_question(item, require_question_mark)
        out.append(q)
    return out + [None] * (n - len(out))


def normalize(text: str) -> str:
    """Duplicate test key: case, accents, punctuation and spacing do not make a new question."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())

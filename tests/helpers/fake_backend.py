"""A fake backend for unit tests of the parts around generation (queue, resume, dedup, gates).

It replies by the stage each prompt was encoded for (`encode(messages, stage)`: question,
answer, judge), as a `Script` says, never by the prompt's wording: a prompt's instructions
may change and the tests that run the fake still get their questions, answers and verdicts.
Of the prompt it reads only the chunk (framed by lines of dashes, as prompt=notebook does:
tests/conftest.py gives fake runs that prompt) and the "- question" lines a follow-up lists
(prompting.question_prompt's own format).

Settings are constructor arguments (`Backend(name_or_path="m", questions="same")`); a backend
hydra builds from `model._target_` takes no settings from the config (model keys are part of
every row's identity), so it follows the script of the running test instead: the `fake` fixture
(tests/conftest.py), or `scripted()` for a module's fixture. The end-to-end tests use the real
transformers backend with the tiny model instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from synthgen.backends.base import BaseBackend, Generated, GenParams, ModelSpec
from synthgen.errors import OutOfMemory

QUESTIONS = ("numbered", "same", "gated", "off_topic", "pairs", "broken_pairs")
ANSWERS = ("grounded", "refusals", "same")
JUDGE = ("markers", "half")
RULE = "-----------"  # what frames a chunk in a prompt (prompt=notebook: a line of dashes)


@dataclass
class Script:
    """What the fake replies at each stage, and what it was asked.

    A chunk's `kind` (0-3, from its text: the same in every run) picks which chunks get a
    bad reply where a setting asks for some.
    """

    # question stage: numbered = "What is #n in '<chunk start>'?" (n: questions listed before);
    # same = one text for every chunk (duplicates); gated = kind 0 echoes the prompt's last
    # line, kind 1 asks about "the passage" (meta reference); off_topic = kinds 0-1 ask about
    # glaciers (nothing in the corpus); pairs = question and answer in one reply (prompt=qa_pair);
    # broken_pairs = as pairs, every 2nd reply without its answer part
    questions: str = "numbered"
    # answer stage: grounded = "it is about <chunk start>, told briefly"; refusals = as
    # grounded, kind 3 refuses; same = `answer_text` for every question
    answers: str = "grounded"
    answer_text: str = ""  # answers="same": the one answer
    # judge stage: markers = all yes, but a "no" for stands_alone where the prompt holds
    # "vague" and a reply that does not parse where it holds "garbage"; half = all yes, but
    # no parse for about half of the prompts (by their text)
    judge: str = "markers"
    oom_above: int | None = None  # raise OutOfMemory for batches of more prompts than this
    crash_after: int | None = None  # raise RuntimeError on the call after this many (a kill)
    stream: bool = False  # offer streamed feeding, as the vllm engine does (generation.drive)
    # what it was asked, over every backend following this script
    calls: list[int] = field(default_factory=list)  # prompts per batch (or engine step)
    seen: list[tuple[str, list[str]]] = field(default_factory=list)  # (prompt, stop strings)
    judged: list[str] = field(default_factory=list)  # the judge prompts' user messages
    pairs: int = 0  # pair replies written (broken_pairs: every 2nd is broken)

    def __post_init__(self) -> None:
        for name, allowed in (("questions", QUESTIONS), ("answers", ANSWERS), ("judge", JUDGE)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"fake {name}: one of {allowed}, got {getattr(self, name)!r}")


SETTINGS = tuple(f.name for f in dataclasses.fields(Script))
_active: list[Script] = []  # the running test's script, innermost last (scripted())


@contextmanager
def scripted(**settings: Any) -> Iterator[Script]:
    """A script that every fake built without settings follows until the block ends."""
    script = Script(**settings)
    _active.append(script)
    try:
        yield script
    finally:
        _active.remove(script)


class FakeTokenizer:
    """Characters as tokens; a chat "template" that keeps roles visible."""

    def apply_chat_template(
        self, msgs: list[dict], tokenize: bool = False, add_generation_prompt: bool = True
    ) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in msgs) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(c) for c in text]}


@dataclass
class Asked:
    """A prompt as `encode` saw it: its stage and the user message (template not applied)."""

    stage: str
    user: str

    @property
    def context(self) -> str:
        """The start of the chunk: the text after the first rule line (a line of dashes, as
        prompt=notebook frames its chunk), else the start of the message."""
        parts = self.user.split(RULE, 2)
        return (parts[1] if len(parts) > 1 else self.user).strip("-\n ")[:30]

    @property
    def kind(self) -> int:
        return sum(map(ord, self.context)) % 4  # the same for a chunk in every run

    @property
    def listed(self) -> int:
        """Questions a follow-up prompt lists as asked already ("- <question>" lines)."""
        return sum(line.startswith("- ") for line in self.user.splitlines())


class Backend(BaseBackend):
    """Replies per stage as its `Script` says; can fake OOM, crashes and streamed feeding."""

    def __init__(
        self, engine: str = "auto", prefill_chunk_size: int = 0, vllm: Any = None, **kwargs: Any
    ) -> None:
        settings = {k: kwargs.pop(k) for k in SETTINGS if k in kwargs}
        super().__init__(ModelSpec.from_kwargs(kwargs))
        self.engine = "fake"
        self.tokenizer = FakeTokenizer()
        if settings or not _active:
            self.script = Script(**settings)
        else:
            self.script = _active[-1]
        self.asked: dict[tuple[int, ...], Asked] = {}  # prompt ids -> how encode saw them

    def set_seed(self, seed: int) -> None:
        pass

    def encode(self, messages: list[dict[str, str]], stage: str = "") -> list[int]:
        ids = super().encode(messages, stage)
        user = "\n".join(m["content"] for m in messages if m["role"] == "user")
        self.asked[tuple(ids)] = Asked(stage, user)
        return ids

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        s = self.script
        per_row = params if isinstance(params, list) else [params] * len(batch)
        if s.oom_above is not None and len(batch) > s.oom_above:
            raise OutOfMemory("fake OOM")
        s.calls.append(len(batch))
        if s.crash_after is not None and len(s.calls) > s.crash_after:
            raise RuntimeError("fake crash")
        out = []
        for ids, p in zip(batch, per_row, strict=True):
            s.seen.append(("".join(chr(i) for i in ids), list(p.stop_strings)))
            asked = self.asked.get(tuple(ids))
            if asked is None:
                raise ValueError("fake: a prompt that did not come from Backend.encode")
            reply = {"question": self.question, "answer": self.answer, "judge": self.verdict}
            out.append(reply[asked.stage](asked))
        return out

    def question(self, a: Asked) -> Generated:
        s, ctx, n = self.script, a.context, a.listed
        own = f"What is #{n} in '{ctx}'?"
        if s.questions in ("pairs", "broken_pairs"):
            s.pairs += 1
            broken = s.questions == "broken_pairs" and s.pairs % 2 == 0
            q = f"**Question:** {own}"
            return Generated(
                q if broken else f"{q}\n**Answer:** it is {ctx}, told briefly.", 12, True
            )
        if s.questions == "gated" and a.kind == 0:  # the prompt's instructions, echoed
            return Generated(a.user.strip().splitlines()[-1], 30, False)
        if s.questions == "gated" and a.kind == 1:
            return Generated(f"What does the passage say about '{ctx}'?", 9, True)
        if s.questions == "off_topic" and a.kind < 2:  # BM25 cannot find its chunk with it
            return Generated(f"How do glaciers carve valleys {n} in {a.kind}?", 9, True)
        if s.questions == "same":
            return Generated("Here is a question:\nWhat is it?", 5, True)
        return Generated(f"Question: {own}", 7, True)

    def answer(self, a: Asked) -> Generated:
        s = self.script
        if s.answers == "same":
            return Generated(s.answer_text, 9, True)
        if s.answers == "refusals" and a.kind == 3:
            return Generated("I cannot answer that from the context.", 9, True)
        # a word the question lacks: an answer that only restates it is dropped
        return Generated(f"Answer: it is about {a.context}, told briefly.", 9, True)

    def verdict(self, a: Asked) -> Generated:
        s = self.script
        s.judged.append(a.user)
        garbage = "garbage" in a.user if s.judge == "markers" else sum(map(ord, a.user)) % 2
        if garbage:
            return Generated("The film is good, I think.", 7, True)
        first = "no" if s.judge == "markers" and "vague" in a.user else "yes"
        text = f"stands_alone: {first}\nclear_intent: yes\nanswerable: yes\nsupported: yes"
        return Generated(text, 12, True)

    def streamer(self, batch_size: int | None = None) -> FakeStreamer | None:
        return FakeStreamer(self) if self.script.stream else None

    def close(self) -> None:
        pass


class FakeStreamer:
    """A continuous-batching stand-in: two requests finish per step, in the order they came."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.live: list[tuple[int, list[int]]] = []

    def add(self, key: int, ids: list[int], params: GenParams) -> None:
        self.live.append((key, ids))

    def step(self) -> list[tuple[int, Generated]]:
        batch, self.live = self.live[:2], self.live[2:]
        outs = self.backend.generate([ids for _, ids in batch], GenParams())
        return [(key, out) for (key, _), out in zip(batch, outs, strict=True)]

    def abort(self) -> None:
        self.live.clear()


class BadBackend(Backend):
    """For the CLI, where no test's script reaches: some outputs fail the gates (echoes and
    meta references among the questions, refusals among the answers)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"questions": "gated", "answers": "refusals", **kwargs})

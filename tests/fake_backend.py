"""A fake backend for unit tests of the parts around generation (queue, resume, dedup, gates).

The end-to-end tests use the real transformers backend with the tiny model instead.
"""

from __future__ import annotations

import re
from typing import Any

from synthgen.backends.base import BaseBackend, Generated, GenParams, ModelSpec
from synthgen.errors import OutOfMemory


class FakeTokenizer:
    """Characters as tokens; a chat "template" that keeps roles visible."""

    def apply_chat_template(
        self, msgs: list[dict], tokenize: bool = False, add_generation_prompt: bool = True
    ) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in msgs) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(c) for c in text]}


# the questions this fake writes (below), as parsed; an answer prompt quotes one of them, a
# followup prompt lists the earlier ones as "- <question>" lines (prompting.question_prompt)
OWN_QUESTION = re.compile(
    r"(?<!- )(What is #\d+ in '.*?'\?|What does the passage say about '.*?'\?|What is it\?)",
    re.S,
)

ECHO = (
    "The question should be diverse in nature across the document. Restrict the questions to "
    "the context information provided."
)


class Backend(BaseBackend):
    """Writes 'Question N about <chunk start>?' and 'Answer to ...'; can fake OOM and crashes."""

    calls: list[int] = []  # batch sizes seen, shared across instances for assertions
    pairs: int = 0  # qa_pair replies written so far
    oom_above: int | None = None  # raise OutOfMemory for batches larger than this
    crash_after: int | None = None  # raise RuntimeError on this call number (a killed run)
    duplicate_questions: bool = False  # every question the same text
    seen: list[tuple[str, list[str]]] = []  # (prompt text, stop strings) of every prompt
    stream: bool = False  # offer streamed feeding, as the vllm engine does (feed.drive)
    bad: bool = False  # some outputs fail quality gates, chosen by the chunk text (kind below)
    same_answer: str | None = None  # every answer this text (near-duplicates across chunks)
    broken_pairs: bool = False  # qa_pair prompts: every 2nd reply without its answer part
    off_topic: bool = False  # half the chunks (by kind) get a question about another topic

    def __init__(
        self, engine: str = "auto", prefill_chunk_size: int = 0, vllm: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(ModelSpec.from_kwargs(kwargs))
        self.engine = "fake"
        self.tokenizer = FakeTokenizer()

    def set_seed(self, seed: int) -> None:
        pass

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        per_row = params if isinstance(params, list) else [params] * len(batch)
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise OutOfMemory("fake OOM")
        type(self).calls.append(len(batch))
        if self.crash_after is not None and len(type(self).calls) > self.crash_after:
            raise RuntimeError("fake crash")
        out = []
        for ids, p in zip(batch, per_row, strict=True):
            text = "".join(chr(i) for i in ids)
            type(self).seen.append((text, list(p.stop_strings)))
            context = (
                text.split("-----------")[1].strip("-\n ")[:30] if "-----" in text else text[:30]
            )
            kind = sum(map(ord, context)) % 4  # the same for a chunk in every run
            if OWN_QUESTION.search(text):  # an answer prompt, whatever its template says
                if self.same_answer is not None:
                    out.append(Generated(self.same_answer, 9, True))
                elif self.bad and kind == 3:
                    out.append(Generated("I cannot answer that from the context.", 9, True))
                else:
                    # a word the question lacks: an answer that only restates it is dropped
                    out.append(Generated(f"Answer: it is about {context}, told briefly.", 9, True))
            elif "Answer: <the answer>" in text:  # prompt=qa_pair: both in one reply
                type(self).pairs += 1
                n = text.count("\n- ")
                q = f"**Question:** What is #{n} in '{context}'?"
                broken = self.broken_pairs and type(self).pairs % 2 == 0
                text = q if broken else f"{q}\n**Answer:** it is {context}, told briefly."
                out.append(Generated(text, 12, True))
            elif self.bad and kind == 0:  # the notebook prompt's instructions, echoed
                out.append(Generated(ECHO, 30, False))
            elif self.bad and kind == 1:
                out.append(Generated(f"What does the passage say about '{context}'?", 9, True))
            elif self.off_topic and kind < 2:  # BM25 cannot find its chunk with it
                n = text.count("\n- ")
                out.append(Generated(f"How do glaciers carve valleys {n} in {kind}?", 9, True))
            elif self.duplicate_questions:
                out.append(Generated("Here is a question:\nWhat is it?", 5, True))
            else:
                n = text.count("\n- ")  # questions already asked (followup prompt)
                out.append(Generated(f"Question: What is #{n} in '{context}'?", 7, True))
        return out

    def streamer(self, batch_size: int | None = None) -> FakeStreamer | None:
        return FakeStreamer(self) if self.stream else None

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
    """For the CLI (a class attribute cannot be set there): some outputs fail the gates."""

    bad = True


def reset() -> None:
    """Every class setting of the fake back to its default: tests set them, and they must not
    leak into the next test or file."""
    Backend.calls = []
    Backend.oom_above = None
    Backend.crash_after = None
    Backend.duplicate_questions = False
    Backend.seen = []
    Backend.stream = False
    Backend.bad = False
    Backend.same_answer = None
    Backend.broken_pairs = False
    Backend.off_topic = False
    Backend.pairs = 0

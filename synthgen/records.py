"""The small records that flow between stages; each knows its source file and chunk id."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field


def short_hash(*parts: str, n: int = 16) -> str:
    """Stable id from text parts (sha1 hex prefix), so ids survive reruns and machines."""
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:n]


@dataclass(frozen=True)
class Doc:
    """Text of one file, or of one page of a PDF."""

    source: str  # file path relative to corpus.dir
    text: str
    page: str | None = None  # PDF page label, None for other formats


@dataclass(frozen=True)
class Skipped:
    """A file that gave no text, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    id: str  # stable content hash of source + text
    source: str
    text: str
    page: str | None = None


@dataclass(frozen=True)
class Slot:
    """One question to ask: a chunk and the index of the question about it."""

    split: str
    chunk: Chunk
    q_index: int
    prompt: str  # prompt config name
    model: str  # model name_or_path

    @property
    def key(self) -> str:
        """Resume key: chunk id x question index x prompt x model."""
        return row_key(self.chunk.id, self.q_index, self.prompt, self.model)


def row_key(chunk_id: str, q_index: int, prompt: str, model: str) -> str:
    return f"{chunk_id}:{q_index}:{prompt}:{model}"


@dataclass
class Row:
    """One question/answer pair: a line of train.jsonl / val.jsonl."""

    id: str
    split: str
    chunk_id: str
    source: str
    doc: str
    question: str
    answer: str | None  # None: a questions-only run (prompt.answer: null)
    prompt: str
    model: str
    q_index: int = 0
    # new tokens of question and answer (qa_pair: of the one reply, as "qa_pair")
    tokens: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return row_key(self.chunk_id, self.q_index, self.prompt, self.model)

    def to_dict(self) -> dict:
        return asdict(self)

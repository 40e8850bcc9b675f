"""The small records that flow between stages; each knows its source file and chunk id."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any


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
    key: str = ""  # resume key (row_key); filled in from the fields above when not given
    # the question's quality signals (synthgen/gates/signals.py): logprob, bm25_rank, ...
    signals: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = row_key(self.chunk_id, self.q_index, self.prompt, self.model)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        """A JSONL line, also one written before rows stored their key."""
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def key_of(row: dict[str, Any]) -> str:
    """The key of a row dict (stored, or rebuilt for a line written before rows stored it)."""
    return row.get("key") or row_key(row["chunk_id"], row["q_index"], row["prompt"], row["model"])


def first_per_key(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each key once, its first record kept: rows, rejected.jsonl or questions.jsonl lines of
    one dir (two writers before the lock existed) or of several (a merge's shards)."""
    seen: set[str] = set()
    out = []
    for r in records:
        key = key_of(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


@dataclass
class Rejected:
    """One rejected generation: a line of rejected.jsonl (stage, reason, what came back)."""

    key: str
    split: str
    chunk_id: str
    source: str
    q_index: int
    stage: str  # question | answer
    reason: str  # prompt_too_long, empty, duplicate, a quality gate's name, ...
    question: str = ""
    raw: str = ""  # the model's reply as it came, or what made the prompt too long
    extra: dict[str, Any] = field(default_factory=dict)  # a gate's score, duplicate_of, ...
    signals: dict[str, Any] = field(default_factory=dict)  # as a row's, where they got made

    @classmethod
    def of_slot(cls, slot: Slot, stage: str, reason: str, **kw: Any) -> Rejected:
        c = slot.chunk
        return cls(slot.key, slot.split, c.id, c.source, slot.q_index, stage, reason, **kw)

    @classmethod
    def of_row(cls, row: dict[str, Any], stage: str, reason: str, **kw: Any) -> Rejected:
        """A finished row dropped later (a merge's cross-shard dedup, task=filter)."""
        kw.setdefault("question", row["question"])
        return cls(
            key_of(row), row["split"], row["chunk_id"], row["source"], row["q_index"],
            stage, reason, **kw,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**out, **self.extra}


# --- counts that add up: a merged or resumed summary is a sum ------------------------------------


@dataclass
class SplitCounts:
    """summary.json's `splits.<split>`: the corpus stages, then slots, rows and rejects."""

    files_read: int = 0
    files_skipped: list[dict[str, str]] = field(default_factory=list)  # {file, reason}
    file_notes: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, dict[str, Any]] = field(default_factory=dict)  # non-UTF-8 files
    cleaning: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> counts per rule
    docs: int = 0
    chunks_total: int = 0
    chunks_kept: int = 0
    chunks_rejected: dict[str, int] = field(default_factory=dict)  # reason -> chunks
    chunks_used: int = 0
    duplicate_chunks: list[dict[str, Any]] = field(default_factory=list)
    slots: int | None = 0  # None: not known (a merge of shards that never summarised)
    rows: int = 0
    duplicates: int = 0  # questions rejected as a repeat of an earlier one
    rejected_questions: dict[str, int] = field(default_factory=dict)  # reason -> count
    rejected_answers: dict[str, int] = field(default_factory=dict)

    CORPUS = (
        "files_read", "files_skipped", "file_notes", "encodings", "cleaning", "docs",
        "chunks_total", "chunks_kept", "chunks_rejected", "chunks_used", "duplicate_chunks",
    )  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitCounts:
        """A summary's split (keys it does not know are left out; missing ones are 0)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def corpus(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.CORPUS}

    def with_rejects(
        self, rows: int, rejected: Iterable[dict[str, Any]], split: str
    ) -> SplitCounts:
        """These corpus counts with rows and rejects counted from rejected.jsonl records."""
        rq, ra = Counter(), Counter()
        for r in rejected:
            if r["split"] == split:
                (rq if r["stage"] == "question" else ra)[r["reason"]] += 1
        return SplitCounts(
            **self.corpus(),
            slots=self.slots,
            rows=rows,
            duplicates=rq.get("duplicate", 0),
            rejected_questions=dict(sorted(rq.items())),
            rejected_answers=dict(sorted(ra.items())),
        )

    def __add__(self, other: SplitCounts) -> SplitCounts:
        """Two disjoint parts of a split (shards, or files): numbers add, lists join."""
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "chunks_rejected" or f.name.startswith("rejected_"):
                out[f.name] = dict(sorted((Counter(a) + Counter(b)).items()))
            elif isinstance(a, dict):
                out[f.name] = {**a, **b}
            elif a is None or b is None:
                out[f.name] = None
            else:
                out[f.name] = a + b
        return SplitCounts(**out)


@dataclass
class GenTotals:
    """Generation figures that add up over sessions of one run dir, or over shards."""

    output_tokens: int = 0
    generate_seconds: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenTotals:
        return cls(int(d.get("output_tokens", 0) or 0), float(d.get("generate_seconds", 0) or 0))

    @property
    def tokens_per_second(self) -> float:
        secs = self.generate_seconds
        return round(self.output_tokens / secs, 1) if secs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_tokens": self.output_tokens,
            "generate_seconds": round(self.generate_seconds, 3),
            "tokens_per_second": self.tokens_per_second,
        }

    def __add__(self, other: GenTotals) -> GenTotals:
        return GenTotals(
            self.output_tokens + other.output_tokens,
            self.generate_seconds + other.generate_seconds,
        )

"""The corpus of a run: read -> clean -> chunk (-> fit) -> dedup -> leak check -> select, per split,
or all of it read back from a prepared folder (corpus.prepared, written by task=prepare:
prepared.py); then the slots to fill."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthgen import faults, rundir
from synthgen.corpus import chunking, dedup, reading, selection
from synthgen.errors import ConfigError
from synthgen.records import Chunk, Skipped, Slot, SplitCounts
from synthgen.rundir import SPLITS
from synthgen.rundir.identity import row_config_diff
from synthgen.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SplitCorpus:
    """One split after reading, cleaning, chunking, dedup and selection, with its counts."""

    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, dict[str, Any]] = field(default_factory=dict)  # non-UTF-8 files
    cleaning: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> counts per rule
    docs: int = 0
    chunks: list[Chunk] = field(default_factory=list)  # every chunk, in file order
    copies: list[dedup.Match] = field(default_factory=list)  # repeats of an earlier chunk
    leaked: list[dedup.Match] = field(default_factory=list)  # val chunks dropped as leaks
    kept: list[Chunk] = field(default_factory=list)  # inside the bounds with a keyword
    rejected: Counter[str] = field(default_factory=Counter)
    used: list[Chunk] = field(default_factory=list)  # the first kept chunks num_rows needs
    prepared: dict[str, str] | None = None  # read from corpus.prepared: its dir and fingerprint

    def corpus_chunks(self) -> list[Chunk]:
        """The split's retrieval corpus (<split>_corpus.json): copies and dropped leaks out."""
        out = {m.chunk.id for m in [*self.copies, *self.leaked]}
        return [c for c in self.chunks if c.id not in out]

    def counts(self, slots: int = 0) -> SplitCounts:
        return SplitCounts(
            files_read=len(self.files) - len(self.skipped),
            files_skipped=[{"file": s.source, "reason": s.reason} for s in self.skipped],
            file_notes=self.notes,
            encodings=self.encodings,
            cleaning=self.cleaning,
            docs=self.docs,
            chunks_total=len(self.chunks),
            chunks_kept=len(self.kept),
            chunks_rejected=dict(sorted(self.rejected.items())),
            chunks_used=len(self.used),
            duplicate_chunks=[m.record() for m in self.copies],
            slots=slots,
        )


Corpus = dict[str, SplitCorpus]


def load_corpus(
    st: Settings, seconds: Counter[str], leak_report: dict[str, Any] | None = None
) -> Corpus:
    """Read, clean, chunk, dedup, check for leaks, select. `leak_report` gets the leak check.
    With corpus.prepared, all of it comes from that task=prepare folder instead."""
    if st.corpus.prepared is not None:
        got = load_prepared(st, seconds, leak_report)
        check_examples(st, got)
        return got
    directory = st.corpus.dir
    if not directory.is_dir():
        raise ConfigError(f"corpus.dir: folder {str(directory)!r} not found")
    files = {
        s: reading.resolve_files(directory, st.corpus.files[s], f"corpus.{s}_files") for s in SPLITS
    }  # every list is checked before any file is read
    both = sorted(set(files["train"]) & set(files["val"]))
    if both:  # a chunk in both splits would leak val into train, and share its row keys
        name = both[0].relative_to(directory).as_posix()
        raise ConfigError(
            f"corpus.val_files: {name!r} is also in corpus.train_files; a file belongs to one split"
        )
    out = {s: _read_split(st, files[s], seconds) for s in SPLITS}
    check_examples(st, out)
    t = time.perf_counter()
    pairs = _leaks(st, out)
    seconds["dedup"] += time.perf_counter() - t
    if leak_report is not None:
        leak_report.update(
            action=st.corpus.leak,
            threshold=st.dedup.leak_threshold,
            pairs=[m.record("val", "train") for m in pairs],
            dropped=len(out["val"].leaked),
        )
    for split in SPLITS:
        t = time.perf_counter()
        _select(st, out[split])
        seconds["select"] += time.perf_counter() - t
    return out


def _read_split(st: Settings, files: list[Any], seconds: Counter[str]) -> SplitCorpus:
    """Read, clean and chunk one split's files; copies of a passage within it are found."""
    directory = st.corpus.dir
    sc = SplitCorpus(files=[p.relative_to(directory).as_posix() for p in files])
    t = time.perf_counter()
    got = reading.read_corpus(directory, files, st.corpus.encoding, st.cleaning)
    sc.skipped, sc.notes, sc.encodings, sc.cleaning = (
        got.skipped,
        got.notes,
        got.encodings,
        got.cleaning,
    )
    sc.docs = len(got.docs)
    seconds["read"] += time.perf_counter() - t
    t = time.perf_counter()
    ch = st.chunking
    sc.chunks = chunking.chunk_docs(got.docs, ch.size, ch.overlap)
    if ch.bounds == "fit":  # into the length bounds, rather than dropped by selection
        sc.chunks = chunking.fit_chunks(sc.chunks, ch.min_chars, ch.max_chars)
    faults.point("chunk")
    dd = st.dedup
    if dd.on:  # the same passage twice in one split is generated once
        sc.copies = dedup.copies(sc.chunks, dd.shingle_words, dd.chunk_threshold, dd.min_shingles)
    seconds["chunk"] += time.perf_counter() - t
    return sc


def check_examples(st: Settings, out: Corpus) -> None:
    """Refuse a worked example (prompt.examples) whose passage is in the corpus: its question
    would be a row's answer key shown in the prompt, and leak into what the rows are tested on.
    A passage counts as in the corpus when one chunk holds it (folded text), or holds at least
    dedup.leak_threshold of its shingles (0.5 where dedup is off)."""
    passages = st.prompt.example_passages
    if not passages:
        return
    dd = st.dedup
    chunks = [c for s in SPLITS for c in out[s].chunks]
    examples = [Chunk(f"example {i}", "prompt.examples", p) for i, p in enumerate(passages)]
    threshold = dd.leak_threshold if dd.leak_threshold is not None else 0.5
    found = dedup.leaks(chunks, examples, dd.shingle_words, threshold, dd.min_shingles)
    if not found:  # too short for shingles: the folded text itself
        folded = [(c, dedup.fold(c.text)) for c in chunks]
        found = [
            dedup.Match(e, c, 1.0)
            for e in examples
            if (f := dedup.fold(e.text))
            for c, text in folded
            if f in text
        ][:1]
    if found:
        m = found[0]
        raise ConfigError(
            f"prompt.examples[{m.chunk.id.split()[1]}]: its passage occurs in the corpus "
            f"({m.of.source!r}, overlap {m.similarity:.2f}); use a passage from outside the corpus"
        )


def _leaks(st: Settings, out: Corpus) -> list[dedup.Match]:
    """Val chunks that repeat a train passage; corpus.leak says to fail, warn or drop them."""
    dd = st.dedup
    if not dd.on:
        return []
    own = {s: [c for c in out[s].chunks if c.id not in _ids(out[s].copies)] for s in SPLITS}
    assert dd.leak_threshold is not None
    pairs = dedup.leaks(
        own["train"], own["val"], dd.shingle_words, dd.leak_threshold, dd.min_shingles
    )
    if not pairs:
        return pairs
    first, action = pairs[0], st.corpus.leak
    what = (
        f"{len(pairs)} val chunk(s) repeat a train passage (val {first.chunk.source!r} "
        f"chunk {first.chunk.id} ~ train {first.of.source!r} chunk {first.of.id}, "
        f"overlap {first.similarity:.2f}"
        + (f"; and {len(pairs) - 1} more" if len(pairs) > 1 else "")
        + ")"
    )
    if action == "fail":
        raise ConfigError(
            f"corpus.leak: {what}; fix the file lists, or set corpus.leak=drop to leave "
            "the val copies out (warn: keep them and report)"
        )
    log.warning("leak between splits: %s; corpus.leak=%s", what, action)
    if action == "drop":
        out["val"].leaked = pairs
    return pairs


def _ids(matches: Iterable[dedup.Match]) -> set[str]:
    return {m.chunk.id for m in matches}


def _select(st: Settings, sc: SplitCorpus) -> None:
    """Kept chunks (length bounds, keywords) and the first of them that num_rows needs."""
    copies, gone = _ids(sc.copies), _ids(sc.leaked)
    sc.rejected = Counter()
    if sc.copies:
        sc.rejected["duplicate"] = len(sc.copies)
    if gone:
        sc.rejected["leak"] = len(gone)
    candidates = [c for c in sc.chunks if c.id not in copies and c.id not in gone]
    sel = st.selection
    sc.kept, rejected = selection.select(
        candidates, sel.min_chars, sel.max_chars, list(sel.words), sel.match
    )
    sc.rejected.update(rejected)
    sc.used = sc.kept[: st.chunks_needed]


# --- a prepared folder (corpus.prepared): read here, written by task=prepare (prepared.py) -----

PREPARED_FORMAT = 1  # version of the prepared folder's layout


def corpus_keys(st: Settings) -> dict[str, Any]:
    """The config keys that decide the chunks and which are kept, by their config names."""
    c, ch, sel = st.corpus, st.chunking, st.selection
    out: dict[str, Any] = {
        "corpus.dir": str(c.dir),
        **{f"corpus.{s}_files": list(c.files[s]) for s in SPLITS},
        "corpus.encoding": c.encoding,
        "corpus.leak": c.leak,
        "chunking.chunk_size": ch.size,
        "chunking.chunk_overlap": ch.overlap,
        "chunking.min_chars": ch.min_chars,
        "chunking.max_chars": ch.max_chars,
        "chunking.bounds": ch.bounds,
        "keywords.words": list(sel.words),
        "keywords.match": sel.match,
    }
    for k, v in dataclasses.asdict(st.cleaning).items():
        out[f"cleaning.{k}"] = v
    for k, v in dataclasses.asdict(st.dedup).items():
        out[f"dedup.{k}"] = v
    return json.loads(json.dumps(out))  # tuples as lists: as they read back from the file


def fingerprint(keys: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def prepared_header(folder: Path) -> dict[str, Any]:
    """The prepared folder's header; one line when it is not one."""
    try:
        out = json.loads((folder / rundir.PREPARED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(
            f"corpus.prepared: {str(folder)!r} holds no prepared corpus ({rundir.PREPARED}); "
            "make it with python run.py task=prepare hydra.run.dir=DIR"
        ) from None
    if out.get("format") != PREPARED_FORMAT:
        raise ConfigError(
            f"corpus.prepared: {str(folder)!r} has layout {out.get('format')!r}, this synthgen "
            f"reads {PREPARED_FORMAT}; run task=prepare again"
        )
    return out


def verify_prepared(folder: Path, st: Settings) -> dict[str, Any]:
    """The header, if it was prepared with this config's corpus keys; else one line."""
    head = prepared_header(folder)
    mine = corpus_keys(st)
    # a folder prepared before a key existed: its keys lack it, made with the old value
    theirs = rundir.upgrade_keys(head.get("keys", {}), within=mine)
    if fingerprint(theirs) != fingerprint(mine):
        diff = row_config_diff(theirs, mine) or "the fingerprint"
        raise ConfigError(
            f"corpus.prepared: {str(folder)!r} was prepared with another corpus config "
            f"({diff}, there -> here); run task=prepare again with this config, or drop "
            "corpus.prepared to read the files"
        )
    return head


def _prepared_split(rec: dict[str, Any], train: dict[str, Chunk] | None) -> SplitCorpus:
    chunks = [Chunk(**c) for c in rec["chunks"]]
    by_id = {c.id: c for c in chunks}
    of = train if train is not None else by_id  # a leak repeats a train chunk

    def match(m: dict[str, Any], where: dict[str, Chunk]) -> dedup.Match:
        return dedup.Match(by_id[m["chunk"]], where[m["of"]], m["similarity"])

    return SplitCorpus(
        files=rec["files"],
        skipped=[Skipped(**s) for s in rec["skipped"]],
        notes=rec["notes"],
        encodings=rec["encodings"],
        cleaning=rec["cleaning"],
        docs=rec["docs"],
        chunks=chunks,
        copies=[match(m, by_id) for m in rec["copies"]],
        leaked=[match(m, of) for m in rec["leaked"]],
        kept=[by_id[i] for i in rec["kept"]],
        rejected=Counter(rec["rejected"]),
    )


def load_prepared(
    st: Settings, seconds: Counter[str], leak_report: dict[str, Any] | None
) -> Corpus:
    """The corpus as load_corpus would make it, from the prepared folder."""
    folder = st.corpus.prepared
    assert folder is not None
    tick = time.perf_counter()
    head = verify_prepared(folder, st)
    out: Corpus = {}
    for s in SPLITS:
        rec = json.loads((folder / rundir.prepared_file(s)).read_text(encoding="utf-8"))
        train = {c.id: c for c in out["train"].chunks} if s != "train" else None
        sc = out[s] = _prepared_split(rec, train)
        sc.used = sc.kept[: st.chunks_needed]
        sc.prepared = {"dir": str(folder), "fingerprint": head["fingerprint"]}
    if leak_report is not None:
        leak_report.update(head["leak"])
    seconds["prepared"] += time.perf_counter() - tick
    return out


def prepared_record(corpus: Corpus) -> dict[str, Any]:
    """summary.json's `corpus`: where the chunks came from."""
    got = corpus["train"].prepared if "train" in corpus else None
    if not got:
        return {"prepared": None}
    return {"prepared": got["dir"], "fingerprint": got["fingerprint"]}


def warnings(st: Settings, corpus: Corpus) -> list[str]:
    """Selection reasons that drop most of a split's chunks, one line each (selection.warnings)."""
    ch = st.chunking
    return [
        w
        for s in SPLITS
        for w in selection.warnings(
            s, len(corpus[s].chunks), corpus[s].rejected, ch.min_chars, ch.max_chars, ch.bounds
        )
    ]


def corpus_texts(corpus: Corpus) -> dict[str, dict[str, str]]:
    """Each split's retrieval corpus as {chunk id: text}: what <split>_corpus.json holds, and
    what a question's own chunk is ranked among (signals.py)."""
    return {s: {c.id: c.text for c in corpus[s].corpus_chunks()} for s in SPLITS}


def make_slots(st: Settings, corpus: Corpus) -> dict[str, list[Slot]]:
    """Every (chunk, question index) to fill, at most num_rows per split, in dataset order."""
    k = st.prompt.questions_per_chunk
    slots = {}
    for split, sc in corpus.items():
        s = [Slot(split, c, i, st.prompt.name, st.model) for c in sc.used for i in range(k)]
        slots[split] = s[: st.num_rows]
    return slots

"""Read and chunk once per dataset, not once per job: `task=prepare` and `corpus.prepared=DIR`.

Every shard of a sweep needs the whole corpus (every chunk id, where num_rows cuts, the
<split>_corpus.json it writes), and reading it costs ~20 ms a file on a 2-core CPU: with
100,000 files, half an hour per job before its first prompt. `task=prepare` reads, cleans,
chunks, dedups and selects once and writes the result into its run dir; a job with
`corpus.prepared=DIR` loads it from there (one JSON file per split) instead of the files.

The folder records a fingerprint of the config keys that decide the chunks and their
selection (corpus, cleaning, chunking, dedup, keywords). A job whose own keys differ is
refused with one line naming the first key that differs. num_rows and
prompt.questions_per_chunk are not in it: the job cuts the kept chunks to its own num_rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from synthgen import rundir
from synthgen.config import backfill, check, row_config_diff
from synthgen.dataset import dedup
from synthgen.dataset.corpus import Corpus, SplitCorpus, load_corpus, warnings
from synthgen.errors import ConfigError
from synthgen.records import Chunk, Skipped
from synthgen.rundir import SPLITS, runlock
from synthgen.settings import Settings
from synthgen.tasks import TaskRun, task

FORMAT = 1  # version of the prepared folder's layout


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


# --- writing ------------------------------------------------------------------------------------


def _match(m: dedup.Match) -> dict[str, Any]:
    return {"chunk": m.chunk.id, "of": m.of.id, "similarity": m.similarity}


def split_record(sc: SplitCorpus) -> dict[str, Any]:
    """Everything of a SplitCorpus but `used` (the job's num_rows decides it)."""
    return {
        "files": sc.files,
        "skipped": [{"source": s.source, "reason": s.reason} for s in sc.skipped],
        "notes": sc.notes,
        "encodings": sc.encodings,
        "cleaning": sc.cleaning,
        "docs": sc.docs,
        "chunks": [dataclasses.asdict(c) for c in sc.chunks],  # every chunk, in file order
        "copies": [_match(m) for m in sc.copies],
        "leaked": [_match(m) for m in sc.leaked],
        "kept": [c.id for c in sc.kept],  # the selected chunks, in order
        "rejected": dict(sc.rejected),
    }


def write(folder: Path, st: Settings, corpus: Corpus, leak: dict[str, Any]) -> dict[str, Any]:
    """The prepared folder: one file per split, then the header (written last, atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        rundir.write_json(folder / rundir.prepared_file(s), split_record(corpus[s]))
    keys = corpus_keys(st)
    header = {"format": FORMAT, "fingerprint": fingerprint(keys), "keys": keys, "leak": leak}
    header["kept"] = {s: len(corpus[s].kept) for s in SPLITS}
    rundir.write_json(folder / rundir.PREPARED, header)
    return header


@task("prepare")
def prepare(t: TaskRun) -> dict[str, Any]:
    """Read, clean, chunk, dedup and select the corpus once, into the run dir."""
    check(t.cfg)
    st = Settings.from_cfg(t.cfg)
    st = dataclasses.replace(st, corpus=dataclasses.replace(st.corpus, prepared=None))
    with runlock.held(t.run_dir):
        leak: dict[str, Any] = {}
        corpus = load_corpus(st, t.seconds, leak)
        tick = time.perf_counter()
        header = write(t.run_dir, st, corpus, leak)
        t.seconds["write"] += time.perf_counter() - tick
        t.save_config()
        splits = {s: corpus[s].counts().corpus() for s in SPLITS}
        summary = {
            "fingerprint": header["fingerprint"],
            "splits": splits,
            "warnings": warnings(st, corpus),
            "leak": leak,
        }
        return t.finish(summary, done=True)  # DONE: the folder is whole


# --- reading ------------------------------------------------------------------------------------


def header(folder: Path) -> dict[str, Any]:
    """The prepared folder's header; one line when it is not one."""
    try:
        out = json.loads((folder / rundir.PREPARED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(
            f"corpus.prepared: {str(folder)!r} holds no prepared corpus ({rundir.PREPARED}); "
            "make it with python run.py task=prepare hydra.run.dir=DIR"
        ) from None
    if out.get("format") != FORMAT:
        raise ConfigError(
            f"corpus.prepared: {str(folder)!r} has layout {out.get('format')!r}, this synthgen "
            f"reads {FORMAT}; run task=prepare again"
        )
    return out


def verify(folder: Path, st: Settings) -> dict[str, Any]:
    """The header, if it was prepared with this config's corpus keys; else one line."""
    head = header(folder)
    mine = corpus_keys(st)
    # a folder prepared before a key existed: its keys lack it, made with the old value
    theirs = backfill(head.get("keys", {}), within=mine)
    if fingerprint(theirs) != fingerprint(mine):
        diff = row_config_diff(theirs, mine) or "the fingerprint"
        raise ConfigError(
            f"corpus.prepared: {str(folder)!r} was prepared with another corpus config "
            f"({diff}, there -> here); run task=prepare again with this config, or drop "
            "corpus.prepared to read the files"
        )
    return head


def _split(rec: dict[str, Any], train: dict[str, Chunk] | None) -> SplitCorpus:
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


def load(st: Settings, seconds: Counter[str], leak_report: dict[str, Any] | None) -> Corpus:
    """The corpus as load_corpus would make it, from the prepared folder."""
    folder = st.corpus.prepared
    assert folder is not None
    tick = time.perf_counter()
    head = verify(folder, st)
    out: Corpus = {}
    for s in SPLITS:
        rec = json.loads((folder / rundir.prepared_file(s)).read_text(encoding="utf-8"))
        train = {c.id: c for c in out["train"].chunks} if s != "train" else None
        sc = out[s] = _split(rec, train)
        sc.used = sc.kept[: st.chunks_needed]
        sc.prepared = {"dir": str(folder), "fingerprint": head["fingerprint"]}
    if leak_report is not None:
        leak_report.update(head["leak"])
    seconds["prepared"] += time.perf_counter() - tick
    return out


def record(corpus: Corpus) -> dict[str, Any]:
    """summary.json's `corpus`: where the chunks came from."""
    got = corpus["train"].prepared if "train" in corpus else None
    if not got:
        return {"prepared": None}
    return {"prepared": got["dir"], "fingerprint": got["fingerprint"]}

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

This module writes the folder (the task, on top of load_corpus); load.py reads it, beside
the SplitCorpus it builds, so load.py needs nothing of this module.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from synthgen import rundir
from synthgen.config import check
from synthgen.corpus import dedup
from synthgen.corpus.load import (
    PREPARED_FORMAT,
    Corpus,
    SplitCorpus,
    corpus_keys,
    fingerprint,
    load_corpus,
    warnings,
)
from synthgen.rundir import SPLITS
from synthgen.settings import Settings
from synthgen.tasks import TaskRun, task

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
    header = {"format": PREPARED_FORMAT, "fingerprint": fingerprint(keys), "keys": keys}
    header["leak"] = leak
    header["kept"] = {s: len(corpus[s].kept) for s in SPLITS}
    rundir.write_json(folder / rundir.PREPARED, header)
    return header


@task("prepare", lock=True)
def prepare(t: TaskRun) -> dict[str, Any]:
    """Read, clean, chunk, dedup and select the corpus once, into the run dir."""
    check(t.cfg)
    st = Settings.from_cfg(t.cfg)
    st = dataclasses.replace(st, corpus=dataclasses.replace(st.corpus, prepared=None))
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

"""Finishing a dataset run dir, the one way task=generate, task=filter and a merge do it: the
rows in dataset order, gated in that order, and the end-of-run files written from them.

Dataset order is chunk order in the corpus, then question index: the same in every run of a
config, whatever order the rows finished in. Gates that remember what they kept (a question
asked before, a near-duplicate answer) keep the first row in that order, so a merge of shards
and a task=filter drop what one run would have dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from synthgen import faults
from synthgen.records import Rejected
from synthgen.rundir import CONFIG, DONE, JSONL_FILES, SUMMARY, clear_done
from synthgen.rundir.writing import write_jsonl, write_outputs

# a row -> the row to keep (itself, or a copy with more fields), or why it goes
Gate = Callable[[dict], "dict | Rejected"]


def order_rows(rows: Iterable[dict], chunk_ids: Iterable[str]) -> list[dict]:
    """Dataset order: chunk order in the corpus, then question index (not finishing order).

    chunk_ids: the split's chunk ids in corpus order (a SplitCorpus's chunks, or the keys of
    a <split>_corpus.json, which keeps that order); a row of another chunk goes last."""
    pos = {cid: i for i, cid in enumerate(chunk_ids)}
    return sorted(
        rows, key=lambda r: (pos.get(r["chunk_id"], len(pos)), r.get("q_index", 0), r["id"])
    )


def apply_in_order(rows: Iterable[dict], gate: Gate) -> tuple[list[dict], list[dict]]:
    """(kept rows, rejected.jsonl records of the dropped), each row through `gate` in the order
    given (dataset order: a gate that remembers keeps the first, as one run would)."""
    kept: list[dict] = []
    dropped: list[dict] = []
    for row in rows:
        got = gate(row)
        if isinstance(got, Rejected):
            dropped.append(got.to_dict())
        else:
            kept.append(got)
    return kept, dropped


def finalize(
    run_dir: Path,
    rows: dict[str, list[dict]],
    corpus: dict[str, dict[str, str]],
    records: dict[str, list[dict]] | None = None,
    point: str | None = None,
    done: bool = True,
) -> list[str]:
    """Write the dataset files of a run dir; returns summary.json's `files`: every file the
    finished dir holds (DONE too when `done`). The caller then writes the summary and DONE
    (TaskRun.finish) and, for a dir made from others', its config.

    rows: split -> rows in dataset order; corpus: split -> {chunk_id: text}, every chunk.
    records: JSONL files to write whole first, {file name: records} (a merge or task=filter
    makes its dir from other dirs'; a generate run appended its own as it went). DONE is
    cleared first: the dir is not finished until the caller writes it again. point: a fault
    point passed after each file of `records` and after the outputs (the merge's crash tests).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_done(run_dir)
    for name, recs in (records or {}).items():
        write_jsonl(run_dir / name, recs)
        if point:
            faults.point(point)
    for name in JSONL_FILES:
        (run_dir / name).touch()  # present even when nothing was generated here (an empty shard)
    files = write_outputs(run_dir, rows, corpus)
    if point:
        faults.point(point)
    return sorted([*files, CONFIG, SUMMARY, *JSONL_FILES, *([DONE] if done else [])])

"""Last stage: rows to disk. JSONL as each batch finishes; JSON, Excel and the embedding
fine-tuning files at the end, rebuilt from the JSONL so a resumed run writes them whole."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthgen import faults
from synthgen.rundir import EXCEL, corpus_file, dataset_file
from synthgen.rundir import write_json as write_json  # atomic; tasks write their files with it

EXCEL_CELL_MAX = 32_767  # characters an XLSX cell holds
_FORMULA_START = ("=", "+", "-", "@")
# control characters XLSX (XML 1.0) cannot store; openpyxl raises IllegalCharacterError on them
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def read_jsonl(path: Path, repair: bool = False) -> list[dict]:
    """Read records; a half-written last line (a crash mid-write) is dropped.

    With repair=True the file is cut back to its last complete line, so appending goes on
    cleanly. A bad line elsewhere is real damage and raises.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict] = []
    good_end = 0  # byte offset after the last complete, valid line
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl == -1 else nl + 1
        line = data[pos:end].strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if end < len(data):
                    raise ValueError(f"{path}: corrupt line at byte {pos}") from None
                break  # the cut last line
        if nl == -1:
            # a last line without newline parsed fine: keep it, but end it before appending
            if repair and line:
                with open(path, "ab") as f:
                    f.write(b"\n")
                good_end = len(data) + 1
            break
        good_end = end
        pos = end
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


class JsonlAppender:
    """Appends records; `sync()` after each batch puts them on disk.

    Each write reaches the OS at once (a killed process loses nothing written); the fsync
    once a batch, not once a record, keeps slow network file systems off the hot path.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        self.dirty = False

    def write(self, records: Iterable[dict], sync: bool = False) -> None:
        for r in records:
            self.f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.f.flush()
        self.dirty = True
        if sync:
            self.sync()

    def sync(self) -> None:
        if self.dirty:
            os.fsync(self.f.fileno())
            self.dirty = False

    def close(self) -> None:
        self.sync()
        self.f.close()


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    """A whole JSONL file at once (a merge), through a temp file and a rename like write_json."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def excel_safe(value: Any) -> Any:
    """Text as a spreadsheet should show it: no formula, no forbidden characters, fits a cell.

    Applied to the sheet only; JSON and JSONL keep the exact text.
    """
    if not isinstance(value, str):
        return value
    value = _ILLEGAL_XLSX.sub("", value)
    if value.startswith(_FORMULA_START):
        value = "'" + value  # shown as text, never evaluated
    if len(value) > EXCEL_CELL_MAX:
        value = value[: EXCEL_CELL_MAX - 1] + "…"
    return value


SHEET_COLUMNS = [
    "id",
    "doc",
    "question",
    "answer",
    "split",
    "chunk_id",
    "source",
    "q_index",
    "prompt",
    "model",
    "question_tokens",
    "answer_tokens",
    # the row's quality signals (synthgen/gates/signals.py), blank where not made
    "logprob",
    "answer_logprob",
    "bm25_rank",
    "embed_rank",
    "easiness",
]


def write_excel(path: Path, sheets: dict[str, list[dict]]) -> None:
    """One sheet per split, the notebook's columns id/doc/question/answer first."""
    import pandas as pd

    tmp = path.with_name(path.stem + ".tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        for name, rows in sheets.items():
            flat = [
                {
                    **{k: v for k, v in r.items() if k not in ("tokens", "signals")},
                    "question_tokens": r.get("tokens", {}).get("question"),
                    "answer_tokens": r.get("tokens", {}).get("answer"),
                    **(r.get("signals") or {}),
                }
                for r in rows
            ]
            df = pd.DataFrame(flat, columns=SHEET_COLUMNS).map(excel_safe)
            df.to_excel(xw, sheet_name=name, index=False)
    os.replace(tmp, path)


def write_outputs(
    run_dir: Path, rows: dict[str, list[dict]], corpus: dict[str, dict[str, str]]
) -> list[str]:
    """Write every end-of-run file from the rows and each split's chunks. Returns file names.

    rows: split -> row dicts in dataset order; corpus: split -> {chunk_id: text}, all chunks.
    """
    written: list[str] = []

    def put(name: str, obj: Any) -> None:
        write_json(run_dir / name, obj)
        written.append(name)
        faults.point("write")

    for split, split_rows in rows.items():
        queries = {r["id"]: r["question"] for r in split_rows}
        relevant = {r["id"]: [r["chunk_id"]] for r in split_rows}
        put(dataset_file(split), split_rows)
        put(corpus_file(split), corpus[split])
        put(dataset_file(split, "queries"), queries)
        put(dataset_file(split, "relevant_docs"), relevant)
        # LlamaIndex's EmbeddingQAFinetuneDataset layout (its from_json loads this file)
        put(
            dataset_file(split, "dataset"),
            {
                "queries": queries,
                "corpus": corpus[split],
                "relevant_docs": relevant,
                "mode": "text",
            },
        )
    write_excel(run_dir / EXCEL, rows)
    written.append(EXCEL)
    faults.point("write")
    return written

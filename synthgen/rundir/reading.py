"""A finished run dir read back by the tasks that take one (finetune, evaluate, export,
filter): the dir named by their `data` key, each split's rows and chunks, and the check that
they write elsewhere.

A split is its Q/A rows plus every chunk of that split (`<split>_corpus.json`), so retrieval is
scored against all the chunks a question could have come from, not only the ones asked about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgen.errors import ConfigError
from synthgen.rundir import corpus_file, rows_file
from synthgen.rundir.finish import order_rows
from synthgen.rundir.writing import read_jsonl


@dataclass
class Split:
    """One split of a run dir: rows in dataset order and every chunk {chunk_id: text}."""

    name: str
    rows: list[dict]
    corpus: dict[str, str]

    @property
    def queries(self) -> dict[str, str]:
        return {r["id"]: r["question"] for r in self.rows}

    @property
    def relevant(self) -> dict[str, set[str]]:
        return {r["id"]: {r["chunk_id"]} for r in self.rows}

    def positive(self, row: dict) -> str:
        return self.corpus[row["chunk_id"]]


def run_dir_arg(value: Any, key: str) -> Path:
    """The run dir named by `key` (e.g. finetune.data), which must exist."""
    if value in (None, ""):
        raise ConfigError(f"{key}: required: the run dir made by task=generate ({key}=outputs/...)")
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{key}: run dir {str(path)!r} not found")
    return path


def load_split(run_dir: Path, split: str, key: str) -> Split:
    """Rows of `<split>.jsonl` (the source of truth, finished or not) and `<split>_corpus.json`."""
    rows_path, corpus_path = run_dir / rows_file(split), run_dir / corpus_file(split)
    if not rows_path.exists():
        raise ConfigError(
            f"{key}: {run_dir} has no {rows_path.name} (not a run dir of task=generate?)"
        )
    try:
        rows = read_jsonl(rows_path)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None
    if not rows:
        raise ConfigError(f"{key}: {rows_path} holds no rows")
    if not corpus_path.exists():
        raise ConfigError(
            f"{key}: {run_dir} has no {corpus_path.name} (written when task=generate finishes; "
            "run it again with the same hydra.run.dir to complete it)"
        )
    corpus = json.loads(corpus_path.read_text(encoding="utf-8"))
    missing = sorted({r["chunk_id"] for r in rows} - set(corpus))
    if missing:
        raise ConfigError(
            f"{key}: {len(missing)} {split} rows point to chunks missing from "
            f"{corpus_path.name} (e.g. {missing[0]})"
        )
    return Split(split, order_rows(rows, corpus), corpus)  # the corpus is in chunk order


def check_out_dir(run_dir: Path, data: Path, key: str) -> None:
    """A task writes summary.json and config.yaml: never over the generate run's own."""
    if run_dir.resolve() == data.resolve():
        raise ConfigError(
            f"hydra.run.dir: must differ from {key} ({data}); this task would overwrite "
            "that run's summary.json and config.yaml"
        )

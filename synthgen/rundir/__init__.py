"""The run-dir contract: every file name a run dir holds, spelled once.

Every task writes into one run dir and later tasks (resume, merge, compare, finetune) read
it back, so the names below are the interface between them. No other module of synthgen
spells a run-dir file name; it imports it from here.
"""

from __future__ import annotations

SPLITS = ("train", "val")  # dataset splits, in the order they are generated and written

CONFIG = "config.yaml"  # the fully resolved config of the run
SUMMARY = "summary.json"  # counts, seconds, tokens and versions of the run
DONE = "DONE"  # written last: the run finished (a dir without it is running or stopped)
LOCK = ".lock"  # held while a process writes the dir (synthgen.rundir.runlock)
HYDRA = ".hydra"  # Hydra's own record of the command (config.yaml, overrides.yaml)
OVERRIDES = "overrides.yaml"  # in HYDRA: the command-line overrides of the run
QUESTIONS = "questions.jsonl"  # accepted questions, written before their answers run
REJECTED = "rejected.jsonl"  # every rejected generation with stage and reason
EXCEL = "dataset.xlsx"  # sheets train and val


def rows_file(split: str) -> str:
    """`<split>.jsonl`: the rows of a split, appended as batches finish (completion order)."""
    return f"{split}.jsonl"

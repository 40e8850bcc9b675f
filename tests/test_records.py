"""Records that add up, rows that carry their key, and the task wrapper's summary frame."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from synthgen import rundir
from synthgen.records import (
    Chunk,
    GenTotals,
    Rejected,
    Row,
    Slot,
    SplitCounts,
    first_per_key,
    key_of,
    row_key,
)
from synthgen.tasks import TaskRun, task


def test_a_row_carries_its_key_and_old_lines_get_theirs() -> None:
    r = Row("id", "train", "c1", "a.txt", "doc", "Q?", "A.", "notebook", "m", q_index=2)
    assert r.key == row_key("c1", 2, "notebook", "m") == key_of(r.to_dict())
    old = {k: v for k, v in r.to_dict().items() if k != "key"}  # a line from before keys
    assert Row.from_dict(old).key == r.key == key_of(old)


def test_rejected_lines_have_one_shape_for_slots_and_rows() -> None:
    slot = Slot("val", Chunk("c1", "a.txt", "text"), 1, "notebook", "m")
    a = Rejected.of_slot(slot, "answer", "empty", question="Q?", raw="", extra={"x": 1})
    row = Row("id", "val", "c1", "a.txt", "text", "Q?", "", "notebook", "m", q_index=1)
    b = Rejected.of_row(row.to_dict(), "answer", "empty", raw="", extra={"x": 1})
    assert a.to_dict() == b.to_dict()
    assert list(a.to_dict()) == [
        *("key", "split", "chunk_id", "source", "q_index", "stage", "reason", "question", "raw"),
        "signals",
        "x",
    ]


def test_split_counts_add_and_count_rejects_once_per_key() -> None:
    rejected = [
        {"key": "k1", "split": "train", "stage": "question", "reason": "duplicate"},
        {"key": "k1", "split": "train", "stage": "question", "reason": "duplicate"},
        {"key": "k2", "split": "train", "stage": "answer", "reason": "empty"},
        {"key": "k3", "split": "val", "stage": "answer", "reason": "empty"},
    ]
    c = SplitCounts(docs=2, slots=5).with_rejects(3, first_per_key(rejected), "train")
    assert (c.rows, c.duplicates, c.rejected_answers) == (3, 1, {"empty": 1})
    both = c + SplitCounts(docs=1, slots=2, rows=1, rejected_answers={"empty": 2, "echo": 1})
    assert (both.docs, both.slots, both.rows) == (3, 7, 4)
    assert both.rejected_answers == {"echo": 1, "empty": 3}
    assert SplitCounts.from_dict({**both.to_dict(), "unknown": 1}) == both
    assert (both + SplitCounts(slots=None)).slots is None  # unknown stays unknown


def test_generation_totals_are_a_sum() -> None:
    parts = [GenTotals(100, 2.0), GenTotals.from_dict({"output_tokens": 50, "generate_seconds": 3})]
    total = sum(parts, start=GenTotals())
    assert total.to_dict() == {
        "output_tokens": 150,
        "generate_seconds": 5.0,
        "tokens_per_second": 30.0,
    }
    assert GenTotals().tokens_per_second == 0.0


def test_task_wrapper_writes_the_summary_frame_atomically(tmp_path: Path) -> None:
    @task("demo")
    def demo(t: TaskRun) -> dict:
        t.save_config()
        t.seconds["work"] += 1.5
        return t.finish({"answer": 42}, done=True, versions=("pytest",))

    out = demo(OmegaConf.create({"task": "demo", "x": 1}), tmp_path)
    saved = json.loads((tmp_path / rundir.SUMMARY).read_text())
    assert saved == out and out["task"] == "demo" and out["status"] == "complete"
    assert out["answer"] == 42 and out["seconds"]["work"] == 1.5 and "total" in out["seconds"]
    assert out["versions"]["pytest"] and out["started"] <= out["finished"]
    assert rundir.is_run_dir(tmp_path) and rundir.is_done(tmp_path)
    assert OmegaConf.load(tmp_path / rundir.CONFIG).x == 1
    assert not list(tmp_path.glob(f"*{rundir.TMP}*"))  # renamed into place
    assert rundir.read_summary(tmp_path / "nowhere", default={}) == {}

"""Run dirs without answers (prompt.answer: null): shards merge, export and compare read them.

Fine-tuning reads the same split (rundir.reading.load_split: question and chunk only), checked
here without training; tests/test_finetune.py trains on a question-and-answer run dir.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from synthgen import compare
from synthgen.generate import pipeline
from synthgen.rundir import SPLITS
from synthgen.rundir.reading import load_split
from synthgen.scale import merge
from tests.conftest import compose

FAKE = "model._target_=tests.helpers.fake_backend.Backend"
QONLY = [FAKE, "prompt=notebook", "prompt.answer=null"]


def job(sweep: Path, overrides: list[str]) -> Path:
    """A job dir as a multirun leaves it (tests/test_scale.py has the same helper)."""
    cfg = compose([*QONLY, *overrides])
    d = sweep / ",".join(sorted(overrides))
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    OmegaConf.save(cfg, d / ".hydra" / "config.yaml")
    pipeline.run(cfg, d)
    return d


@pytest.mark.slow
def test_shards_merge_export_and_compare_a_questions_only_run(tmp_path: Path) -> None:
    one = pipeline.run(compose([*QONLY, "num_rows=5"]), tmp_path / "one")
    assert one["this_session"]["prompts"]["answer"] == 0
    sweep = tmp_path / "sweep"
    for i in range(2):
        job(sweep, ["num_rows=5", "shard.count=2", f"shard.index={i}"])
    out = merge.merge_sweep(sweep)["merged"][0]
    merged = sweep / "merged"
    assert out["rows"] == one["rows"] == {"train": 5, "val": 5}
    for s in SPLITS:
        rows = json.loads((merged / f"{s}.json").read_text())
        assert rows == json.loads((tmp_path / "one" / f"{s}.json").read_text())
        assert all(r["answer"] is None for r in rows)
        split = load_split(merged, s, "finetune.data")  # what finetune/evaluate read
        assert len(split.queries) == 5 and all(split.positive(r) for r in split.rows)

    exported = tmp_path / "export"
    pipeline.run(compose(["task=export", f"export.data={merged}"]), run_dir=exported)
    st = [json.loads(x) for x in (exported / "st" / "train.jsonl").read_text().splitlines()]
    assert len(st) == 5 and all(r["anchor"] and r["positive"] for r in st)
    assert (exported / "beir" / "val" / "queries.jsonl").read_text().count("\n") == 5

    run = compare.load_run(merged)
    m = compare.run_metrics(run, compare.Options())
    assert (m["rows_train"], m["rows_val"]) == (5, 5)
    assert m["a_tokens_mean"] is None  # no answer was generated: no answer length either
    assert m["q_tokens_mean"] == 7.0

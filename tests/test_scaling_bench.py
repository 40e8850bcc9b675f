"""benchmarks/scaling.py on a CPU: the tiny model, the joblib launcher, N = 1 and 2.

The figures are CPU noise; what is checked is what the GPU session relies on: one prepare,
one sweep per N, every shard from the prepared chunks, the merged dataset with the N = 1
run's row keys, one results line per N with the per-shard and aggregate fields, the table.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "scaling.py"


def load_script():
    spec = importlib.util.spec_from_file_location("scaling", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_efficiency_and_wall_are_against_n1() -> None:
    sc = load_script()
    one = {"aggregate_tokens_per_second": 100.0, "sum_shard_tokens_per_second": 120.0}
    rec = {"n": 4, "aggregate_tokens_per_second": 350.0, "sum_shard_tokens_per_second": 480.0}
    sc.efficiency(rec, one)
    assert rec["efficiency"] == 0.875 and rec["efficiency_generate"] == 1.0
    shards = [
        {"started": "2026-12-01T10:00:00+00:00", "finished": "2026-12-01T10:01:00+00:00"},
        {"started": "2026-12-01T10:00:05+00:00", "finished": "2026-12-01T10:01:30+00:00"},
    ]
    assert sc.wall(shards) == 90.0
    failed = {"n": 2, "aggregate_tokens_per_second": None, "sum_shard_tokens_per_second": 0}
    sc.efficiency(failed, one)
    assert failed["efficiency"] is None and failed["efficiency_generate"] is None


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None,
    reason="hydra-joblib-launcher is not installed (pip install -e '.[scale]')",
)
def test_scaling_script_runs_n1_and_n2_and_checks_the_keys(tiny_model: Path, tmp_path: Path):
    results, table = tmp_path / "results.jsonl", tmp_path / "RESULTS.md"
    overrides = [
        "model=qwen25_05b",
        f"model.name_or_path={tiny_model}",
        "num_rows=4",
        "generation.max_new_tokens=16",
        "generation.batch_size=1",  # each prompt alone: the same tokens in any shard
        "filters=none",
        "compare.auto=false",  # the sweep's comparison report is not what this measures
    ]
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--ns", "1,2", "--engines", "dynamic", "--launcher"]
        + ["joblib", "--work", str(tmp_path / "work"), "--results", str(results)]
        + ["--table", str(table), "--set", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [(x["engine"], x["n"]) for x in lines] == [("dynamic", 1), ("dynamic", 2)]
    prepared = str(tmp_path / "work" / "prepared")
    for x in lines:
        assert x["exit_code"] == 0 and x["same_keys_as_n1"] is True
        assert x["shards_finished"] == len(x["shards"]) == x["n"]
        assert [s["index"] for s in x["shards"]] == list(range(x["n"]))
        assert all(s["corpus"] == prepared for s in x["shards"])  # read once, by task=prepare
        assert all(s["output_tokens"] > 0 and s["engine"] == "dynamic" for s in x["shards"])
        assert x["rows"] == lines[0]["rows"] > 0 and x["output_tokens"] > 0
        for key in ("load_seconds", "first_row_seconds", "tokens_per_second"):
            assert all(s[key] is not None for s in x["shards"]), key
    assert lines[1]["efficiency_generate"] is not None
    text = table.read_text()
    assert "## Issue 16: scale-out, joblib" in text and text.count("| dynamic |") == 2

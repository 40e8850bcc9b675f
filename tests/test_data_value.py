"""benchmarks/data_value.py end to end on a CPU, tiny: generate on 4 python_faq documents with
the tiny random model, re-gate, fine-tune the tiny embedder, score the human queries."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

METRICS = ("ndcg@10", "recall@1", "recall@10")


def bench():
    path = REPO / "benchmarks" / "data_value.py"
    spec = importlib.util.spec_from_file_location("data_value", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def in_unit(metrics: dict) -> bool:
    return set(metrics) == set(METRICS) and all(0 <= v <= 1 for v in metrics.values())


def test_configs_variants_and_rows_each_append_a_line(
    tiny_model: Path, tiny_embedder: Path, tmp_path: Path
) -> None:
    dv = bench()
    results, table, work = tmp_path / "results.jsonl", tmp_path / "RESULTS.md", tmp_path / "w"
    model = f"model=qwen25_05b model.name_or_path={tiny_model} model.load_in_4bit=false"
    common = [
        "--dev-sets",
        "python_faq",
        "--embedder-overrides",
        f"embedder.name_or_path={tiny_embedder} embedder.query_prefix=''",
        "--seeds",
        "2",
        "--batch-size",
        "4",
        "--results",
        str(results),
        "--table",
        str(table),
    ]
    rc = dv.main(
        [
            *common,
            "--docs",
            "4",
            "--config",
            f"tiny={model} filters=none generation.max_new_tokens=12",
            "--variants",
            "again=filters=none",
            "--work",
            str(work),
            "--invocation",
            "t1",
            "--report",
        ]
    )
    assert rc == 0
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [x["config"]["name"] for x in lines] == ["tiny", "tiny+again"]
    for x in lines:
        assert x["workload"] == "data_value" and x["invocation"] == "t1"
        assert (x["dev_set"], x["docs"], x["queries"]) == ("python_faq", 4, 4)
        assert "error_line" not in x
        assert x["rows"]["train"] > 0 and x["slots"] == {"train": 3, "val": 1}
        assert x["train_pairs"] == x["rows"]["train"]
        assert all(in_unit(x[r]) for r in ("bm25", "base", "tuned"))
        assert [s["seed"] for s in x["tuned_seeds"]] == [0, 1]
        assert all(in_unit({k: s[k] for k in METRICS}) for s in x["tuned_seeds"])
        for k in METRICS:
            assert x["delta"][k] == pytest.approx(x["tuned"][k] - x["base"][k], abs=1e-3)
        assert {"date", "git_commit", "machine", "gpu", "versions", "seconds"} <= set(x)
        assert x["machine"]["cpus"] and x["seconds"]["total"] > 0
    assert lines[0]["config"]["overrides"][0] == "model=qwen25_05b"
    assert lines[1]["config"]["variant"] == ["filters=none"]
    assert "| python_faq (4 docs) | tiny+again |" in table.read_text()

    # a run dir made elsewhere: its dev set and its 4 documents come from its config.yaml
    gen = work / "python_faq" / "tiny" / "gen"
    assert dv.main([*common, "--seeds", "1", "--rows", f"gpu={gen}", "--work", str(work)]) == 0
    x = json.loads(results.read_text().splitlines()[-1])
    assert (x["config"]["name"], x["docs"], x["config"]["rows_dir"]) == ("gpu", 4, str(gen))
    assert in_unit(x["tuned"]) and x["bm25"] == lines[0]["bm25"]


def test_baselines_only_without_a_config(tiny_embedder: Path, tmp_path: Path) -> None:
    dv = bench()
    results = tmp_path / "results.jsonl"
    args = ["--dev-sets", "python_faq,curl_faq", "--docs", "5", "--results", str(results)]
    args += ["--embedder-overrides", f"embedder.name_or_path={tiny_embedder}"]
    assert dv.main(args) == 0
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [(x["dev_set"], x["config"]["name"]) for x in lines] == [
        ("python_faq", "baseline"),
        ("curl_faq", "baseline"),
    ]
    assert [x["unseen"] for x in lines] == [False, True]
    assert all(in_unit(x["bm25"]) and in_unit(x["base"]) and "tuned" not in x for x in lines)


def test_recall_counts_every_relevant_document() -> None:
    dv = bench()
    got = dv.scores([["a", "b"], ["c", "x"]], [{"b", "z"}, {"c"}])
    assert got["recall@1"] == 0.5  # query 1: none of 2 at rank 1; query 2: its one
    assert got["recall@10"] == 0.75  # query 1: b of {b, z}
    assert 0 < got["ndcg@10"] < 1

"""benchmarks/generation.py --tiny on a CPU: the script the GPU session runs, in CI size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "benchmarks/generation.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_way_and_new_token_count_is_a_line_and_a_failing_way_loses_nothing(
    tmp_path: Path,
) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    p = bench(
        "--tiny",
        "--ways",
        "hf_bf16,unsloth",  # no unsloth on this machine: that way fails in its own process
        "--hf-engine",
        "dynamic",
        "--new-tokens",
        "3,2",
        "--prompts",
        "4",
        "--ckpt",
        str(ckpt),
        "--out",
        str(out),
        "--table",
        str(tmp_path / "RESULTS.md"),
        "--invocation",
        "t1",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    text = (ckpt / "results.jsonl").read_text()
    lines = [json.loads(x) for x in text.splitlines()]
    assert (out / "results.jsonl").read_text() == text  # the copy for the GPU machine's $OUT
    assert {x["invocation"] for x in lines} == {"t1"}
    ok = [x for x in lines if x["way"] == "hf_bf16"]
    assert [x["new_tokens"] for x in ok] == [3, 2]  # one engine, both lengths
    for x in ok:
        assert x["out_tokens"] == 4 * x["new_tokens"] and x["tok_s"] > 0
        assert {"date", "gpu", "versions", "engine", "quantization", "batch", "prompts"} <= set(x)
        assert {"prompts_s", "peak_gb", "first_row_s", "load_s"} <= set(x)
    (failed,) = [x for x in lines if x["way"] == "unsloth"]
    assert "unsloth is not installed" in failed["error_line"]
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| hf_bf16 | dynamic | batches | bf16 | 8 | 4 |" in table
    assert "- unsloth: failed: ConfigError: model.backend: unsloth is not installed" in table
    again = bench("--report", "t1", "--results", str(ckpt / "results.jsonl"), "--table", "")
    assert again.returncode == 0 and again.stdout.strip() in table


@pytest.mark.parametrize("copies", [2])
def test_the_large_corpus_has_distinct_page_sized_files(tmp_path: Path, copies: int) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import make_corpus

    n = make_corpus.make(tmp_path, copies, 1)
    files = sorted(tmp_path.rglob("*.txt"))
    assert n == len(files) and {p.parent.name for p in files} == {"train", "val"}
    texts = [p.read_text() for p in files]
    assert len(set(texts)) == len(texts)  # no two chunks alike: distinct row keys
    assert all(len(t) < 2600 for t in texts)  # a page each: one chunk of the default chunking
    paras = [x for t in texts for x in t.split("\n\n") if x.strip() and not x.startswith("#")]
    assert all(x.startswith(("(0) ", "(1) ")) for x in paras)


def test_pipeline_workload_writes_rows_per_hour_per_run(tmp_path: Path) -> None:
    """--workload pipeline on the CPU: the continuous engine with and without prefix reuse
    through the pipeline's Generator, then the old static engine on the same loaded weights."""
    ckpt, table = tmp_path / "ckpt", tmp_path / "RESULTS.md"
    p = bench(
        "--workload",
        "pipeline",
        "--tiny",
        "--ways",
        "continuous:reuse+reuse_fifo+no_reuse,static",
        "--run-seconds",
        "0.5",
        "--batch",
        "4",
        "--chunks",
        "16",
        "--lengths",
        "2-4,3-5",
        "--ckpt",
        str(ckpt),
        "--table",
        str(table),
        "--invocation",
        "p1",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(x) for x in (ckpt / "results.jsonl").read_text().splitlines()]
    assert {x["invocation"] for x in lines} == {"p1"}
    reuse, fifo, no_reuse, static = lines
    for x in (reuse, fifo, no_reuse, static):
        assert x["workload"] == "pipeline" and x["rows"] > 0
        assert x["rows_h"] == round(x["rows"] / x["seconds"] * 3600)
        assert x["gpu_s_per_1k_rows"] == round(x["seconds"] / x["rows"] * 1000, 1)
        assert x["prompts_by_stage"]["answer"] == x["rows"]  # every row: question, then answer
        assert {"tok_s", "prompt_tok_s", "start_s", "warmup_s", "versions", "gpu"} <= set(x)
    assert (reuse["run"], fifo["run"], no_reuse["run"]) == ("reuse", "reuse_fifo", "no_reuse")
    assert reuse["engine"] == fifo["engine"] == no_reuse["engine"] == "continuous"
    assert reuse["cached_tokens"] > 0 and no_reuse["cached_tokens"] == 0
    # the feed of before (first come first served) on the same engine; no KV budget there
    assert fifo["prefix_reuse"] and fifo["kv_cache_tokens"] == 0 < fifo["most_in_flight"]
    # the old static engine ran on the same loaded weights, in the same process
    assert static["engine"] == "static" and static["load_shared"] and not static["prefix_reuse"]
    text = table.read_text()
    assert "| continuous | reuse | continuous | on |" in text
    assert "| static | no_reuse | static | off |" in text

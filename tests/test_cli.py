"""End to end through the CLI (`python run.py ...` in a subprocess) with the tiny real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli
from tests.helpers.broken_files import make_mixed_corpus

pytestmark = pytest.mark.slow


def model_args(tiny: Path, run_dir: Path) -> list[str]:
    # the tiny model is a chat model: the qwen25_05b config (chat format), as before the default
    # model became the base model gemma3_270m; filters=none: the random-weight model writes
    # noise that the quality gates would drop
    return [
        "model=qwen25_05b",
        f"model.name_or_path={tiny}",
        "model.load_in_4bit=false",
        "filters=none",
        f"hydra.run.dir={run_dir}",  # last: some tests leave it out
    ]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def mixed_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One full run over a folder of good and broken PDF/DOCX/TXT/MD files."""
    docs = tmp_path_factory.mktemp("docs")
    broken = make_mixed_corpus(docs)
    run_dir = tmp_path_factory.mktemp("run") / "r"
    train = ",".join(
        f"'{n}'"
        for n in [
            "Acting and Casting.pdf",
            "so_bad_its_good.docx",
            "film_critics.txt",
            "screenplay-structure.md",
            *sorted(broken),
        ]
    )
    cli(
        f"corpus.dir={docs}",
        f"corpus.train_files=[{train}]",
        "corpus.val_files=['The Sundance Decade.pdf']",
        "num_rows=8",
        "generation.max_new_tokens=24",
        "generation.batch_size=4",
        *model_args(tiny_model, run_dir),
    )
    return run_dir, broken


def test_every_output_is_written_and_loads_in_its_own_library(mixed_run) -> None:
    import jsonlines
    import openpyxl
    import pandas as pd
    from llama_index.finetuning import EmbeddingQAFinetuneDataset
    from omegaconf import OmegaConf

    run_dir, broken = mixed_run
    with jsonlines.open(run_dir / "train.jsonl") as r:
        train = list(r)
    assert 1 <= len(train) <= 8
    fields = {"id", "split", "chunk_id", "source", "doc", "question", "answer", "prompt", "model"}
    assert all(fields <= set(row) for row in train)
    assert all(row["split"] == "train" and row["prompt"] == "notebook" for row in train)

    # the JSONL is in finishing order, train.json in dataset order (chunk order, then q_index)
    as_json = json.loads((run_dir / "train.json").read_text())
    assert sorted(as_json, key=lambda r: r["id"]) == sorted(train, key=lambda r: r["id"])
    sheet = pd.read_excel(run_dir / "dataset.xlsx", sheet_name=None)
    assert list(sheet) == ["train", "val"]
    assert list(sheet["train"].columns[:4]) == ["id", "doc", "question", "answer"]
    assert len(sheet["train"]) == len(train)
    openpyxl.load_workbook(run_dir / "dataset.xlsx")

    for split in ("train", "val"):
        ds = EmbeddingQAFinetuneDataset.from_json(str(run_dir / f"{split}_dataset.json"))
        rows = jsonl(run_dir / f"{split}.jsonl")
        assert set(ds.queries) == {r["id"] for r in rows}
        assert all(ds.relevant_docs[r["id"]] == [r["chunk_id"]] for r in rows)
        assert all(cid in ds.corpus for ids in ds.relevant_docs.values() for cid in ids)
        corpus = json.loads((run_dir / f"{split}_corpus.json").read_text())
        assert corpus == ds.corpus
        queries = json.loads((run_dir / f"{split}_queries.json").read_text())
        assert queries == ds.queries
        assert json.loads((run_dir / f"{split}_relevant_docs.json").read_text()) == ds.relevant_docs

    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.num_rows == 8 and cfg.prompt.name == "notebook"

    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "complete"
    t = s["splits"]["train"]
    assert {f["file"] for f in t["files_skipped"]} == set(broken)
    assert t["files_read"] == 4
    assert t["chunks_total"] == t["chunks_kept"] + sum(t["chunks_rejected"].values())
    assert t["rows"] == len(train)
    assert t["slots"] == t["rows"] + sum(t["rejected_questions"].values()) + sum(
        t["rejected_answers"].values()
    )
    assert s["this_session"]["output_tokens"] > 0 and s["this_session"]["tokens_per_second"] > 0
    engine = s["this_session"]["engine"]  # what ran and why (a CPU: dynamic, batched)
    assert (engine["name"], engine["reason"], engine["feed"]) == (
        "dynamic",
        "auto: no CUDA GPU",
        "batches",
    )
    assert engine["load_in_4bit"] == {
        "setting": False,
        "chosen": False,
        "reason": "model.load_in_4bit=false",
    }
    assert {"python", "torch", "transformers", "llama-index-core", "synthgen", "git_commit"} <= set(
        s["versions"]
    )
    assert set(s["seconds"]) >= {
        "read",
        "chunk",
        "select",
        "load_model",
        "generate",
        "write",
        "total",
    }


def test_resume_after_a_cut_line_regenerates_only_what_was_lost(
    mixed_run, tiny_model: Path
) -> None:
    run_dir, _ = mixed_run
    before = jsonl(run_dir / "train.jsonl")
    raw = (run_dir / "train.jsonl").read_bytes()
    last = raw.rstrip(b"\n").rfind(b"\n") + 1
    (run_dir / "train.jsonl").write_bytes(raw[: last + 40])  # the last row cut mid-line
    from omegaconf import OmegaConf

    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")  # the command's own overrides
    cli(*overrides, f"hydra.run.dir={run_dir}")  # the same command again
    after = jsonl(run_dir / "train.jsonl")
    assert [r["id"] for r in after] == [r["id"] for r in before]  # same rows, none twice
    assert after == before  # greedy decoding: the lost row comes back identical
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["this_session"]["prompts"] == {"question": 0, "answer": 1}  # only the lost answer


def test_killed_run_keeps_its_rows_and_resumes(tiny_model: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    args = [
        "num_rows=30",
        "generation.batch_size=1",
        "generation.max_new_tokens=48",
        "generation.min_new_tokens=48",
        *model_args(tiny_model, run_dir),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows_file = run_dir / "train.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (rows_file.exists() and len(jsonl(rows_file)) >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"
    kept = jsonl(rows_file)
    assert len(kept) >= 3
    cli(*args)
    after = jsonl(rows_file)
    assert after[: len(kept)] == kept
    assert len({r["id"] for r in after}) == len(after) == 30


def test_dry_run_loads_no_weights_and_shows_the_prompts(tiny_model: Path, tmp_path: Path) -> None:
    p = cli("dry_run=true", "num_rows=3", *model_args(tiny_model, tmp_path / "d"))
    out = p.stdout
    assert "[train] files 11 read, 0 skipped" in out
    assert "prompts to run: 6 question" in out
    assert "--- first question prompt" in out and "--- first answer prompt" in out
    assert "<|im_start|>user\nContext information is below." in out  # chat template applied
    assert "loaded" not in p.stderr  # the backend never loaded weights
    assert not (tmp_path / "d" / "train.jsonl").exists()


def tree(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*"))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("corpus.train_files=[missing.pdf]", "corpus.train_files"),
        ("corpus.val_files=[]", "corpus.val_files"),
        ("chunking.min_chars=5000", "chunking.min_chars"),
        ("num_rows=0", "num_rows"),
        ("generation.batch_size=0", "generation.batch_size"),
        ("model.backend=vllm", "model.backend"),
        ("engine=vllm", "engine"),  # no vLLM, no CUDA here
        ("generation.engine=vllm", "generation.engine: moved; write engine=vllm"),  # old spelling
        ("generation.vllm_feed=waves", "generation.vllm_feed: moved; write engine.feed=waves"),
        ("prompt.question=no-placeholder", "prompt.question"),
        ("corpus.dir=/no/such/folder", "corpus.dir"),
        # Hydra's own errors, before any synthgen code runs
        ("prompt=critc", "prompt"),  # an unknown option: named with the group's options
        ("num_rows==3", "Error parsing override"),  # bad override syntax
        ("no_such_key=3", "Could not override 'no_such_key'"),
        ("prompt.question=${nope}", "prompt.question"),  # an interpolation that cannot resolve
    ],
)
def test_bad_input_stops_before_the_model_with_one_line_and_no_run_dir(
    override: str, key: str, tiny_model: Path, tmp_path: Path
) -> None:
    """Run where a user runs it (default hydra.run.dir, outputs/ under the working dir, an
    earlier run in it): exit 2, one line, and outputs/ left exactly as it was."""
    (tmp_path / "outputs" / "2026-01-01_00-00-00_movies_x").mkdir(parents=True)
    (tmp_path / "outputs" / "2026-01-01_00-00-00_movies_x" / "train.jsonl").write_text("{}\n")
    before = tree(tmp_path)
    args = [f"corpus.dir={REPO / 'data' / 'movies'}", *model_args(tiny_model, tmp_path)[:-1]]
    p = cli(*args, override, check=False, cwd=tmp_path)  # the override last: it wins
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"error: {key}"), p.stderr
    assert "Traceback" not in p.stderr
    assert tree(tmp_path) == before  # no run dir, nothing written


def test_a_model_that_fails_to_load_leaves_no_run_dir(tmp_path: Path) -> None:
    """The one failure that comes after config.yaml is written: the weights do not load."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # passes check(), fails in transformers
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "The film's editor cut the long take into a montage of close-ups and sound. " * 20
    for name in ("a.txt", "b.txt"):
        (docs / name).write_text(text)
    (tmp_path / "outputs").mkdir()
    p = cli(
        "model=qwen25_05b",
        f"model.name_or_path={broken}",
        f"corpus.dir={docs}",
        "corpus.train_files=[a.txt]",
        "corpus.val_files=[b.txt]",
        "keywords=none",
        "chunking=small",
        check=False,
        cwd=tmp_path,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().startswith(f"error: model.name_or_path: cannot load '{broken}'")
    assert list((tmp_path / "outputs").iterdir()) == []


def test_unreachable_model_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    # offline (HF_HUB_OFFLINE=1 in cli()), a hub id that is not cached cannot load
    # (the same with the hub unreachable instead: tests/test_cli_errors.py)
    p = cli(
        "model.name_or_path=nobody/no-such-model",
        "num_rows=2",
        f"hydra.run.dir={tmp_path / 'r'}",
        check=False,
    )
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(
        "error: model.name_or_path: cannot load 'nobody/no-such-model'"
    )
    assert "Traceback" not in p.stderr


def test_a_spawned_child_importing_run_py_does_not_check_the_lock(tmp_path: Path) -> None:
    """multiprocessing's spawn (vLLM's engine core) imports run.py as __mp_main__ with the
    parent's argv while the parent holds the run dir's lock: that import must not exit."""
    from synthgen.rundir.runlock import held

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with held(run_dir):
        code = (
            f"import runpy, sys; sys.argv = ['run.py', 'hydra.run.dir={run_dir}']; "
            "runpy.run_path('run.py', run_name='__mp_main__'); print('imported')"
        )
        p = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert p.returncode == 0 and "imported" in p.stdout, p.stderr
        main = subprocess.run(
            [sys.executable, "run.py", f"hydra.run.dir={run_dir}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert main.returncode == 2 and "in use" in main.stderr  # the main process still refuses


def test_a_failed_first_command_leaves_no_outputs_folder(tmp_path: Path) -> None:
    """On a fresh working dir the failed command's outputs/ goes with its run dir."""
    p = cli("num_rows=0", check=False, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("error: num_rows")
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_job_whose_run_dir_is_in_use_is_left_alone_and_fails_the_sweep(
    tmp_path: Path,
) -> None:
    """-m: a job whose run dir another process holds does not run and writes nothing there;
    the other jobs run, and the sweep's exit code says one did not."""
    from synthgen.rundir.runlock import held

    sweep = tmp_path / "s"
    taken = sweep / "num_rows=1"
    with held(taken):
        p = cli("-m", "task=prepare", "num_rows=1,2", f"hydra.sweep.dir={sweep}", check=False)
    assert p.returncode == 1, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2, p.stderr
    assert errors[0].startswith(f"error: run dir {taken} is in use: locked by pid {os.getpid()} ")
    assert errors[1] == (
        "error: 1 job(s) found their run dir in use by another process and did not run "
        f"({errors[0].removeprefix('error: ')})"
    )
    assert not (taken / "summary.json").exists()  # left alone
    assert json.loads((sweep / "num_rows=2" / "summary.json").read_text())["status"] == "complete"

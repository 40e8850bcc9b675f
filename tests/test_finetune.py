"""task=finetune and task=evaluate end to end through the CLI, on a hand-written Q/A run dir
with a tiny random BERT built locally; and every bad input as a one-line error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from synthgen.errors import SynthgenError
from synthgen.generate import pipeline
from tests.conftest import cli, compose
from tests.helpers.qa_run import make_qa_run


def cli_unchecked(*args: str) -> subprocess.CompletedProcess:
    return cli(*args, check=False, TOKENIZERS_PARALLELISM="false")


# the fixture's training settings; the resume test must repeat them exactly
TRAINING = (
    "finetune.epochs=2",
    "finetune.batch_size=4",
    "finetune.lr=1e-3",
    "finetune.hard_negatives=2",
)
METRICS = ("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10")


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_qa_run(tmp_path_factory.mktemp("qa") / "run")


def embedder_args(tiny: Path) -> list[str]:
    return [f"embedder.name_or_path={tiny}", "embedder.query_prefix='query: '"]


@pytest.fixture(scope="module")
def ft(qa: Path, tiny_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("ft") / "run"
    p = cli_unchecked(
        "task=finetune",
        f"finetune.data={qa}",
        *embedder_args(tiny_embedder),
        *TRAINING,
        f"hydra.run.dir={run_dir}",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_finetune_writes_model_checkpoints_and_before_after_eval(
    ft: Path, tiny_embedder: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    ev = json.loads((ft / "eval.json").read_text())
    assert ev["split"] == "val" and ev["queries"] == 6 and ev["corpus_chunks"] == 5
    for key in ("bm25", "base", "tuned"):
        for m in METRICS:
            assert 0.0 <= ev[key][m] <= 1.0, (key, m)
    assert ev["delta"]["ndcg@10"] == pytest.approx(ev["tuned"]["ndcg@10"] - ev["base"]["ndcg@10"])
    assert ev["base"]["check_max_diff"] < 1e-9 and ev["tuned"]["check_max_diff"] < 1e-9
    md = (ft / "eval.md").read_text()
    assert "| BM25 |" in md and "| base (" in md and "| tuned (" in md
    assert (ft / "eval.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (ft / "checkpoints").iterdir())  # one per epoch, kept <= 2
    for name in ("base", "tuned"):
        assert (ft / "predictions" / name / "predictions.jsonl").stat().st_size > 0

    summary = json.loads((ft / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["train"]["pairs"] == 10
    assert summary["train"]["steps"] > 0 and summary["train"]["losses"]
    assert summary["eval"]["tuned"]["ndcg@10"] == ev["tuned"]["ndcg@10"]

    # the tuned model is a plain sentence-transformers folder, the query prefix stored with it
    tuned = SentenceTransformer(str(ft / "model"), device="cpu")
    base = SentenceTransformer(str(tiny_embedder), device="cpu")
    assert tuned.prompts["query"] == "query: "
    text = ["The composer wrote the score before a single frame was shot."]
    assert not (tuned.encode(text) == base.encode(text)).all()  # training changed the weights


@pytest.mark.slow
def test_hard_negatives_never_the_positive_and_guard_counted(ft: Path, qa: Path) -> None:
    corpus = json.loads((qa / "train_corpus.json").read_text())
    rows = [json.loads(x) for x in (ft / "negatives.jsonl").read_text().splitlines()]
    assert len(rows) == 10
    for r in rows:
        assert r["chunk_id"] not in r["negatives"]
        pos = corpus[r["chunk_id"]]
        assert all(corpus[n] != pos for n in r["negatives"])
    hn = json.loads((ft / "summary.json").read_text())["hard_negatives"]
    # two questions on camera.md, whose text camera_copy.md repeats under another chunk id
    assert hn["removed"]["identical"] == 2
    assert hn["removed_by_guard"] == sum(hn["removed"].values()) >= 2
    assert hn["per_question"] == 2 and hn["questions"] == 10


@pytest.mark.slow
def test_evaluate_task_gives_the_same_numbers(
    ft: Path, qa: Path, tiny_embedder: Path, tmp_path: Path
) -> None:
    p = cli_unchecked(
        "task=evaluate",
        f"evaluate.data={qa}",
        *embedder_args(tiny_embedder),
        f"evaluate.tuned={ft}",  # a finetune run dir: its model/ is used
        f"hydra.run.dir={tmp_path / 'ev'}",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    again = json.loads((tmp_path / "ev" / "eval.json").read_text())
    first = json.loads((ft / "eval.json").read_text())
    for key in ("bm25", "base", "tuned"):
        for m in METRICS:
            assert again[key][m] == pytest.approx(first[key][m]), (key, m)


@pytest.mark.slow
def test_resume_with_another_config_is_refused(ft: Path, qa: Path, tiny_embedder: Path) -> None:
    p = cli_unchecked(
        "task=finetune",
        f"finetune.data={qa}",
        *embedder_args(tiny_embedder),
        "finetune.epochs=2",
        "finetune.batch_size=4",
        "finetune.lr=5e-4",
        "finetune.hard_negatives=2",
        f"hydra.run.dir={ft}",
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("error: finetune.resume:")
    assert "finetune.lr" in p.stderr


# --- bad input: one line naming the key, nothing loaded --------------------------------------


def broken_runs(qa: Path, root: Path) -> dict[str, Path]:
    empty = root / "empty"
    empty.mkdir()
    no_rows = root / "no_rows"
    shutil.copytree(qa, no_rows)
    (no_rows / "train.jsonl").write_text("")
    no_val = root / "no_val"
    shutil.copytree(qa, no_val)
    (no_val / "val.jsonl").unlink()
    unfinished = root / "unfinished"
    shutil.copytree(qa, unfinished)
    (unfinished / "val_corpus.json").unlink()
    return {"empty": empty, "no_rows": no_rows, "no_val": no_val, "unfinished": unfinished}


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        ("empty", [], "finetune.data: .* has no train.jsonl"),
        ("no_rows", [], "finetune.data: .*train.jsonl holds no rows"),
        ("no_val", [], "finetune.data: .* has no val.jsonl"),
        ("unfinished", [], "finetune.data: .* has no val_corpus.json"),
        ("missing", [], "finetune.data: run dir .* not found"),
        ("none", [], "finetune.data: required"),
        ("ok", ["embedder.name_or_path=not a model"], "embedder.name_or_path: .*neither"),
        ("ok", ["embedder.name_or_path=/no/such/dir"], "embedder.name_or_path: folder"),
        pytest.param(  # the first to import sentence-transformers' loading: ~10-25 s
            "ok",
            ["embedder.name_or_path=nobody/no-such-model"],
            "embedder.name_or_path: cannot",
            marks=pytest.mark.slow,
        ),
        ("ok", ["finetune.loss=triplet"], "finetune.loss: must be one of"),
        ("ok", ["finetune.batch_size=1"], "finetune.batch_size: must be >= 2"),
        ("ok", ["finetune.lora_r=8"], "finetune.lora_r: LoRA"),
        ("ok", ["finetune.lr=0"], "finetune.lr: must be > 0"),
        ("ok", ["finetune.hard_negatives=-1"], "finetune.hard_negatives: must be an integer"),
        ("ok", ["finetune.backend=unsloth"], "finetune.backend: unsloth"),
        ("ok", ["finetune.precision=fp8"], "finetune.precision: must be one of"),
        ("same_dir", [], "hydra.run.dir: must differ from finetune.data"),
    ],
)
def test_finetune_bad_input_is_one_line(
    case: str, overrides: list[str], message: str, qa: Path, tmp_path: Path
) -> None:
    import re

    runs = broken_runs(qa, tmp_path)
    data = {"ok": qa, "same_dir": qa, "missing": tmp_path / "nope", "none": None}.get(case)
    data = runs.get(case, data)
    args = ["task=finetune", *overrides]
    if data is not None:
        args.append(f"finetune.data={data}")
    run_dir = qa if case == "same_dir" else tmp_path / "out"
    with pytest.raises(SynthgenError) as e:
        pipeline.run(compose(args), run_dir=run_dir)
    assert re.match(message, str(e.value)), str(e.value)
    assert "\n" not in str(e.value)
    assert not (run_dir / "model").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["evaluate.split=test"], "evaluate.split: must be"),
        (["evaluate.tuned=/no/such/model"], "evaluate.tuned: .* not a sentence-transformers"),
        (["embedder.name_or_path=not a model"], "embedder.name_or_path:"),
    ],
)
def test_evaluate_bad_input_is_one_line(
    overrides: list[str], message: str, qa: Path, tmp_path: Path
) -> None:
    import re

    with pytest.raises(SynthgenError) as e:
        pipeline.run(compose(["task=evaluate", f"evaluate.data={qa}", *overrides]), tmp_path)
    assert re.match(message, str(e.value)), str(e.value)


@pytest.mark.slow
def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    p = cli_unchecked(
        "task=evaluate", f"evaluate.data={tmp_path}", f"hydra.run.dir={tmp_path / 'x'}"
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"error: evaluate.data: {tmp_path} has no val.jsonl (not a run dir of task=generate?)"
    ]


@pytest.mark.slow
def test_same_config_resumes_from_the_last_checkpoint(
    ft: Path, qa: Path, tiny_embedder: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "ft"
    shutil.copytree(ft, run_dir)
    cfg = compose(
        [
            "task=finetune",
            f"finetune.data={qa}",
            *embedder_args(tiny_embedder),
            *TRAINING,
            "finetune.evaluate=false",  # not a training key: resuming with it changed is fine
        ]
    )
    summary = pipeline.run(cfg, run_dir=run_dir)
    first = json.loads((ft / "summary.json").read_text())["train"]
    assert summary["train"]["resumed_from"].endswith(f"checkpoint-{first['steps']}")
    assert summary["train"]["steps"] == first["steps"]  # nothing left to train
    assert summary["eval"] is None


@pytest.mark.slow
def test_cached_mnrl_trains_and_saves_without_eval(
    qa: Path, tiny_embedder: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    cfg = compose(
        [
            "task=finetune",
            f"finetune.data={qa}",
            f"embedder.name_or_path={tiny_embedder}",
            "embedder.query_prefix=''",
            "finetune.loss=cached_mnrl",
            "finetune.mini_batch_size=2",
            "finetune.batch_size=4",
            "finetune.max_steps=2",
            "finetune.evaluate=false",
        ]
    )
    summary = pipeline.run(cfg, run_dir=tmp_path)
    assert summary["loss"] == "cached_mnrl" and summary["train"]["steps"] == 2
    assert summary["eval"] is None and not (tmp_path / "eval.json").exists()
    model = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert "query" not in model.prompts or model.prompts["query"] == ""


def test_warmup_leaves_a_step_that_trains() -> None:
    from synthgen.embed.finetune import warmup_steps

    assert warmup_steps(0.1, 1) == 0  # one step: no warmup, or nothing would be learned
    assert warmup_steps(0.1, 2) == 1
    assert warmup_steps(0.1, 100) == 10
    assert warmup_steps(5, 3) == 2
    assert warmup_steps(0.0, 10) == 0

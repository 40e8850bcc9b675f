"""Sweeps and their comparison.

A real multirun (`python run.py -m prompt=notebook,factoid`) with the tiny model; every number
of the report is recomputed here from the runs' own files, with code written for the test.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from synthgen import compare, tasks
from synthgen.errors import ConfigError
from synthgen.rundir import discovery
from synthgen.rundir.writing import excel_safe
from tests.conftest import compose
from tests.test_cli import cli, jsonl

SPLITS = ("train", "val")


# --- the sweep ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tiny_model: Path, tiny_embedder: Path, tmp_path_factory: pytest.TempPathFactory):
    sweep_dir = tmp_path_factory.mktemp("sweep") / "s"
    p = cli(
        "-m",
        "prompt=notebook,factoid",
        "model=qwen25_05b",  # a chat model's config for the tiny chat model
        f"model.name_or_path={tiny_model}",
        "num_rows=4",
        "generation.max_new_tokens=16",
        f"hydra.sweep.dir={sweep_dir}",
        f"compare.embedder={tiny_embedder}",
        "filters=none",  # the random-weight model writes noise that the quality gates would drop
    )
    return sweep_dir, p


def run_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(sweep_dir.iterdir()) if (p / "summary.json").exists()}


@pytest.mark.slow
def test_sweep_writes_one_complete_run_dir_per_prompt_named_by_its_override(swept) -> None:
    sweep_dir, _ = swept
    runs = run_dirs(sweep_dir)
    # only the swept key names the dirs: the constant overrides (model path, num_rows) do not
    assert list(runs) == ["prompt=factoid", "prompt=notebook"]
    for name, d in runs.items():
        s = json.loads((d / "summary.json").read_text())
        assert s["status"] == "complete" and s["prompt"] == name.split("=")[1]
        assert all((d / f).exists() for f in s["files"])
        assert (d / ".hydra" / "overrides.yaml").exists() and (d / "run.log").exists()
        assert {r["prompt"] for s_ in SPLITS for r in jsonl(d / f"{s_}.jsonl")} == {s["prompt"]}


# --- independent recomputation -----------------------------------------------------------------


def toks(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def expected(run: Path, embedder_path: Path, span: int = 8) -> dict:
    """The report's numbers, from the run's JSONL and corpus files."""
    rows = {s: jsonl(run / f"{s}.jsonl") for s in SPLITS}
    rejected = jsonl(run / "rejected.jsonl")
    corpus = {s: json.loads((run / f"{s}_corpus.json").read_text()) for s in SPLITS}
    every = rows["train"] + rows["val"]
    slots = len(every) + len(rejected)  # a finished slot is a row or a reject
    reasons = Counter(r["reason"] for r in rejected)
    qs = [r["question"] for r in every]

    def distinct(n: int) -> float:
        grams = [tuple(t[i : i + n]) for q in qs for t in [toks(q)] for i in range(len(t) - n + 1)]
        return len(set(grams)) / len(grams)

    def copies(q: str, doc: str) -> bool:
        qt, dt = toks(q), " " + " ".join(toks(doc)) + " "
        return any(" " + " ".join(qt[i : i + span]) + " " in dt for i in range(len(qt) - span + 1))

    firsts = [tuple(toks(q)[:3]) for q in qs if len(toks(q)) >= 3]
    first_counts = Counter(firsts)
    words = list(OmegaConf.load(run / "config.yaml").keywords.words)
    asked = {(r["split"], r["chunk_id"]) for r in every + rejected}
    chunk_text = [corpus[s][c] for s, c in asked]
    out = {
        "rows_train": len(rows["train"]),
        "rows_val": len(rows["val"]),
        "reject_rate": len(rejected) / slots,
        "duplicate_rate": reasons["duplicate"] / slots,
        "parse_failure_rate": sum(
            reasons[x] for x in ("empty", "no_question_mark", "missing_from_list")
        )
        / slots,
        "distinct_2": distinct(2),
        "distinct_3": distinct(3),
        "copy_rate": sum(copies(r["question"], r["doc"]) for r in every) / len(every),
        "same_start_rate": sum(first_counts[f] > 1 for f in firsts) / len(qs),
        # the film keywords match as substrings, case-sensitive (the notebook's test)
        "kw_chunks": sum(any(w in t for t in chunk_text) for w in words) / len(words),
        "kw_questions": sum(any(w in q for q in qs) for w in words) / len(words),
    }
    for who, key in (("q", "question"), ("a", "answer")):
        v = [r["tokens"][key] for r in every]
        out[f"{who}_tokens_mean"] = sum(v) / len(v)
        out[f"{who}_tokens_p50"] = float(np.percentile(v, 50))
        out[f"{who}_tokens_p90"] = float(np.percentile(v, 90))
    summary = json.loads((run / "summary.json").read_text())
    out["tokens_per_second"] = summary["generation"]["tokens_per_second"]
    out["wall_seconds"] = summary["seconds"]["total"]

    # retrieval: every val question against ALL val chunks, its own chunk relevant
    ids, texts = list(corpus["val"]), list(corpus["val"].values())
    queries = [r["question"] for r in rows["val"]]
    gold = [ids.index(r["chunk_id"]) for r in rows["val"]]
    from synthgen.embed.retrieval import rank_bm25

    bm = rank_bm25(queries, ids, texts, k=10)
    out["bm25_hit@1"] = np.mean([r[:1] == [ids[g]] for r, g in zip(bm, gold, strict=True)])
    out["bm25_mrr@10"] = np.mean(
        [1 / (r.index(ids[g]) + 1) if ids[g] in r else 0 for r, g in zip(bm, gold, strict=True)]
    )
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embedder_path), device="cpu")
    qe = model.encode(queries, normalize_embeddings=True)
    de = model.encode(texts, normalize_embeddings=True)
    order = np.argsort(-(qe @ de.T), axis=1, kind="stable")
    ranks = [int(np.where(row == g)[0][0]) for row, g in zip(order, gold, strict=True)]
    out["embedding_hit@1"] = np.mean([r < 1 for r in ranks])
    out["embedding_hit@5"] = np.mean([r < 5 for r in ranks])
    out["embedding_mrr@10"] = np.mean([1 / (r + 1) if r < 10 else 0 for r in ranks])
    return out


@pytest.mark.slow
def test_comparison_numbers_match_the_runs_files(swept, tiny_embedder: Path) -> None:
    sweep_dir, _ = swept
    runs = run_dirs(sweep_dir)
    sheet = pd.read_excel(sweep_dir / "compare.xlsx", sheet_name=None)
    metrics = sheet["metrics"].set_index("run")
    assert list(metrics.index) == list(runs)  # labels: the override that differs
    for label, d in runs.items():
        want = expected(d, tiny_embedder)
        got = metrics.loc[label]
        assert got["status"] == "complete"
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-6), f"{label} {key}"
        assert got["val_chunks"] == len(json.loads((d / "val_corpus.json").read_text()))

    # only the config keys that differ, one column per run
    cfg = sheet["config"].set_index("key")
    assert list(cfg.columns) == list(runs)
    assert cfg.loc["prompt.name"].tolist() == ["factoid", "notebook"]
    assert "prompt.question" in cfg.index
    assert not {"num_rows", "model.name_or_path", "compare.embedder"} & set(cfg.index)

    # side by side: the same chunk and question index, each run's own question and answer
    ex = sheet["examples"]
    assert len(ex) == 8  # 4 train + 4 val chunks, shared by both runs
    for _, row in ex.iterrows():
        for label, d in runs.items():
            own = {(r["chunk_id"], r["q_index"]): r for r in jsonl(d / f"{row['split']}.jsonl")}[
                (row["chunk_id"], row["q_index"])
            ]
            # the sheet holds the text as dataset.xlsx does (control characters removed)
            assert row[f"{label}: question"] == excel_safe(own["question"])
            assert row[f"{label}: answer"] == excel_safe(own["answer"])
    exact = json.loads((sweep_dir / "compare.json").read_text())["examples"]
    assert [(e["chunk_id"], e["q_index"]) for e in exact] == list(
        zip(ex["chunk_id"], ex["q_index"], strict=True)
    )
    for e in exact:
        for label, d in runs.items():
            rows = jsonl(d / f"{e['split']}.jsonl")
            own = next(
                r for r in rows if (r["chunk_id"], r["q_index"]) == (e["chunk_id"], e["q_index"])
            )
            assert e["runs"][label] == {"question": own["question"], "answer": own["answer"]}

    # per split counts agree with the files too
    splits = sheet["splits"]
    for label, d in runs.items():
        for s in SPLITS:
            line = splits[(splits.run == label) & (splits.split == s)].iloc[0]
            assert line["rows"] == len(jsonl(d / f"{s}.jsonl"))

    # the headline sentence names the run with the lowest embedding MRR@10
    by_mrr = {label: expected(d, tiny_embedder)["embedding_mrr@10"] for label, d in runs.items()}
    low = min(by_mrr.values())
    md = (sweep_dir / "compare.md").read_text()
    hard = next(line for line in md.splitlines() if line.startswith("- Hardest questions"))
    assert all((label in hard.split("(")[2]) == (v == low) for label, v in by_mrr.items()), hard


@pytest.mark.slow
def test_report_files_carry_the_plots_and_every_run(swept) -> None:
    sweep_dir, _ = swept
    pngs = sorted((sweep_dir / "compare_plots").glob("*.png"))
    assert {"embedding_mrr_10.png", "bm25_hit_1.png", "question_length_hist.png"} <= {
        p.name for p in pngs
    }
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = (sweep_dir / "compare.md").read_text()
    html = (sweep_dir / "compare.html").read_text()
    for p in pngs:
        assert f"(compare_plots/{p.name})" in md
    assert html.count('src="data:image/png;base64,') == len(pngs)  # one file to send around
    for label in ("prompt=factoid", "prompt=notebook"):
        assert label in md and label in html
    data = json.loads((sweep_dir / "compare.json").read_text())
    assert data["embedder"].startswith("embedding retrieval with")
    assert {r["method"] for r in data["retrieval"]} == {"bm25", "embedding"}


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tiny_model: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    p = cli(
        "-m",
        "num_rows=0,2",  # the first run fails its config check, the second must still run
        "model=qwen25_05b",  # a chat model's config for the tiny chat model
        f"model.name_or_path={tiny_model}",
        "generation.max_new_tokens=8",
        f"hydra.sweep.dir={sweep_dir}",
        "compare.embedder=null",
        "filters=none",
        check=False,
    )
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr + p.stdout
    assert "error: 1 of 2 runs failed (num_rows=0)" in p.stderr
    failed = json.loads((sweep_dir / "num_rows=0" / "summary.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"] == "num_rows: must be an integer >= 1, got 0"
    assert (sweep_dir / "num_rows=0" / "config.yaml").exists()
    ok = json.loads((sweep_dir / "num_rows=2" / "summary.json").read_text())
    assert ok["status"] == "complete" and ok["rows"] == {"train": 2, "val": 2}
    report = json.loads((sweep_dir / "compare.json").read_text())
    assert [(m["run"], m["status"]) for m in report["metrics"]] == [
        ("num_rows=0", "failed"),
        ("num_rows=2", "complete"),
    ]
    assert "num_rows: must be an integer >= 1, got 0" in (sweep_dir / "compare.md").read_text()
    assert report["embedder"] == "embedding retrieval skipped (compare.embedder=null)"


@pytest.mark.slow
def test_compare_task_reports_an_embedder_that_cannot_load(swept, tmp_path: Path) -> None:
    sweep_dir, _ = swept
    out = tmp_path / "report"
    p = cli(
        "task=compare",
        f"compare.runs=[{sweep_dir}]",
        "compare.embedder=no-such-org/no-such-model",  # offline (HF_HUB_OFFLINE=1): cannot load
        f"compare.out={out}",
        f"hydra.run.dir={tmp_path / 'h'}",
    )
    assert str(out / "compare.html") in p.stdout
    data = json.loads((out / "compare.json").read_text())
    assert "no-such-org/no-such-model could not be loaded" in data["embedder"]
    assert {r["method"] for r in data["retrieval"]} == {"bm25"}  # the rest is all there
    assert all(m["distinct_2"] is not None for m in data["metrics"])
    assert "could not be loaded" in (out / "compare.md").read_text()
    assert "could not be loaded" in (out / "compare.html").read_text()


def test_record_failure_keeps_the_earlier_sessions(tmp_path: Path) -> None:
    old = {"status": "complete", "rows": {"train": 3}, "generation": {"sessions": [{"a": 1}]}}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    tasks.record_failure(compose(), RuntimeError("CUDA out of\nmemory"), tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["status"] == "failed" and s["previous_status"] == "complete"
    assert s["error"] == "RuntimeError: CUDA out of memory"  # one line
    assert s["generation"] == old["generation"] and s["rows"] == old["rows"]
    assert (tmp_path / "config.yaml").exists()


# --- run discovery and naming ------------------------------------------------------------------


def fake_run(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "summary.json").write_text('{"status": "complete"}')
    (d / "config.yaml").write_text("prompt: {name: x}\n")
    return d


def test_find_runs_expands_sweeps_and_keeps_the_given_order(tmp_path: Path) -> None:
    b = fake_run(tmp_path / "sweep" / "prompt=b")
    a = fake_run(tmp_path / "sweep" / "prompt=a")
    nested = fake_run(tmp_path / "sweep" / "model.name_or_path=" / "tmp_x")
    fake_run(a / "inner")  # inside a run dir: not a run of the sweep
    (tmp_path / "sweep" / ".hydra").mkdir()
    single = fake_run(tmp_path / "other")
    assert compare.find_runs([single, tmp_path / "sweep", a]) == [single, nested, a, b]
    assert compare.find_runs([a]) == [a]
    with pytest.raises(ConfigError, match="compare.runs: folder .* not found"):
        compare.find_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="compare.runs: no run dir"):
        compare.find_runs([tmp_path / "empty"])
    assert compare.find_runs([tmp_path / "missing", tmp_path / "empty"], missing_ok=True) == []


def test_labels_drop_what_all_runs_share(tmp_path: Path) -> None:
    runs = [
        compare.Run(tmp_path / "s" / "model=a,prompt=x", {}, {}),
        compare.Run(tmp_path / "s" / "model=a,prompt=y", {}, {}),
    ]
    compare.assign_labels(runs)
    assert [r.label for r in runs] == ["prompt=x", "prompt=y"]
    twins = [compare.Run(tmp_path / d / "r", {}, {}) for d in ("s1", "s2")]
    compare.assign_labels(twins)
    assert [r.label for r in twins] == ["s1/r", "s2/r"]


def test_run_dir_names(monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = ["prompt=critic", "model.name_or_path=/models/m", "num_rows=4", "model=qwen25_7b"]
    named = discovery.job_dirname(overrides, swept={"prompt", "model"})
    assert named == "model=qwen25_7b,prompt=critic"
    # no sweep info: every override, path-safe
    name = discovery.job_dirname(overrides, exclude=["num_rows"])
    assert name == "model.name_or_path=_models_m,model=qwen25_7b,prompt=critic"
    long = [f"prompt.question={'x' * 300}"]
    a, b = discovery.job_dirname(long), discovery.job_dirname([f"prompt.question={'x' * 301}"])
    assert len(a.encode()) <= 200 and a != b and "/" not in a
    assert discovery.job_dirname([]) == "default"


# --- the measures ------------------------------------------------------------------------------


def test_text_measures_on_known_cases() -> None:
    qs = ["What is the film about?", "What is the score?", "Who shot it?"]
    # word pairs: 4 + 3 + 2 = 9, of which "what is" and "is the" repeat once each -> 7 distinct
    assert compare.distinct_n(qs, 2) == pytest.approx(7 / 9)
    assert compare.distinct_n(["one two"], 3) is None
    chunk = "The director framed every scene with a handheld camera, close to the actors."
    assert compare.copies_span("Why was every scene with a handheld camera framed?", chunk, 6)
    assert not compare.copies_span("Why was every scene with a handheld lens framed?", chunk, 6)
    shared, top = compare.openings(qs)
    assert shared == pytest.approx(2 / 3) and top == "what is the (67%)"
    assert compare.openings(["a b c", "d e f"]) == (0.0, "none repeats")
    assert compare.keyword_coverage(["cut", "score"], "word", ["a cute scene", "the score"]) == 0.5
    assert compare.keyword_coverage(["cut", "score"], "substring", ["a cute scene"]) == 0.5
    assert compare.keyword_coverage([], "word", ["x"]) is None
    assert compare.length_stats([1, 2, 3, 4]) == {
        "mean": 2.5,
        "p50": 2.5,
        "p90": pytest.approx(3.7),
    }


def test_bm25_difficulty_of_questions_identical_to_their_chunk(tmp_path: Path) -> None:
    """Hand-made val split: each question is its chunk's text, so BM25 finds it first."""
    corpus = {
        "a": "The director framed every scene with a handheld camera.",
        "b": "Film music guides the audience through the emotional arc.",
        "c": "Casting an unknown actress changed the tone of the picture.",
    }
    rows = [{"question": t, "chunk_id": c} for c, t in corpus.items()]
    run = compare.Run(tmp_path, {"status": "complete"}, {}, {"val": rows}, [], {"val": corpus})
    run.label = "r"
    scores, note = compare.retrieval_scores([run], compare.Options(embedder=None))
    assert note.endswith("skipped (compare.embedder=null)")
    (bm25,) = scores
    assert bm25["hit@1"] == 1.0 and bm25["mrr@10"] == 1.0
    assert bm25["queries"] == 3 and bm25["val_chunks"] == 3


def test_cached_encoder_ranks_like_the_model_and_embeds_each_text_once(tiny_embedder) -> None:
    from sentence_transformers import SentenceTransformer

    from synthgen.embed.retrieval import rank_embeddings

    model = SentenceTransformer(str(tiny_embedder), device="cpu")
    calls: list[int] = []

    class Spy:
        def encode(self, texts, **kw):
            calls.append(len(texts))
            return model.encode(texts, **kw)

    cached = compare.CachedEncoder(Spy())
    ids = ["a", "b", "c"]
    docs = ["a camera shot", "the film score", "an actress cast"]
    qs = ["camera", "score music", "cast"]
    plain = rank_embeddings(model, qs, ids, docs, k=3)
    assert rank_embeddings(cached, qs, ids, docs, k=3) == plain
    assert rank_embeddings(cached, qs[:1], ids, docs, k=3) == plain[:1]
    assert calls == [3, 3]  # the second ranking needed no new embedding


def test_compare_task_needs_runs(tmp_path: Path) -> None:
    from synthgen.generate import pipeline

    with pytest.raises(ConfigError, match="^compare.runs: give run dirs"):
        pipeline.run(compose(["task=compare"]), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="^compare.copy_span: must be an integer >= 2"):
        compare.Options.from_cfg({"copy_span": 1})


def test_run_metrics_on_a_hand_made_run(tmp_path: Path) -> None:
    """Rates are per slot; a list prompt's question tokens are shared by its questions."""

    def row(split: str, cid: str, q: str, qt: int, at: int, i: int = 0) -> dict:
        return {
            "split": split,
            "chunk_id": cid,
            "q_index": i,
            "question": q,
            "answer": "a",
            "doc": "the camera moves",
            "tokens": {"question": qt, "answer": at},
        }

    rows = {
        "train": [row("train", "c1", "Why does the camera move?", 30, 10, 0)],
        "val": [
            row("val", "c2", "Who edits?", 30, 20, 0),
            row("val", "c2", "Who edits?!", 30, 40, 1),
        ],
    }
    rejected = [
        {"split": "train", "chunk_id": "c1", "stage": "question", "reason": r, "q_index": i}
        for i, r in ((1, "duplicate"), (2, "missing_from_list"))
    ] + [{"split": "val", "chunk_id": "c2", "stage": "answer", "reason": "empty", "q_index": 2}]
    summary = {"status": "complete", "splits": {"train": {"slots": 3}, "val": {"slots": 3}}}
    config = {
        "prompt.question": "Ask {num_questions} questions about {context}",
        "prompt.questions_per_chunk": 3,
        "keywords.words": ["camera", "editing"],
        "keywords.match": "word",
    }
    corpus = {"train": {"c1": "the camera moves"}, "val": {"c2": "cuts"}}
    run = compare.Run(tmp_path, summary, config, rows, rejected, corpus)
    m = compare.run_metrics(run, compare.Options())
    assert (m["rows_train"], m["rows_val"], m["slots"]) == (1, 2, 6)
    assert m["reject_rate"] == pytest.approx(3 / 6)
    assert m["duplicate_rate"] == pytest.approx(1 / 6)
    assert m["parse_failure_rate"] == pytest.approx(2 / 6)  # missing_from_list + empty answer
    assert m["q_tokens_mean"] == 10.0  # 30 tokens per list call / 3 questions
    assert m["a_tokens_mean"] == pytest.approx(70 / 3) and m["a_tokens_p50"] == 20.0
    assert m["kw_chunks"] == 0.5 and m["kw_questions"] == 0.5  # "camera" yes, "editing" no
    assert m["same_start_rate"] == 0.0  # "who edits" has only two words


@pytest.mark.slow
def test_a_sweep_over_gate_sets_shows_reject_shares_side_by_side(tmp_path: Path) -> None:
    """`-m filters=none,default`: the report's 'Rejects by reason', per run, from the files."""
    from synthgen.gates import filters

    sweep_dir = tmp_path / "s"
    cli(
        "-m",
        "filters=none,default",
        "model._target_=tests.helpers.fake_backend.BadBackend",  # echoes, meta references, refusals
        "num_rows=12",
        "compare.embedder=null",
        f"hydra.sweep.dir={sweep_dir}",
    )
    data = json.loads((sweep_dir / "compare.json").read_text())
    assert data["runs"] == ["filters=default", "filters=none"]
    shares = {r["reason"]: r for r in data["rejects"]}
    for label in data["runs"]:
        d = sweep_dir / label
        rejected = jsonl(d / "rejected.jsonl")
        slots = len(rejected) + sum(len(jsonl(d / f"{s}.jsonl")) for s in SPLITS)
        got = Counter(f"{r['stage']}:{r['reason']}" for r in rejected)
        for reason, row in shares.items():
            assert row[label] == pytest.approx(got[reason] / slots), (label, reason)
        m = next(x for x in data["metrics"] if x["run"] == label)
        gated = sum(1 for r in rejected if r["reason"] in filters.REASONS)
        assert m["gate_reject_rate"] == pytest.approx(gated / slots)
    assert shares["question:prompt_echo"]["gate"] and not shares["question:duplicate"]["gate"]
    assert shares["question:prompt_echo"]["filters=none"] == 0
    assert shares["question:prompt_echo"]["filters=default"] > 0
    md = (sweep_dir / "compare.md").read_text()
    assert "## Rejects by reason" in md and "| question:meta_reference | yes |" in md
    sheet = pd.read_excel(sweep_dir / "compare.xlsx", sheet_name="rejects")
    assert list(sheet.columns) == ["reason", "gate", *data["runs"]]

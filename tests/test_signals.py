"""Per-row quality signals (synthgen/gates/signals.py) and the gates on them: every row and
every reject carries them, the gates drop on them with a reason, and task=filter re-gates on
the stored ones (computing what an older run dir lacks) without a model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthgen.errors import ConfigError
from synthgen.gates import filters
from synthgen.gates.signals import Scorer
from synthgen.generate import pipeline
from tests.conftest import FAKE_BACKEND, compose
from tests.helpers.fake_backend import Script, scripted

CORPUS = {
    "train": {
        "a": "The lighthouse keeper climbed two hundred steps to light the lamp each evening.",
        "b": "Sourdough bread rises slowly because wild yeast ferments the flour overnight.",
        "c": "Glaciers carve U-shaped valleys as the ice grinds the rock beneath it.",
    }
}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_bm25_rank_finds_the_own_chunk_and_ranks_an_unrelated_question_last() -> None:
    sc = Scorer(CORPUS)
    assert sc.question("train", "b", "Why does sourdough bread rise slowly?")["bm25_rank"] == 1
    got = sc.questions(
        "train",
        ["a", "a", "zzz"],
        [
            "Does the lighthouse keeper bake sourdough bread that rises slowly?",
            "What is it?",
            "How do glaciers carve valleys?",
        ],
    )
    assert got[0]["bm25_rank"] == 2  # chunk b outranks its own chunk a
    assert got[1]["bm25_rank"] == 3  # no word shared (stopwords only): last of 3
    assert got[2]["bm25_rank"] == 4  # a chunk not in the corpus (a dropped copy): never found
    assert all(g["chunks"] == 3 for g in got)
    assert "embed_rank" not in got[0]  # no embedder: no embedding signals


def test_embedding_signals_with_an_embedder(tiny_embedder: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_embedder))
    sc = Scorer(CORPUS, lambda: model)
    text = CORPUS["train"]["c"]
    got = sc.question("train", "c", text)  # the chunk itself as the question
    assert got["embed_rank"] == 1 and got["easiness"] == pytest.approx(1.0, abs=1e-3)
    other = sc.question("train", "c", "Why does sourdough bread rise slowly?")
    assert 1 <= other["embed_rank"] <= 3 and -1 <= other["easiness"] < 1


def test_each_signal_gate_drops_with_its_reason_and_lets_a_missing_signal_pass() -> None:
    cfg = compose(
        [
            "filters.round_trip.enabled=true",
            "filters.round_trip.k=2",
            "filters.logprob.enabled=true",
            "filters.logprob.min=-2.0",
        ]
    )
    g = filters.Gates(cfg, cfg.prompt)
    assert g.signals({"bm25_rank": 2, "logprob": -1.0}) is None
    d = g.signals({"bm25_rank": 3, "logprob": -1.0})
    assert (d.reason, d.score, d.threshold) == ("round_trip", 3, 2)
    d = g.signals({"bm25_rank": 1, "logprob": -2.5})
    assert (d.reason, d.score, d.threshold) == ("low_logprob", -2.5, -2.0)
    assert g.signals({"logprob": None}) is None  # an endpoint without log-probabilities
    off = filters.Gates(compose(), None)
    assert off.signals({"bm25_rank": 99, "logprob": -99.0}) is None  # off by default


def test_the_easiness_gate(tiny_embedder: Path) -> None:
    cfg = compose(
        [
            f"embedder.name_or_path={tiny_embedder}",
            "filters.easiness.enabled=true",
            "filters.easiness.max_similarity=0.8",
        ]
    )
    g = filters.Gates(cfg, cfg.prompt)
    assert g.embed_signals
    assert g.signals({"easiness": 0.95}).reason == "too_easy"
    assert g.signals({"easiness": 0.5}) is None


@pytest.mark.parametrize(
    "override, msg",
    [
        ("filters.round_trip.k=0", r"filters\.round_trip\.k: must be a number >= 1"),
        ("filters.round_trip.retriever=tfidf", "must be bm25 or embedding"),
        ("filters.logprob.min=0.5", r"filters\.logprob\.min: must be a number in"),
        ("filters.easiness.max_similarity=2", r"filters\.easiness\.max_similarity"),
    ],
)
def test_bad_signal_gate_settings_stop_in_one_line(override: str, msg: str) -> None:
    key = override.split(".")[1]
    with pytest.raises(ConfigError, match=msg):
        filters.check(compose([f"filters.{key}.enabled=true", override]))


# the fake's off-topic questions share no word with their chunk: the grounding gate would drop
# them first, so it is off here and round_trip is the gate that sees them
ROUND_TRIP = ["filters.grounding.questions=false", "filters.round_trip.enabled=true"]


@pytest.fixture
def off_topic(fake: Script) -> None:
    fake.questions = "off_topic"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("sig") / "run"
    with scripted(questions="off_topic"):
        pipeline.run(compose([FAKE_BACKEND, "num_rows=12", *ROUND_TRIP]), d)
    return d


def test_every_row_and_reject_carries_its_signals(run: Path) -> None:
    rows = [r for s in ("train", "val") for r in jsonl(run / f"{s}.jsonl")]
    rejected = jsonl(run / "rejected.jsonl")
    assert rows and rejected
    for r in rows:
        sig = r["signals"]
        assert sig["bm25_rank"] == 1  # the gate kept only questions that find their own chunk
        assert sig["chunks"] >= 1 and "logprob" in sig and "answer_logprob" in sig
    trips = [r for r in rejected if r["reason"] == "round_trip"]
    assert trips, rejected
    for r in trips:
        assert r["stage"] == "question" and r["signals"]["bm25_rank"] > 1
        assert r["score"] == r["signals"]["bm25_rank"] and r["threshold"] == 1
    s = json.loads((run / "summary.json").read_text())
    assert s["filters"]["rejected"]["question:round_trip"] == len(trips)
    # the spreadsheet shows them as columns
    import pandas as pd

    sheet = pd.read_excel(run / "dataset.xlsx", sheet_name="train")
    assert {"logprob", "bm25_rank", "easiness"} <= set(sheet.columns)


def test_task_filter_regates_on_stored_signals_and_computes_missing_ones(
    tmp_path: Path, off_topic: None
) -> None:
    src = tmp_path / "src"
    pipeline.run(compose([FAKE_BACKEND, "num_rows=12", "filters=none"]), src)
    rows = {s: jsonl(src / f"{s}.jsonl") for s in ("train", "val")}
    n = sum(len(v) for v in rows.values())
    far = sum(r["signals"]["bm25_rank"] > 1 for v in rows.values() for r in v)
    assert 0 < far < n  # the fake's questions: some find their chunk, some do not
    # an older run dir: its dataset rows have no signals at all
    for s in ("train", "val"):
        data = json.loads((src / f"{s}.json").read_text())
        for r in data:
            r.pop("signals", None)
        (src / f"{s}.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    pipeline.run(compose(["task=filter", f"filter.data={src}", *ROUND_TRIP]), out)
    kept = [r for s in ("train", "val") for r in jsonl(out / f"{s}.jsonl")]
    assert len(kept) == n - far
    assert all(r["signals"]["bm25_rank"] == 1 for r in kept)  # computed again, the same
    dropped = [r for r in jsonl(out / "rejected.jsonl") if r.get("task") == "filter"]
    assert len(dropped) == far and all(r["reason"] == "round_trip" for r in dropped)
    assert all(r["signals"]["bm25_rank"] > 1 for r in dropped)


def test_a_run_dir_saved_before_the_signal_gates_resumes(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    d = tmp_path / "old"
    pipeline.run(compose([FAKE_BACKEND, "num_rows=2"]), d)
    old = OmegaConf.load(d / "config.yaml")
    for key in ("embed_signals", "round_trip", "logprob", "easiness"):
        del old.filters[key]  # a config.yaml as synthgen wrote it before the keys
    OmegaConf.save(old, d / "config.yaml")
    s = pipeline.run(compose([FAKE_BACKEND, "num_rows=3"]), d)  # resumes: same rows as before
    assert s["rows"]["train"] == 3 and s["this_session"]["prompts"]["question"] == 2  # 1 a split
    with pytest.raises(ConfigError, match=r"^resume: .*filters\.round_trip\.enabled"):
        pipeline.run(compose([FAKE_BACKEND, "num_rows=3", "filters.round_trip.enabled=true"]), d)

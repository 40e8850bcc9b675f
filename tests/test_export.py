"""task=export: each format loads with its own library (datasets, beir); FlagEmbedding's
package does not import next to transformers 5, so its rows are checked against what its
trainer's dataset asserts (FlagEmbedding/abc/finetune/embedder/AbsDataset.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthgen.errors import SynthgenError
from synthgen.generate import pipeline
from tests.conftest import compose
from tests.helpers.qa_run import make_qa_run


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_qa_run(tmp_path_factory.mktemp("qa") / "run")


@pytest.fixture(scope="module")
def exported(qa: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    pipeline.run(compose(["task=export", f"export.data={qa}"]), run_dir=out)
    return out


def rows(qa: Path, split: str) -> list[dict]:
    return json.loads((qa / f"{split}.json").read_text())


def check_flag_rows(path: Path, qa: Path, split: str, k: int) -> None:
    """What FlagEmbedding's AbsEmbedderTrainDataset needs: json loaded by datasets, `query` a
    string, `pos` and `neg` lists of strings, neg non-empty (it samples train_group_size - 1
    negatives from it, dividing by its length)."""
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(path), split="train")
    assert set(ds.column_names) == {"query", "pos", "neg"}
    corpus = json.loads((qa / f"{split}_corpus.json").read_text())
    want = rows(qa, split)
    assert len(ds) == len(want)
    for rec, row in zip(ds, want, strict=True):
        assert rec["query"] == row["question"]
        assert rec["pos"] == [corpus[row["chunk_id"]]]
        assert isinstance(rec["neg"], list) and len(rec["neg"]) == k
        assert all(isinstance(n, str) and n != rec["pos"][0] for n in rec["neg"])


def test_flag_jsonl(exported: Path, qa: Path) -> None:
    for split in ("train", "val"):
        k = min(7, len(set(json.loads((qa / f"{split}_corpus.json").read_text()).values())) - 1)
        check_flag_rows(exported / "flag" / f"{split}.jsonl", qa, split, k)


def test_sentence_transformers_dataset(exported: Path, qa: Path) -> None:
    from datasets import load_dataset, load_from_disk

    files = {s: str(exported / "st" / f"{s}.jsonl") for s in ("train", "val")}
    ds = load_dataset("json", data_files=files)
    disk = load_from_disk(str(exported / "st" / "dataset"))
    for split in ("train", "val"):
        want = rows(qa, split)
        corpus = json.loads((qa / f"{split}_corpus.json").read_text())
        for d in (ds[split], disk[split]):
            assert d.column_names == ["anchor", "positive"]
            assert d["anchor"] == [r["question"] for r in want]
            assert d["positive"] == [corpus[r["chunk_id"]] for r in want]


def test_beir_folder_loads_with_generic_data_loader(exported: Path, qa: Path) -> None:
    from beir.datasets.data_loader import GenericDataLoader

    for split in ("train", "val"):
        corpus, queries, qrels = GenericDataLoader(str(exported / "beir" / split)).load(split)
        want_corpus = json.loads((qa / f"{split}_corpus.json").read_text())
        assert {k: v["text"] for k, v in corpus.items()} == want_corpus
        assert queries == json.loads((qa / f"{split}_queries.json").read_text())
        relevant = json.loads((qa / f"{split}_relevant_docs.json").read_text())
        assert qrels == {q: {d[0]: 1} for q, d in relevant.items()}


def test_export_with_mined_negatives(qa: Path, tiny_embedder: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    summary = pipeline.run(
        compose(
            [
                "task=export",
                f"export.data={qa}",
                "export.formats=[flag,st]",
                "export.splits=[train]",
                "export.hard_negatives=2",
                f"embedder.name_or_path={tiny_embedder}",
                "embedder.query_prefix='query: '",
            ]
        ),
        run_dir=tmp_path,
    )
    check_flag_rows(tmp_path / "flag" / "train.jsonl", qa, "train", 2)
    mined = summary["negatives"]["mined"]["train"]
    assert mined["removed"]["identical"] == 2  # camera.md's text again under camera_copy.md
    disk = load_from_disk(str(tmp_path / "st" / "dataset"))
    full = disk["train"]
    assert full.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    bare = len(disk["train_pairs"]) if "train_pairs" in disk else 0
    assert len(full) + bare == 10 and bare == mined["questions_without_negative"]
    for r in full:
        assert r["positive"] not in (r["negative_1"], r["negative_2"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["export.formats=[flag,xml]"], "export.formats: unknown format 'xml'"),
        (["export.splits=[test]"], "export.splits:"),
        (["export.random_negatives=-1"], "export.random_negatives:"),
    ],
)
def test_export_bad_input(overrides: list[str], message: str, qa: Path, tmp_path: Path) -> None:
    with pytest.raises(SynthgenError, match=message):
        pipeline.run(compose(["task=export", f"export.data={qa}", *overrides]), tmp_path)
    with pytest.raises(SynthgenError, match="export.data: required"):
        pipeline.run(compose(["task=export"]), tmp_path)

"""Near-duplicates: a passage in both splits, the same file twice in a split, questions that
differ by a word. Real essays (data/movies_src) through the real reader and chunker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synthgen.corpus.dedup import QuestionSet, copies, leaks
from synthgen.errors import ConfigError
from synthgen.generate import pipeline
from synthgen.records import Chunk
from tests.conftest import REPO, compose
from tests.helpers.fake_backend import Script

SRC = REPO / "data" / "movies_src"
FAKE = "model._target_=tests.helpers.fake_backend.Backend"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Train: two essays and one of them again under another name. Val: an essay with a
    paragraph of a train essay pasted into it (an excerpt quoted in another edition)."""
    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(SRC / "01_the_pleasure_of_fear.md", d / "fear.md")
    shutil.copy(SRC / "03_so_bad_its_good.md", d / "bad.md")
    shutil.copy(SRC / "01_the_pleasure_of_fear.md", d / "fear (reprint).md")
    bad = (SRC / "03_so_bad_its_good.md").read_text(encoding="utf-8").split("\n\n")
    passage = "\n\n".join(bad[3:6])  # three paragraphs of the train essay
    listening = (SRC / "02_listening_to_the_movies.md").read_text(encoding="utf-8").split("\n\n")
    (d / "listening.md").write_text(
        "\n\n".join([*listening[:4], passage, *listening[4:]]), encoding="utf-8"
    )
    shutil.copy(SRC / "04_the_new_hollywood.md", d / "hollywood.md")
    return d


def args(d: Path, *more: str) -> list[str]:
    return [
        FAKE,
        f"corpus.dir={d}",
        "corpus.train_files=[fear.md,bad.md,'fear (reprint).md']",
        "corpus.val_files=[listening.md,hollywood.md]",
        "keywords=none",
        "chunking=small",
        "num_rows=100",
        *more,
    ]


def test_leak_is_reported_with_both_files_and_the_copy_generated_once(
    corpus: Path, tmp_path: Path
) -> None:
    s = pipeline.run(compose(args(corpus)), tmp_path / "run")
    leak = s["leak"]
    assert leak["action"] == "warn" and leak["pairs"] and leak["dropped"] == 0
    assert {(p["val_source"], p["train_source"]) for p in leak["pairs"]} == {
        ("listening.md", "bad.md")
    }
    assert all(p["similarity"] >= 0.5 for p in leak["pairs"])
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["leak"] == leak
    # the reprint: every chunk of it is a copy, generated once, listed with its original
    t = s["splits"]["train"]
    copies_ = t["duplicate_chunks"]
    assert copies_ and {c["chunk_source"] for c in copies_} == {"fear (reprint).md"}
    assert {c["copy_of_source"] for c in copies_} == {"fear.md"}
    assert t["chunks_rejected"]["duplicate"] == len(copies_)
    rows = json.loads((tmp_path / "run" / "train.json").read_text())
    assert rows and "fear (reprint).md" not in {r["source"] for r in rows}
    corpus_json = json.loads((tmp_path / "run" / "train_corpus.json").read_text())
    assert not {c["chunk_id"] for c in copies_} & set(corpus_json)
    # warn: the val chunks stay
    v = json.loads((tmp_path / "run" / "val_corpus.json").read_text())
    assert {p["val_id"] for p in leak["pairs"]} <= set(v)


def test_leak_drop_leaves_the_val_copy_out(corpus: Path, tmp_path: Path) -> None:
    s = pipeline.run(compose(args(corpus, "corpus.leak=drop")), tmp_path / "run")
    ids = {p["val_id"] for p in s["leak"]["pairs"]}
    assert ids and s["leak"]["dropped"] == len(ids)
    assert s["splits"]["val"]["chunks_rejected"]["leak"] == len(ids)
    v = json.loads((tmp_path / "run" / "val_corpus.json").read_text())
    assert not ids & set(v)
    rows = json.loads((tmp_path / "run" / "val.json").read_text())
    assert rows and not ids & {r["chunk_id"] for r in rows}


def test_leak_fail_stops_before_any_model_loads(corpus: Path, tmp_path: Path, fake: Script) -> None:
    with pytest.raises(ConfigError) as e:
        pipeline.run(compose(args(corpus, "corpus.leak=fail")), tmp_path / "run")
    msg = str(e.value)
    assert msg.startswith("corpus.leak: ") and "\n" not in msg
    assert "'listening.md'" in msg and "'bad.md'" in msg
    assert fake.calls == []  # nothing generated
    assert not (tmp_path / "run" / "train.jsonl").exists()


def test_no_leak_between_unrelated_essays(tmp_path: Path) -> None:
    s = pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)  # the sample corpus
    assert s["leak"]["pairs"] == []
    assert s["splits"]["train"]["duplicate_chunks"] == []


def chunk(i: str, text: str, source: str = "a.md") -> Chunk:
    return Chunk(id=i, source=source, text=text)


def test_shingle_matching() -> None:
    para = (SRC / "05_muscles_and_one_liners.md").read_text(encoding="utf-8").split("\n\n")
    a = chunk("a", "\n\n".join(para[2:5]))
    retyped = chunk("b", a.text.replace(",", "").replace("The ", "the ").upper(), "b.md")
    other = chunk("c", "\n\n".join(para[6:9]))
    found = copies([a, other, retyped], k=5, threshold=0.8, min_shingles=8)
    assert [(m.chunk.id, m.of.id) for m in found] == [("b", "a")]  # case, punctuation folded
    half = chunk("v", "\n\n".join([para[3], "A wholly new paragraph about the sound of rain."]))
    got = leaks([a, other], [half], k=5, threshold=0.5, min_shingles=8)
    assert [(m.chunk.id, m.of.id) for m in got] == [("v", "a")]
    assert got[0].similarity > 0.5  # containment: most of the val chunk is the train text
    assert leaks([a], [other], 5, 0.5, 8) == []


def test_near_duplicate_questions() -> None:
    qs = QuestionSet(0.9)
    qs.add("What is the name of the director?")
    assert qs.match("What was the name of the director?")[0] == "What is the name of the director?"
    assert qs.match("what is the name of the director")[1] == 1.0  # exact once folded
    assert qs.match("When was the film released?") is None
    qs.add("When was the film released?")
    assert qs.match("When was the film restored?") is None  # a word that changes the meaning
    qs.add("What happened in 1990?")
    assert qs.match("What happened in 1991?") is None  # other numbers, other question
    assert QuestionSet(1.0).match("x") is None


def test_near_duplicate_questions_are_dropped_in_a_run(tmp_path: Path) -> None:
    """The fake asks 'What is #0 in <the chunk's first 30 characters>?': chunks that start
    alike give questions a word or a comma apart."""
    d = tmp_path / "docs"
    d.mkdir()
    base = (SRC / "06_the_sundance_decade.md").read_text(encoding="utf-8")
    words = " ".join(base.split())
    # a word apart, and a comma apart (folded away: an exact repeat)
    starts = [
        "Indie films of the nineties:",
        "Indie film of the nineties:",
        "Indie films, of the nineties",
    ]
    for i, start in enumerate(starts):  # one small chunk per file, each of other text
        (d / f"v{i}.md").write_text(f"{start} {words[i * 800 : i * 800 + 700]}", "utf-8")
    (d / "val.md").write_text(words[3000:3700], encoding="utf-8")
    overrides = [
        FAKE,
        f"corpus.dir={d}",
        "corpus.train_files=[v0.md,v1.md,v2.md]",
        "corpus.val_files=[val.md]",
        "keywords=none",
        "chunking=small",
        "num_rows=3",
    ]
    s = pipeline.run(compose(overrides), tmp_path / "near")
    assert s["rows"]["train"] == 1 and s["splits"]["train"]["duplicates"] == 2
    rej = [json.loads(x) for x in (tmp_path / "near" / "rejected.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rej} == {"duplicate"}
    assert all(r["duplicate_of"].startswith("What is #0 in 'Indie films") for r in rej)
    exact = pipeline.run(compose([*overrides, "dedup.question_threshold=1.0"]), tmp_path / "ex")
    assert exact["rows"]["train"] == 2  # exact repeats only: "film" stays, the comma goes

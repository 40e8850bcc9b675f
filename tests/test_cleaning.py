"""The cleaning stage on its rules and on real PDFs: a scanned book with an OCR layer and a
typeset manual, through the real readers and chunker."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from synthgen.corpus.cleaning import Settings, clean_file
from synthgen.corpus.load import load_corpus
from synthgen.generate import pipeline
from synthgen.records import Doc
from synthgen.settings import Settings as RunSettings
from tests.conftest import REPO, compose

DATA = REPO / "tests" / "data"
FAKE = "model._target_=tests.helpers.fake_backend.Backend"
SCANNED, MANUAL = "owl_creek_scanned.pdf", "4ti2_manual_p9-14.pdf"
HEADS = ("IN THE MIDST OF LIFE", "AN OCCURRENCE AT OWL CREEK BRIDGE")
# words the typesetter split at line ends (scripts/make_scanned_pdf.py, pyphen en_US)
SPLIT_WORDS = ("infantry", "lieutenant", "Excepting", "arrangement", "bandaged", "husband")


def page(lines: list[str]) -> str:
    return "\n".join(lines)


def book(bodies: list[list[str]], first: int = 41) -> list[Doc]:
    """Pages with a title head on even pages and a chapter head on odd ones, OCR variants."""
    heads = ["THE HISTORY OF ENGLAND", "CHAP. II. THE NORMAN CONQUEST"]
    variants = {3: "CHAP. II. TIIE NORMAN C0NQUEST", 4: "THE HISTORY 0F ENGLAXD"}
    docs = []
    for p, body in enumerate(bodies):
        n = first + p
        head = variants.get(p, heads[p % 2])
        top = f"{n}  {head}" if p % 2 == 0 else f"{head}  {n}"
        docs.append(Doc("h.pdf", page([top, "", *body, "", f"— {n} —"]), str(n)))
    return docs


BODIES = [
    ["William landed at Pevensey with an army of knights and archers.", "The fleet had"],
    ["waited for a south wind for weeks.", "Harold marched south from York at great speed."],
    ["The armies met near Hastings on a ridge above the marsh; the well-known", "shield wall"],
    ["held for most of the day.", "Norman archers shot high, and the English line broke."],
    ["Harold fell, and by nightfall the Saxon army had fled into the", "forest behind them."],
    ["William was crowned on Christmas Day in the abbey at Westminster.", "The end."],
]


def test_alternating_heads_ocr_variants_and_page_numbers_go() -> None:
    out, info = clean_file(book(BODIES), Settings())
    text = "\n".join(d.text for d in out)
    assert "ENGLAND" not in text and "ENGLAXD" not in text and "CONQUEST" not in text
    assert not re.search(r"\b4[1-6]\b", text)  # page numbers, in heads and at the foot
    assert info["furniture_lines"] == 6 and info["page_numbers"] == 6
    assert set(info["furniture"]) == {
        "41  THE HISTORY OF ENGLAND",
        "CHAP. II. THE NORMAN CONQUEST  42",
    }
    assert "William landed at Pevensey" in text and "The end." in text  # the body stays


def test_a_number_out_of_page_order_is_text() -> None:
    bodies = [["A matrix:", "1 1 1", "1"], ["x"], ["y"], ["z"]]
    docs = [Doc("m.pdf", page([*b, str(10 + p)])) for p, b in enumerate(bodies)]
    out, info = clean_file(docs, Settings(min_pages=9))
    assert out[0].text.splitlines() == ["A matrix:", "1 1 1", "1"]  # "1" breaks the sequence
    assert info["page_numbers"] == 4  # 10, 11, 12, 13 follow the pages


def test_hyphenation_joins_split_words_and_keeps_real_hyphens() -> None:
    text = page(
        [
            "The courier could expe-",
            "dite any errand, and the cross-ties held. A well-known rider, well-",
            "known to all, rode the cross-",
            "timber bridge. He spoke Anglo-",
            "Saxon and Nor-  ",
            "man French; his horse was expedite too, and an out-",
            "post stood by the 1990-",
            "1995 road.",
        ]
    )
    out, info = clean_file([Doc("a.pdf", text)], Settings())
    got = out[0].text
    assert "expedite any errand" in got  # "expedite" occurs elsewhere: joined
    assert "well-known to all" in got  # "well-known" occurs elsewhere: hyphen kept
    assert "cross-timber" in got  # "cross-ties" shows "cross-" makes hyphenated words
    assert "Anglo-Saxon" in got  # a capital after the break
    assert "Norman French" in got  # "Nor- " with a space after the hyphen (OCR) joined too
    assert "outpost stood" in got  # nothing says "out-post": joined
    assert "1990-\n1995" in got  # digits are not a split word
    assert info["hyphens_joined"] == 3 and info["hyphens_kept"] == 3


def test_a_word_split_across_a_page_break_is_joined() -> None:
    docs = [
        Doc("b.pdf", "The story of the con-"),
        Doc("b.pdf", "quest began in the spring."),
    ]
    out, info = clean_file(docs, Settings())
    assert [d.text for d in out] == ["The story of the conquest", "began in the spring."]
    assert info["hyphens_joined"] == 1


def test_whitespace_and_what_is_not_cleaned() -> None:
    out, info = clean_file([Doc("w.pdf", "a  b\t c   \n\n\n\nd \n")], Settings())
    assert out[0].text == "a b c\n\nd" and info["whitespace_runs"] >= 3
    same, info = clean_file([Doc("w.txt", "a  b")], Settings())  # not in apply_to
    assert same[0].text == "a  b" and info == {}
    off, info = clean_file(book(BODIES), Settings(apply_to=()))
    assert "ENGLAND" in off[0].text and info == {}


def chunks_of(run_dir: Path, split: str) -> dict[str, str]:
    return json.loads((run_dir / f"{split}_corpus.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cleaned_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The two real PDFs through a run (fake backend: the corpus is what is tested)."""
    d = tmp_path_factory.mktemp("clean") / "run"
    overrides = [
        FAKE,
        f"corpus.dir={DATA}",
        f"corpus.train_files=[{SCANNED}]",
        f"corpus.val_files=[{MANUAL}]",
        "keywords=none",
        "chunking=small",
        "num_rows=2",
    ]
    return d, pipeline.run(compose(overrides), d)


def is_head(line: str) -> bool:
    folded = re.sub(r"[\d\W_]+", " ", line).strip().upper()
    return any(SequenceMatcher(None, folded, h).ratio() >= 0.8 for h in HEADS)


def test_scanned_book_chunks_hold_no_running_head_or_page_number(cleaned_run) -> None:
    run_dir, s = cleaned_run
    chunks = chunks_of(run_dir, "train")
    assert chunks
    for text in chunks.values():
        for line in text.splitlines():
            assert not is_head(line), line
            assert not re.fullmatch(r"\W*\d{1,2}\W*", line.strip()), line
        assert "MIDST" not in text and "OCCURRENCE" not in text  # not even inside a line
        assert not re.search(r"\b(9|1[0-4])\b", text)  # the story has no digits; pages do
        assert not re.search(r"[a-z]-[ \t]*\n", text)  # no word left split at a line end
    body = " ".join(chunks.values())
    for word in SPLIT_WORDS:
        assert word in body, word
    counts = s["splits"]["train"]["cleaning"][SCANNED]
    assert counts["pages"] == 6 and counts["furniture_lines"] >= 5
    assert counts["hyphens_joined"] >= 15


def test_typeset_manual_chunks_hold_no_running_head(cleaned_run) -> None:
    run_dir, s = cleaned_run
    body = "\n".join(chunks_of(run_dir, "val").values())
    assert not re.search(r"Beginner’s guide \d", body)
    assert not re.search(r"Brief tutorial \d", body)
    assert "magic square" in body  # the text itself stays
    counts = s["splits"]["val"]["cleaning"][MANUAL]
    assert counts["furniture_lines"] == 6
    assert len(counts["furniture"]) == 2  # the even and the odd running head


def test_without_cleaning_the_heads_stay_in_the_chunks() -> None:
    """The same files with cleaning=none: what the checks above look for is really there."""
    from collections import Counter

    overrides = [
        f"corpus.dir={DATA}",
        f"corpus.train_files=[{SCANNED}]",
        f"corpus.val_files=[{MANUAL}]",
        "keywords=none",
        "chunking=small",
        "cleaning=none",
    ]
    corpus = load_corpus(RunSettings.from_cfg(compose(overrides)), Counter())
    train = " ".join(c.text for c in corpus["train"].chunks)
    assert "MIDST OF LIFE" in train and re.search(r"\b1[0-4]\b", train)
    assert re.search(r"[a-z]-[ \t]*\n", train)
    assert re.search(r"Beginner’s guide \d", " ".join(c.text for c in corpus["val"].chunks))
    assert corpus["train"].cleaning == {}


def test_dry_run_shows_the_cleaning_counts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_model: Path
) -> None:
    overrides = [
        FAKE,
        f"model.name_or_path={tiny_model}",
        f"corpus.dir={DATA}",
        f"corpus.train_files=[{SCANNED}]",
        f"corpus.val_files=[{MANUAL}]",
        "keywords=none",
        "dry_run=true",
        "num_rows=1",
    ]
    pipeline.run(compose(overrides), tmp_path)
    out = capsys.readouterr().out
    assert f"cleaned {SCANNED}: " in out and "furniture_lines" in out and "hyphens_joined" in out
    assert "header/footer: '10 IN THE MIDST OF LIFE'" in out


def test_resuming_a_run_dir_made_before_cleaning_is_refused(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from synthgen.errors import ConfigError

    pipeline.run(compose([FAKE, "num_rows=1"]), tmp_path)
    old = OmegaConf.load(tmp_path / "config.yaml")
    del old["cleaning"], old["dedup"]  # a config.yaml as synthgen wrote it before this stage
    OmegaConf.save(old, tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=r"^resume: .*cleaning\.apply_to: \(not set\) -> "):
        pipeline.run(compose([FAKE, "num_rows=1"]), tmp_path)

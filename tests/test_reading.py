"""Real PDF, DOCX, TXT and MD files through LlamaIndex's readers, broken ones included."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthgen.corpus.reading import decode_text, read_files, resolve_files
from synthgen.errors import ConfigError
from tests.helpers.broken_files import make_mixed_corpus


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("mixed")
    return d, make_mixed_corpus(d)


def test_reads_every_format_and_skips_broken_files_with_reasons(mixed) -> None:
    d, broken = mixed
    files = resolve_files(d, ["*"], "corpus.train_files")
    docs, skipped, notes = read_files(d, files)
    reasons = {s.source: s.reason for s in skipped}
    assert set(reasons) == set(broken)
    for name, word in broken.items():
        assert word.lower() in reasons[name].lower(), (name, reasons[name])
        assert "\n" not in reasons[name]
    sources = {doc.source for doc in docs}
    assert {
        "Acting and Casting.pdf",
        "so_bad_its_good.docx",
        "film_critics.txt",
        "screenplay-structure.md",
        "cannes_cp1252.txt",
    } <= sources
    pdf_pages = [doc for doc in docs if doc.source == "Acting and Casting.pdf"]
    assert len(pdf_pages) > 1 and pdf_pages[0].page == "1"  # one doc per PDF page
    assert "camera" in " ".join(p.text for p in pdf_pages)
    assert notes["cannes_cp1252.txt"].startswith("decoded as cp1252 (not UTF-8; high confidence")
    assert set(notes) == {"cannes_cp1252.txt"}


def test_non_utf8_text_keeps_every_character(mixed) -> None:
    d, _ = mixed
    docs, _, _ = read_files(d, [d / "cannes_cp1252.txt"])
    text = "".join(doc.text for doc in docs)
    assert "réalisateur à Cannes: « film » — café." in text


def test_decode_text() -> None:
    assert decode_text("naïve".encode()) == ("naïve", "utf-8")
    assert decode_text("\ufeffbom".encode()) == ("bom", "utf-8")


def test_resolve_files_keeps_list_order_and_reports_missing(mixed) -> None:
    d, _ = mixed
    got = resolve_files(d, ["film_critics.txt", "*.pdf", "film_critics.txt"], "corpus.val_files")
    assert got[0].name == "film_critics.txt" and len(got) == len(set(got))
    with pytest.raises(ConfigError, match="^corpus.val_files: file 'nope.pdf' not found"):
        resolve_files(d, ["nope.pdf"], "corpus.val_files")
    with pytest.raises(ConfigError, match="^corpus.val_files: pattern"):
        resolve_files(d, ["*.epub"], "corpus.val_files")
    with pytest.raises(ConfigError, match="^corpus.train_files: the file list is empty"):
        resolve_files(d, [], "corpus.train_files")


def test_a_file_name_with_brackets_is_taken_literally(tmp_path: Path) -> None:
    (tmp_path / "Notes [draft].txt").write_text("film", encoding="utf-8")
    assert resolve_files(tmp_path, ["Notes [draft].txt"], "corpus.train_files") == [
        tmp_path / "Notes [draft].txt"
    ]

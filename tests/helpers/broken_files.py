"""Real broken files, made the way they occur in the wild (not mocks)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from tests.conftest import REPO

SAMPLE = REPO / "data" / "movies"


def make_mixed_corpus(d: Path) -> dict[str, str]:
    """Good PDF/DOCX/TXT/MD files plus broken ones. Returns {broken file: expected reason word}."""
    from pypdf import PdfWriter
    from reportlab.pdfgen import canvas

    d.mkdir(parents=True, exist_ok=True)
    for name in (
        "Acting and Casting.pdf",
        "so_bad_its_good.docx",
        "film_critics.txt",
        "screenplay-structure.md",
        "The Sundance Decade.pdf",
    ):
        shutil.copy(SAMPLE / name, d / name)
    pdf = (SAMPLE / "Acting and Casting.pdf").read_bytes()
    w = PdfWriter(clone_from=SAMPLE / "Acting and Casting.pdf")
    w.encrypt("secret")
    w.write(d / "encrypted.pdf")
    (d / "truncated.pdf").write_bytes(pdf[: len(pdf) // 3])
    c = canvas.Canvas(str(d / "scanned.pdf"))  # a page with an image-like box and no text
    c.rect(100, 100, 300, 400, fill=1)
    c.showPage()
    c.save()
    with zipfile.ZipFile(d / "broken.docx", "w") as z:  # a zip without word/document.xml
        z.writestr("word/styles.xml", "<styles/>")
    (d / "notazip.docx").write_bytes(b"this is not a Word file")
    (d / "empty.txt").write_bytes(b"")
    (d / "table.xyz").write_text("film director actor", encoding="utf-8")
    # Windows-1252 text: LlamaIndex's reader would drop the accented bytes silently
    latin = ("Le réalisateur à Cannes: « film » — café. " * 40).encode("cp1252")
    (d / "cannes_cp1252.txt").write_bytes(latin)
    return {
        "encrypted.pdf": "encrypted",
        "truncated.pdf": "corrupt",
        "scanned.pdf": "no text",
        "broken.docx": "broken DOCX",
        "notazip.docx": "broken DOCX",
        "empty.txt": "empty file",
        "table.xyz": "unsupported extension",
    }

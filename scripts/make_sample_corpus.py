"""Build the sample ``corpus=movies`` files in data/movies/ from data/movies_src/.

Why: the project needs a small, shareable corpus that looks like a user's real
folder of mixed documents (PDF, DOCX, TXT, MD, some names with spaces) so the
pipeline can be run and tested end to end without private data. The essays in
data/movies_src/ are original film-criticism texts written for this project.

How: run from the repository root::

    python scripts/make_sample_corpus.py

It needs only the standard library, reportlab and python-docx. The output is
byte-reproducible (fixed PDF and DOCX metadata dates, fixed zip timestamps), so
re-running it leaves git clean unless a source essay or this script changed.

PDF layout (Letter, 11 pt Helvetica, double spacing, 1.75 in side margins) is chosen so
that each page holds roughly 1,200-1,900 characters of text: PDF readers give
one document per page, and pages of that size make chunks of that size.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import docx
from docx.shared import Pt
from reportlab.lib.enums import TA_JUSTIFY
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = ROOT / "data" / "movies_src"
OUT_DIR = ROOT / "data" / "movies"

AUTHOR = "synthgen sample corpus"
FIXED_DATE = dt.datetime(2024, 1, 15, 12, 0, 0)

# source stem -> output file name; the extension picks the format.
FILES: dict[str, str] = {
    "01_the_pleasure_of_fear": "the-pleasure-of-fear.pdf",
    "02_listening_to_the_movies": "Listening to the Movies.pdf",
    "03_so_bad_its_good": "so_bad_its_good.docx",
    "04_the_new_hollywood": "new_hollywood_1967-1980.pdf",
    "05_muscles_and_one_liners": "80s action heroes.txt",
    "06_the_sundance_decade": "The Sundance Decade.pdf",
    "07_painting_with_light": "cinematography_painting_with_light.pdf",
    "08_three_acts_and_beyond": "screenplay-structure.md",
    "09_the_face_on_the_screen": "Acting and Casting.pdf",
    "10_the_ethics_of_looking": "documentary_ethics.docx",
    "11_drawn_to_life": "animation-drawn-to-life.pdf",
    "12_the_critics_chair": "film_critics.txt",
    "13_the_invisible_cut": "The Invisible Cut - editing and montage.docx",
    "14_in_the_dark_together": "in_the_dark_together.md",
    "15_the_100_greatest": "The 100 Greatest Movies of All Time.docx",
}

# A block is ("h1" | "h2" | "p", text).
Block = tuple[str, str]


def parse_markdown(text: str) -> list[Block]:
    """Split our simple essay markdown into headings and paragraphs."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()

    for line in text.splitlines():
        line = line.strip()
        if not line:
            flush()
        elif line.startswith("## "):
            flush()
            blocks.append(("h2", line[3:].strip()))
        elif line.startswith("# "):
            flush()
            blocks.append(("h1", line[2:].strip()))
        else:
            para.append(line)
    flush()
    return blocks


def write_pdf(blocks: list[Block], path: Path) -> None:
    """Render blocks as a double-spaced manuscript-style PDF."""
    body = ParagraphStyle(
        "body",
        fontName="Helvetica",
        fontSize=11,
        leading=26,
        alignment=TA_JUSTIFY,
        firstLineIndent=0.3 * inch,
        spaceAfter=4,
    )
    h1 = ParagraphStyle(
        "h1",
        fontName="Helvetica-Bold",
        fontSize=16,
        leading=22,
        spaceAfter=14,
    )
    h2 = ParagraphStyle(
        "h2",
        fontName="Helvetica-Bold",
        fontSize=12,
        leading=18,
        spaceBefore=8,
        spaceAfter=4,
    )
    styles = {"h1": h1, "h2": h2, "p": body}
    title = next(t for kind, t in blocks if kind == "h1")

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        # Small page number at the bottom centre, like a printed manuscript.
        canvas.setFont("Helvetica", 9)
        canvas.drawCentredString(LETTER[0] / 2, 0.6 * inch, str(doc.page))

    doc = SimpleDocTemplate(
        str(path),
        pagesize=LETTER,
        leftMargin=1.75 * inch,
        rightMargin=1.75 * inch,
        topMargin=1.25 * inch,
        bottomMargin=1.25 * inch,
        title=title,
        author=AUTHOR,
        creator=AUTHOR,
        producer=AUTHOR,
        invariant=1,  # fixed creation date and document id -> reproducible bytes
    )
    flow = [Paragraph(escape(text), styles[kind]) for kind, text in blocks]
    flow.insert(1, Spacer(1, 4))
    doc.build(flow, onFirstPage=footer, onLaterPages=footer)


def write_docx(blocks: list[Block], path: Path) -> None:
    """Render blocks as a Word document with fixed metadata and zip dates."""
    document = docx.Document()
    document.styles["Normal"].font.size = Pt(11)
    for kind, text in blocks:
        if kind == "h1":
            document.add_heading(text, level=1)
        elif kind == "h2":
            document.add_heading(text, level=2)
        else:
            document.add_paragraph(text)

    props = document.core_properties
    props.title = next(t for kind, t in blocks if kind == "h1")
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.created = FIXED_DATE
    props.modified = FIXED_DATE
    props.last_printed = FIXED_DATE
    props.revision = 1

    # python-docx stamps zip entries with the current time; rewrite them with a
    # fixed timestamp so the file is byte-identical on every run.
    buf = io.BytesIO()
    document.save(buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_DATE.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, src.read(item.filename))


def write_txt(blocks: list[Block], path: Path) -> None:
    """Plain UTF-8 text: title on the first line, blank lines between blocks."""
    parts = [text for _, text in blocks]
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for stem, out_name in FILES.items():
        src = SRC_DIR / f"{stem}.md"
        out = OUT_DIR / out_name
        text = src.read_text(encoding="utf-8")
        suffix = out.suffix.lower()
        if suffix == ".md":
            shutil.copyfile(src, out)  # markdown is kept as written
        elif suffix == ".pdf":
            write_pdf(parse_markdown(text), out)
        elif suffix == ".docx":
            write_docx(parse_markdown(text), out)
        elif suffix == ".txt":
            write_txt(parse_markdown(text), out)
        else:
            raise ValueError(f"unsupported output type: {out_name}")
        print(f"{out.relative_to(ROOT)}  ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

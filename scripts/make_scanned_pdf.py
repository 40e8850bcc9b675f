"""Make tests/data/owl_creek_scanned.pdf: six book pages, printed, "scanned" and OCR'd.

A scanned book as a user has one: page images with an invisible OCR text layer, running
headers on alternating sides (the book's title on even pages, the story's on odd ones), page
numbers, and words hyphenated at line ends. The text is Ambrose Bierce's "An Occurrence at
Owl Creek Bridge" (1890, public domain; Project Gutenberg #375), sections I and II, from
tests/data/owl_creek_bridge.txt. The pages are typeset here with reportlab (justified,
hyphenated with pyphen's en_US patterns), rasterised with poppler's pdftoppm at 200 dpi,
degraded like a scan (a slight tilt, blur, noise, then 1-bit), and OCR'd with Tesseract,
whose PDF output is the image plus the recognised text: the OCR errors are real ones.

Needs (not project dependencies): `apt-get install tesseract-ocr tesseract-ocr-eng
poppler-utils` and `pip install pyphen`.

    python scripts/make_scanned_pdf.py [out.pdf]
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "tests" / "data" / "owl_creek_bridge.txt"
OUT = REPO / "tests" / "data" / "owl_creek_scanned.pdf"

W, H = 5.5 * 72, 8.5 * 72  # page (pt): a half-letter book page
MARGIN_X, TOP, BOTTOM = 0.75 * 72, 0.65 * 72, 0.7 * 72  # (pt)
FONT, SIZE, LEAD = "Times-Roman", 12, 16  # body type (pt)
FIRST_PAGE = 9  # the story starts on page 9 of the book
BOOK = "IN THE MIDST OF LIFE"  # running head of even (left) pages
STORY = "AN OCCURRENCE AT OWL CREEK BRIDGE"  # running head of odd (right) pages


def lines_of(paragraph: str, width: float, hyph: object) -> list[tuple[list[str], bool]]:
    """Greedy justified lines; a word that does not fit is hyphenated if a part fits."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    def w(s: str) -> float:
        return stringWidth(s, FONT, SIZE)

    out, line = [], []
    words = paragraph.split()
    i = 0
    while i < len(words):
        word = words[i]
        trial = " ".join([*line, word])
        if w(trial) <= width:
            line.append(word)
            i += 1
            continue
        done = False
        for head, tail in hyph.iterate(word):  # longest head first
            if w(" ".join([*line, head + "-"])) <= width and len(head) >= 2 and len(tail) >= 2:
                line.append(head + "-")
                words[i] = tail
                done = True
                break
        out.append((line, True))
        line = []
        if not done and not out[-1][0]:  # a word longer than the line: put it alone
            out[-1] = ([word], True)
            i += 1
    if line:
        out.append((line, False))
    return out


def typeset(text: str, pdf: Path) -> None:
    import pyphen
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen import canvas

    hyph = pyphen.Pyphen(lang="en_US")
    width = W - 2 * MARGIN_X
    c = canvas.Canvas(str(pdf), pagesize=(W, H))
    page = FIRST_PAGE
    y = H - TOP - 70  # the opening page starts lower, under the title

    def furniture() -> None:
        c.setFont("Times-Roman", 9.5)
        if page == FIRST_PAGE:  # chapter opening: title, no running head, number at the foot
            c.setFont("Times-Bold", 13)
            c.drawCentredString(W / 2, H - TOP - 20, STORY)
            c.setFont("Times-Roman", 12)
            c.drawCentredString(W / 2, H - TOP - 44, "I")
            c.setFont("Times-Roman", 9.5)
            c.drawCentredString(W / 2, BOTTOM - 24, str(page))
        elif page % 2 == 0:
            c.drawString(MARGIN_X, H - TOP, str(page))
            c.drawCentredString(W / 2, H - TOP, BOOK)
        else:
            c.drawCentredString(W / 2, H - TOP, STORY)
            c.drawRightString(W - MARGIN_X, H - TOP, str(page))

    furniture()
    c.setFont(FONT, SIZE)
    for para in text.split("\n\n"):
        para = para.strip()
        if para in ("II", "III"):  # a section number, centred
            y -= LEAD / 2
            c.setFont(FONT, SIZE)
            c.drawCentredString(W / 2, y, para)
            y -= LEAD * 1.5
            continue
        for k, (words, justify) in enumerate(lines_of(para, width, hyph)):
            if y < BOTTOM:
                c.showPage()
                page += 1
                furniture()
                c.setFont(FONT, SIZE)
                y = H - TOP - 28
            x = MARGIN_X + (14 if k == 0 else 0)  # paragraph indent
            room = width - (14 if k == 0 else 0)
            total = sum(stringWidth(t, FONT, SIZE) for t in words)
            gap = (room - total) / (len(words) - 1) if justify and len(words) > 1 else None
            for t in words:
                c.drawString(x, y, t)
                x += stringWidth(t, FONT, SIZE) + (gap or stringWidth(" ", FONT, SIZE))
            y -= LEAD
    c.showPage()
    c.save()


def scan(page_png: Path, rng: random.Random) -> Path:
    """A slight tilt, blur and noise, then 1-bit: what a 200-dpi office scan gives."""
    from PIL import Image, ImageFilter

    img = Image.open(page_png).convert("L")
    img = img.rotate(rng.uniform(-0.6, 0.6), resample=Image.BICUBIC, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(0.7))
    px = img.load()
    for _ in range(img.width * img.height // 400):  # specks
        x, y = rng.randrange(img.width), rng.randrange(img.height)
        px[x, y] = rng.choice((0, 90, 255))
    img = img.point(lambda v: 0 if v < 150 else 255).convert("1")
    out = page_png.with_suffix(".scan.png")
    img.save(out, dpi=(200, 200))
    return out


def main(out: Path) -> None:
    from pypdf import PdfWriter

    rng = random.Random(375)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        typeset(SRC.read_text(encoding="utf-8"), t / "book.pdf")
        subprocess.run(
            ["pdftoppm", "-r", "200", "-gray", "-png", t / "book.pdf", t / "p"], check=True
        )
        writer = PdfWriter()
        for png in sorted(t.glob("p-*.png")):
            scanned = scan(png, rng)
            base = t / png.stem
            subprocess.run(
                ["tesseract", scanned, base, "-l", "eng", "--dpi", "200", "pdf"],
                check=True,
                capture_output=True,
            )
            writer.append(str(base) + ".pdf")
        writer.add_metadata({"/Title": f"{STORY} (scanned)", "/Author": "Ambrose Bierce"})
        writer.compress_identical_objects()
        with open(out, "wb") as f:
            writer.write(f)
    print(f"{out}: {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)

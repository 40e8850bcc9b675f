"""A corpus of real prose for the end-to-end run: the HTML documentation of Python 3.11.

Why not pydoc_corpus.py: the default model (Gemma 3 270M, a base model) answers the few-shot
prompt with blank lines on pydoc's API listings (2,162 of 2,320 questions empty on the H100,
2026-12-07), so run.py kept no rows and rows/hour could not be compared. On the prose of the
manual it writes questions, as on the FAQ dev sets.

Built here, carried to the GPU machine (it has no network): the pages of Debian's
python3.11-doc (the package benchmarks/data/python_faq/README.md names) made text the way
tests/data/human_qa/build.py does (its HTML tree and blocks), each page cut at blank lines into
pieces of 1,050-1,600 characters (pydoc_corpus.pieces), one text file each, so that the default
chunking makes one chunk of each. A fifth of the pages (by a hash of the page's folder and
name) go to val/, the rest to train/. The project's own reading, chunking, dedup and selection
count the distinct chunks (pydoc_corpus.count); fewer than --min fails.

    apt-get download python3.11-doc=3.11.2-6+deb12u9 && dpkg -x python3.11-doc_*.deb root
    python benchmarks/gpu/pyhtml_corpus.py /tmp/pyhtml --from root   # write, then count
    CORPUS=/tmp/pyhtml benchmarks/gpu/build_pack.sh                  # it rides in the pack
    python benchmarks/gpu/pyhtml_corpus.py /tmp/pycorpus             # there: count only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
HTML = Path("usr/share/doc/python3.11/html")
# the manual's prose; c-api and distutils are mostly signatures, the indexes only links
PARTS = ("tutorial", "howto", "faq", "reference", "using", "library", "extending", "whatsnew",
         "installing", "distributing")  # fmt: skip

import pydoc_corpus  # noqa: E402  pieces() and count(): the same cut and count as the pydoc corpus


def human_qa():
    """tests/data/human_qa/build.py (its HTML tree and blocks()), as python_faq's build loads it."""
    sys.path.insert(0, str(REPO / "benchmarks" / "data" / "python_faq"))
    import build  # noqa: PLC0415  benchmarks/data/python_faq/build.py

    return build.human_qa()


def page_text(hq, page: Path) -> str:
    """A page's main body as text: one block per paragraph, code kept as written."""
    try:
        body = hq.main_body(page)
    except StopIteration:  # a page without role=main (redirects): no text
        return ""
    return "\n\n".join(t for _, t in hq.blocks(body) if t.strip())


def write(root: Path, dest: Path) -> dict:
    hq = human_qa()
    (dest / "train").mkdir(parents=True, exist_ok=True)
    (dest / "val").mkdir(parents=True, exist_ok=True)
    files = chars = pages = 0
    seen: set[str] = set()  # paragraphs already written (notes repeated across pages)
    for part in PARTS:
        for page in sorted((root / HTML / part).glob("*.html")):
            paras = []
            for para in page_text(hq, page).split("\n\n"):
                key = " ".join(para.split())
                if key and key not in seen:
                    seen.add(key)
                    paras.append(para)
            name = f"{part}__{page.stem}"
            split = "val" if zlib.crc32(name.encode()) % 5 == 0 else "train"
            got = pydoc_corpus.pieces("\n\n".join(paras))
            for j, p in enumerate(got):
                (dest / split / f"{name}__{j:03d}.txt").write_text(p, encoding="utf-8")
            files, chars, pages = files + len(got), chars + sum(map(len, got)), pages + bool(got)
    return {"pages": pages, "files": files, "chars": chars}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path, help="the corpus folder (train/, val/)")
    ap.add_argument(
        "--from",
        dest="root",
        type=Path,
        help="python3.11-doc unpacked (dpkg -x): "
        "write the corpus from it first; without it, count DEST only",
    )
    ap.add_argument("--min", type=int, default=2000, help="fewest distinct chunks used")
    ap.add_argument("--out", default=os.environ.get("OUT") or None)
    args = ap.parse_args()
    t = time.time()
    line = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "workload": "e2e", "way": "corpus"}
    line |= {"source": "python3.11-doc 3.11.2-6+deb12u9 html", "dir": str(args.dest)}
    if args.root:
        line |= write(args.root, args.dest)
    return pydoc_corpus.report(line, args.dest, t, args.out, args.min)


if __name__ == "__main__":
    sys.exit(main())

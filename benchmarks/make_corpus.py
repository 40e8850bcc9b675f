"""A large corpus for end-to-end speed runs: copies of the sample essays, every chunk distinct.

The sample corpus (data/movies_src/*.md, the texts of data/movies/) gives ~50 selected
chunks; an end-to-end run at speed wants thousands. Each essay section (a heading and its
paragraphs, ~1,500 characters: the size of a PDF page of data/movies/) becomes a text file,
so that with the default chunking (1,024-token chunks, 1,000-2,000 characters kept) it makes
one chunk, as a page does. Copy k has "(k) " in front of every paragraph, so its chunks differ
from every other copy's (chunk ids are content hashes: identical chunks would share their
row keys) and keep their film words. Copies go to DIR/train and DIR/val:

    python benchmarks/make_corpus.py /tmp/bigcorpus --copies 36 --val-copies 12
    python run.py corpus.dir=/tmp/bigcorpus 'corpus.train_files=[train/*.txt]' \
        'corpus.val_files=[val/*.txt]' ...

A copy is 86 files and 86 chunks, 56 of them selected; 36 copies (24 train, 12 val) make
3,096 chunks, 2,016 selected (1,344 train, 672 val): enough for num_rows=500 in both splits. Plain text only: no PDF or DOCX reader is needed where it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tagged(text: str, k: int) -> str:
    """Every paragraph (not headings) of `text` starts with "(k) "."""
    out = []
    for para in text.split("\n\n"):
        stripped = para.lstrip()
        out.append(para if not stripped or stripped.startswith("#") else f"({k}) {para}")
    return "\n\n".join(out)


def sections(text: str) -> list[str]:
    """The essay cut before each heading; the title line stays with the first section."""
    parts, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("## ") and any(x.strip() and not x.startswith("#") for x in cur):
            parts.append("".join(cur))
            cur = []
        cur.append(line)
    parts.append("".join(cur))
    return [p.strip() + "\n" for p in parts if p.strip()]


def make(dest: Path, copies: int, val_copies: int, src: Path = REPO / "data" / "movies_src") -> int:
    """Write the copies; returns the number of files."""
    essays = sorted(src.glob("*.md"))
    n = 0
    for k in range(copies):
        split = "val" if k >= copies - val_copies else "train"
        (dest / split).mkdir(parents=True, exist_ok=True)
        for p in essays:
            for j, part in enumerate(sections(p.read_text(encoding="utf-8"))):
                target = dest / split / f"{p.stem}__s{j:02d}__copy{k:03d}.txt"
                target.write_text(tagged(part, k), encoding="utf-8")
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dest", type=Path)
    ap.add_argument("--copies", type=int, default=36, help="copies of the 15 essays in all")
    ap.add_argument("--val-copies", type=int, default=12, help="of which go to val/")
    a = ap.parse_args()
    if not 0 < a.val_copies < a.copies:
        raise SystemExit("error: --val-copies: must be between 0 and --copies")
    print(f"{make(a.dest, a.copies, a.val_copies)} files in {a.dest}")


if __name__ == "__main__":
    main()

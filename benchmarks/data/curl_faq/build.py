"""Rebuild the curl_faq dev set (docs/, queries.jsonl) from Debian's libcurl4-doc (README.md).

    apt-get download libcurl4-doc=7.88.1-10+deb12u15 && dpkg -x libcurl4-doc_*.deb root
    python benchmarks/data/curl_faq/build.py root

Stdlib only. The FAQ (usr/share/doc/libcurl4/FAQ.gz, curl's docs/FAQ) opens with a table of
contents: categories "N. Title" and questions "N.M Title" (and a few "N.M.K" sub-items). Every
N.M question of it, in order, is one pair. Query: its title as the table of contents writes
it. Document: the body's text after that question's own heading line, up to the next N.M
heading or category heading, its common indentation removed and its blank edges stripped; the
N.M.K sub-items (4.5's HTTP status codes) stay inside their question's document.
"""

from __future__ import annotations

import gzip
import re
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/data: devset.py

import devset  # noqa: E402

PACKAGE = "libcurl4-doc"
FAQ = Path("usr/share/doc/libcurl4/FAQ.gz")
RULE = "=" * 20  # the line of '=' between the table of contents and the body


def toc_and_body(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    head, _, body = text.partition(RULE)
    toc = re.findall(r"^ +(\d+\.\d+) +(.+?) *$", head, flags=re.M)
    return toc, body.split("\n")[1:]


def pairs_of(text: str) -> list[tuple[str, str, str]]:
    """(number, title, document text) per question of the table of contents."""
    toc, lines = toc_and_body(text)
    head = text.partition(RULE)[0]
    categories = {
        f"{n}. {t}".lower() for n, t in re.findall(r"^ ?(\d+)\. +(.+?) *$", head, flags=re.M)
    }
    starts: list[int] = []  # body line of each question's heading, in table order
    pos = 0
    for number, _ in toc:
        pat = re.compile(r"^ *" + re.escape(number) + r" +\S")
        while not pat.match(lines[pos]):
            pos += 1  # IndexError: a question of the table has no heading in the body
        starts.append(pos)
        pos += 1
    out = []
    for k, (number, title) in enumerate(toc):
        end = starts[k + 1] if k + 1 < len(toc) else len(lines)
        doc = lines[starts[k] + 1 : end]
        for j, line in enumerate(doc):  # a category heading ("5. libcurl Issues") ends it too
            if line.rstrip().lower() in categories:  # at the margin; its case may differ
                doc = doc[:j]
                break
        out.append((number, title, textwrap.dedent("\n".join(doc)).strip("\n")))
    return out


def main(root: str) -> None:
    text = gzip.decompress((Path(root) / FAQ).read_bytes()).decode("utf-8")
    pairs = [(t, d, f"{PACKAGE}:{FAQ}#{n}") for n, t, d in pairs_of(text)]
    devset.write(HERE, pairs)
    print(f"{len(pairs)} pairs -> {HERE}")


if __name__ == "__main__":
    main(sys.argv[1])

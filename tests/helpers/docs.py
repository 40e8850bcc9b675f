"""README.md and the docs/ pages as the tests read them: the pages, their sections and the
commands of their ```bash blocks. The README is the front page; the rest of what it used to say
lives in docs/*.md, and every command there is held to the same rule (tests/test_readme.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def pages() -> list[Path]:
    """README.md, then every docs/ page by name."""
    return [README, *sorted(DOCS.glob("*.md"))]


def name(page: Path) -> str:
    """A page as the tests name it: its path from the repo root."""
    return page.relative_to(REPO).as_posix()


def page(rel: str) -> str:
    return (REPO / rel).read_text(encoding="utf-8")


def headings(text: str) -> Iterator[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside fenced blocks."""
    fenced = False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#{1,6}) (.+)", line)):
            yield i, len(m.group(1)), m.group(2).strip()


def section(rel: str, title: str) -> str:
    """The text of the section of page `rel` whose heading starts with `title`, heading line
    included, up to the next heading of the same or a higher level."""
    text = page(rel)
    lines = text.splitlines()
    found = [(i, lvl) for i, lvl, t in headings(text) if t.startswith(title)]
    assert len(found) == 1, f"{rel}: {len(found)} headings start with {title!r}"
    start, level = found[0]
    end = next((i for i, lvl, _ in headings(text) if i > start and lvl <= level), len(lines))
    return "\n".join(lines[start:end])


def bash_blocks(text: str) -> list[str]:
    """The bodies of the ```bash blocks of a text."""
    return re.findall(r"^```bash\n(.*?)\n```$", text, re.DOTALL | re.MULTILINE)


def run_py_lines(text: str) -> list[str]:
    """Every `python run.py ...` of the text's bash blocks, from `python run.py` on,
    `\\` continuations joined."""
    out = []
    for block in bash_blocks(text):
        for ln in block.replace("\\\n", " ").splitlines():
            if (i := ln.find("python run.py")) >= 0:
                out.append(ln[i:].strip())
    return out

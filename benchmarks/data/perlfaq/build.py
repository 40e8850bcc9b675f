"""Rebuild the perlfaq dev set (docs/, queries.jsonl) from Debian's perl-doc package (README.md).

    apt-get download perl-doc=5.36.0-7+deb12u4 && dpkg -x perl-doc_*.deb root
    python benchmarks/data/perlfaq/build.py root

Stdlib only. Every =head2 of perlfaq1.pod ... perlfaq9.pod, in file order, is one pair. Query:
the heading as plain text. Document: the POD after the heading up to the next =head (of any
level), as plain text (perldoc's rendering, simplified):
- an ordinary paragraph is one line: its lines joined, runs of whitespace one space;
- a verbatim (indented) paragraph is kept as written: code;
- =item labels other than bullets (* or -) are a paragraph of their own; =over, =back, =pod,
  =cut, =encoding, =for and =begin ... =end blocks are left out;
- formatting codes: B<>, I<>, C<>, F<>, S<> keep their text; X<> (index entries) and Z<> go;
  E<lt>, E<gt>, E<verbar>, E<sol>, E<quot>, E<amp>, E<apos> and numeric E<> are the character;
  L<text|target> is text, L<name/"section"> is '"section" in name', L<name> is name;
  double-angle forms (C<< $a->b >>) as the POD spec says.
Paragraphs are joined by a blank line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/data: devset.py

import devset  # noqa: E402

PACKAGE = "perl-doc"
POD = Path("usr/share/perl/5.36.0/pod")
FILES = tuple(f"perlfaq{i}.pod" for i in range(1, 10))
ENTITIES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&", "apos": "'"}
OPEN = re.compile(r"([A-Z])(<+)")


def _end(s: str, start: int, n: int) -> tuple[int, int]:
    """(end of the code's content, index after its closing delimiter) for a code whose
    content starts at `start` and that opened with n '<'."""
    if n > 1:  # C<< ... >>: content ends at whitespace then n '>'
        m = re.compile(r"\s+" + ">" * n).search(s, start)
        if m is None:
            return len(s), len(s)
        return m.start(), m.end()
    depth, i = 0, start
    while i < len(s):
        m = OPEN.match(s, i)
        if m and len(m.group(2)) == 1:
            depth, i = depth + 1, m.end()
            continue
        if s[i] == ">":
            if depth == 0:
                return i, i + 1
            depth -= 1
        i += 1
    return len(s), len(s)


def codes(s: str) -> str:
    """Formatting codes of one paragraph rendered as plain text."""
    out, i = [], 0
    while i < len(s):
        m = OPEN.search(s, i)
        if m is None:
            out.append(s[i:])
            break
        out.append(s[i : m.start()])
        letter, n = m.group(1), len(m.group(2))
        start = m.end()
        if n > 1:
            start = len(s) - len(s[start:].lstrip())  # whitespace after << is not content
        stop, i = _end(s, start, n)
        inner = s[start:stop]
        out.append(render(letter, inner))
    return "".join(out)


def render(letter: str, inner: str) -> str:
    if letter in "XZ":
        return ""
    if letter == "E":
        if inner in ENTITIES:
            return ENTITIES[inner]
        if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", inner):
            return chr(int(inner, 16 if inner.startswith("0x") else 10))
        return inner
    if letter == "L":
        return link(inner)
    return codes(inner)


def link(inner: str) -> str:
    text, bar, _ = _split_bar(inner)
    if bar:
        return codes(text)
    if re.match(r"\w+:[^:\s]\S*$", inner):  # a URL
        return inner
    name, slash, section = inner.partition("/")
    if not slash:
        if inner.startswith('"') and inner.endswith('"'):
            return codes(inner)
        return codes(inner)
    section = codes(section.strip('"'))
    return f'"{section}" in {codes(name)}' if name else f'"{section}"'


def _split_bar(inner: str) -> tuple[str, bool, str]:
    """text|target at the top level (a '|' inside a nested code does not count)."""
    depth = 0
    for i, c in enumerate(inner):
        if OPEN.match(inner, i):
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif c == "|" and depth == 0:
            return inner[:i], True, inner[i + 1 :]
    return inner, False, ""


def paragraphs(text: str) -> list[str]:
    """POD paragraphs: runs of lines between lines that are empty or whitespace only."""
    parts = re.split(r"\n(?:[ \t]*\n)+", text.replace("\r\n", "\n"))
    return [p for p in parts if p.strip()]


def pairs_of(path: Path) -> list[tuple[str, str]]:
    """(heading, text) of every =head2 of one file."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    skipping = None  # inside =begin NAME ... =end NAME
    for p in paragraphs(path.read_text(encoding="utf-8")):
        if skipping:
            if p.startswith(f"=end {skipping}"):
                skipping = None
            continue
        if p.startswith("="):
            cmd, _, rest = p.partition(" ") if " " in p.split("\n")[0] else (p.strip(), "", "")
            cmd = cmd.split("\n")[0]
            rest = " ".join(rest.split())
            if cmd.startswith("=head"):
                current = None
                if cmd == "=head2":
                    current = []
                    out.append((codes(rest).strip(), current))
            elif cmd == "=begin":
                skipping = rest.split()[0] if rest else ""
            elif cmd == "=item" and current is not None and rest not in ("*", "-", ""):
                current.append(codes(rest))
            continue  # =over, =back, =pod, =cut, =for, =encoding
        if current is None:
            continue
        if p[0] in " \t":  # verbatim: code as written
            current.append(p.rstrip())
        else:
            current.append(" ".join(codes(p).split()))
    return [(q, "\n\n".join(b)) for q, b in out]


def main(root: str) -> None:
    pairs = []
    for name in FILES:
        for q, text in pairs_of(Path(root) / POD / name):
            pairs.append((q, text, f"{PACKAGE}:{POD / name}#{q}"))
    devset.write(HERE, pairs)
    print(f"{len(pairs)} pairs -> {HERE}")


if __name__ == "__main__":
    main(sys.argv[1])

"""Stage 1b: page furniture off the text, between reading and chunking (one file at a time).

PDF text carries what a reader's eye skips: the running header (the book's title on one side,
the chapter's on the other, OCR'd a little differently on every page), the page number, and
words split at line ends (`expe-\\ndite`). Left in, the model asks about them and every chunk
of a book shares the header, which makes retrieval evaluation easier than it should be.

Like datatrove's formatters (a function text -> text, with counts), each rule is plain and
counted per file:
- `page_numbers`: a line that is only a page number ("12", "- 12 -", "Page 12 of 80", "xii")
  among the first or last `edge_lines` lines of a page.
- `furniture`: lines among the first or last `edge_lines` of a page that, once digits are
  dropped (datatrove's simplify_text does the same for near-duplicate matching) and case and
  punctuation folded, repeat on `min_share` of the pages, or of the odd or even pages
  (alternating left/right headers). Lines within `similarity` (difflib ratio) count as one,
  so OCR variants of the title go with it.
- `hyphenation`: a word split at a line end is joined, unless the document shows it is a
  real hyphen. Dictionary-free: the document is its own dictionary. `expe-\\ndite` is joined
  when `expedite` occurs elsewhere in it or nothing says otherwise; `well-\\nknown` keeps its
  hyphen when `well-known` occurs elsewhere (more often than `wellknown`), or when the halves
  make other hyphenated words there (`well-made`, `self-known`); a capital after the break
  (`Anglo-\\nSaxon`) keeps it too.
  Also across a page break, and soft hyphens (U+00AD) always go.
- `whitespace`: runs of spaces and tabs become one space, three or more line breaks two;
  control characters (glyphs a PDF font maps to nothing, like datatrove's ftfy step
  `remove_control_chars`) go.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from difflib import SequenceMatcher
from pathlib import PurePosixPath
from typing import Any

from synthgen import schema
from synthgen.records import Doc

_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[\W_]+")
_ROMAN = r"m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
# "12", "- 12 -", "[12]", "Page 12", "p. 12", "12 of 80", "12/80", "xii", OCR'd "l2"
_PAGE_NUMBER = re.compile(
    rf"^(?:page|p\.|pag\.|pág\.|página|seite|s\.|strona|str\.|strana|s\.)?\s*"
    rf"[\[(<\-–—•·*.\s]*(?P<n>(?=[\dlIO]*\d)[\dlIO]{{1,5}}|(?=[ivxlcdm])(?:{_ROMAN}))"
    rf"\s*[\])>\-–—•·*.\s]*(?:(?:of|/|de|von|z|ze|из)\s*\d{{1,5}})?\s*[.\])>\-–—•·*]*$",
    re.IGNORECASE,
)
_HYPHENS = "-\u00ad\u2010"
# a letter run, a hyphen at the line end (a space after it is an OCR habit), the next word
_BREAK = re.compile(r"([^\W\d_]+)([-\u00ad\u2010])[ \t]*\n[ \t]*([^\W\d_][\w'’]*)")
_WORDS = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]{2,}|\t")
_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


Settings = schema.Cleaning  # the `cleaning` config group (conf/cleaning/*.yaml)


def settings(c: Any) -> Settings:
    """The cleaning group's settings; None (a config from before the cleaning stage): nothing
    is cleaned. Extensions are compared in lower case."""
    if c is None:
        return Settings(apply_to=())
    s = schema.build(Settings, c)
    return dataclasses.replace(s, apply_to=tuple(str(e).lower() for e in s.apply_to))


def applies(settings: Settings, source: str) -> bool:
    return PurePosixPath(source).suffix.lower() in settings.apply_to


def clean_file(docs: list[Doc], s: Settings) -> tuple[list[Doc], dict[str, Any]]:
    """Clean the docs (pages) of one file. Returns (docs with text left, counts per rule)."""
    if not docs or not applies(s, docs[0].source):
        return docs, {}
    counts: Counter[str] = Counter()
    pages = [d.text.replace("\r\n", "\n").replace("\r", "\n").split("\n") for d in docs]
    removed: list[set[int]] = [set() for _ in pages]  # line numbers dropped, per page
    if s.page_numbers:
        for p, i in _page_numbers(pages, s.edge_lines):
            removed[p].add(i)
            counts["page_numbers"] += 1
    headers: list[str] = []
    if s.furniture and len(pages) >= s.min_pages:
        for members, text in _furniture(pages, removed, s):
            headers.append(text)
            for p, i in members:
                removed[p].add(i)
                counts["furniture_lines"] += 1
    texts = [
        "\n".join(x for i, x in enumerate(lines) if i not in removed[p])
        for p, lines in enumerate(pages)
    ]
    if s.hyphenation:
        texts = _dehyphenate(texts, counts)
    if s.whitespace:
        texts = [_whitespace(t, counts) for t in texts]
    out = []
    for d, t in zip(docs, texts, strict=True):
        if t.strip():
            out.append(Doc(source=d.source, text=t, page=d.page))
        else:
            counts["pages_emptied"] += 1  # nothing but furniture on it
    info: dict[str, Any] = {"pages": len(docs), **dict(sorted(counts.items()))}
    if headers:
        info["furniture"] = headers[:10]  # one example line per repeated header or footer
    return out, info


def _edge(lines: list[str], skip: set[int], k: int) -> list[int]:
    """Line numbers of the first and last k non-empty lines of a page (not yet removed)."""
    filled = [i for i, x in enumerate(lines) if x.strip() and i not in skip]
    return sorted(set(filled[:k]) | set(filled[-k:])) if k > 0 else []


def _roman(s: str) -> int:
    vals = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
    out = 0
    for a, b in zip(s, [*s[1:], ""], strict=True):
        out += -vals[a] if b and vals[b] > vals[a] else vals[a]
    return out


def _page_numbers(pages: list[list[str]], k: int) -> list[tuple[int, int]]:
    """Edge lines that are page numbers: those whose number minus the page's position agrees
    with the other pages' ("12" on the 4th page, "13" on the 5th); "Page 12" always counts.

    A lone number that breaks the sequence (a matrix row "1", a year) is text.
    """
    found: list[tuple[int, int, int | None]] = []  # page, line, number - page (None: sure)
    for p, lines in enumerate(pages):
        for i in _edge(lines, set(), k):
            m = _PAGE_NUMBER.match(lines[i].strip())
            if not m:
                continue
            raw = m.group("n").lower()
            if re.search(r"(?i)page|seite|p\.|of|/", lines[i]):
                found.append((p, i, None))
            elif raw.isdigit() or any(c.isdigit() for c in raw):
                digits = raw.translate(str.maketrans("lio", "110"))
                if digits.isdigit():
                    found.append((p, i, int(digits) - p))
            else:
                found.append((p, i, _roman(raw) - p))
    offsets = Counter(off for _, _, off in found if off is not None)
    # the numbering: the offset most pages agree on (two at least), for arabic and roman alike
    agreed = {off for off, n in offsets.items() if n >= 2 and n == max(offsets.values())}
    return [(p, i) for p, i, off in found if off is None or off in agreed]


def _norm(line: str) -> str:
    """Digits dropped, case and punctuation folded: '12  THE HISTORY.' -> 'the history'."""
    return " ".join(_NON_WORD.sub(" ", _DIGITS.sub("", line.casefold())).split())


def _furniture(
    pages: list[list[str]], removed: list[set[int]], s: Settings
) -> list[tuple[list[tuple[int, int]], str]]:
    """Groups of edge lines that repeat on enough pages: [(members (page, line), example)]."""
    exact: dict[str, list[tuple[int, int]]] = {}
    for p, lines in enumerate(pages):
        for i in _edge(lines, removed[p], s.edge_lines):
            key = _norm(lines[i])
            if len(key) >= 3:  # "a", "" say nothing; page numbers went before
                exact.setdefault(key, []).append((p, i))
    # biggest groups first, so OCR variants (each seen once) join the real header
    groups = sorted(exact.items(), key=lambda kv: (-len({p for p, _ in kv[1]}), kv[0]))
    clusters: list[tuple[SequenceMatcher, list[tuple[int, int]]]] = []
    many = len(groups) > 1500  # a long book: only compare with groups seen on two pages
    for key, members in groups:
        for sm, cm in clusters:
            if many and len({p for p, _ in cm}) < 2:
                continue
            sm.set_seq1(key)
            if (
                sm.real_quick_ratio() >= s.similarity
                and sm.quick_ratio() >= s.similarity
                and sm.ratio() >= s.similarity
            ):
                cm.extend(members)
                break
        else:
            sm = SequenceMatcher(None, autojunk=False)
            sm.set_seq2(key)
            clusters.append((sm, list(members)))
    n = len(pages)
    parity = [sum(1 for p in range(n) if p % 2 == r) for r in (0, 1)]
    out = []
    for _, members in clusters:
        on = {p for p, _ in members}
        if len(on) < 2:
            continue
        odd_even = [sum(1 for p in on if p % 2 == r) for r in (0, 1)]
        if len(on) >= s.min_share * n or any(
            odd_even[r] >= 2 and odd_even[r] >= s.min_share * parity[r] for r in (0, 1)
        ):
            p, i = min(members)
            out.append((members, pages[p][i].strip()))
    return out


def _decide(left: str, hyphen: str, right: str, words: Counter[str]) -> bool:
    """True: join the halves (a word split at the line end); False: keep the hyphen."""
    if hyphen == "\u00ad":
        return True  # a soft hyphen is where a typesetter may break a word: always joined
    if right[:1].isupper():
        return False  # Anglo-Saxon, Franco-Prussian
    lw, rw = left.lower(), right.lower().rstrip("'’")
    joined, hyphenated = words[lw + rw], words[f"{lw}-{rw}"]
    if joined > hyphenated:
        return True
    if hyphenated:
        return False
    # the halves make hyphenated words elsewhere ("cross-ties" for "cross-\ntimber"); halves
    # of one or two letters say nothing ("in-order" is OCR for "in order", not "in-fantry")
    if len(lw) < 3 or len(rw) < 3:
        return True
    return not (words[f"{lw}-"] or words[f"-{rw}"])


def _dehyphenate(texts: list[str], counts: Counter[str]) -> list[str]:
    """Join words split at line ends (and page ends); the document is its own dictionary."""
    soft = sum(t.count("\u00ad") for t in texts)
    # words of the document away from the breaks (the halves at a break are no evidence)
    whole = "\n".join(t.strip() for t in texts)  # page breaks as line breaks
    words = Counter(w.lower() for w in _WORDS.findall(_BREAK.sub(" ", whole)))
    for w in [w for w in words if "-" in w]:  # "cross-ties" counts for "cross-" and "-ties"
        first, *_, last = w.split("-")
        words[f"{first}-"] += words[w]
        words[f"-{last}"] += words[w]

    def fix(m: re.Match[str]) -> str:
        left, hyphen, right = m.groups()
        if _decide(left, hyphen, right, words):
            counts["hyphens_joined"] += 1
            return left + right
        counts["hyphens_kept"] += 1
        return f"{left}-{right}"

    out = [_BREAK.sub(fix, t) for t in texts]
    for p in range(len(out) - 1):  # a word split across a page break
        a, b = out[p].rstrip(), out[p + 1].lstrip()
        ma = re.search(r"([^\W\d_]+)([-\u00ad\u2010])$", a)
        mb = re.match(r"([^\W\d_][\w'’]*)", b)
        if ma and mb:
            left, hyphen, right = ma.group(1), ma.group(2), mb.group(1)
            join = _decide(left, hyphen, right, words)
            counts["hyphens_joined" if join else "hyphens_kept"] += 1
            out[p] = a[: ma.start()] + (left + right if join else f"{left}-{right}")
            out[p + 1] = b[mb.end() :].lstrip(" \t")
    soft_left = sum(t.count("\u00ad") for t in out)
    if soft_left:
        out = [t.replace("\u00ad", "") for t in out]
    if soft:
        counts["soft_hyphens"] += soft
    return out


def _whitespace(text: str, counts: Counter[str]) -> str:
    text, c = _CONTROL.subn("", text)  # glyphs a PDF font maps to no character
    if c:
        counts["control_chars"] += c
    text, n = _SPACES.subn(" ", text)
    text, m = _BLANKS.subn("\n\n", text)
    lines = text.split("\n")
    stripped = [x.rstrip() for x in lines]
    counts["whitespace_runs"] += n + m + sum(a != b for a, b in zip(lines, stripped, strict=True))
    return "\n".join(stripped).strip()

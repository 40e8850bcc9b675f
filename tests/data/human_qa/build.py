"""Rebuild human_qa.jsonl from the Python FAQ in Debian's python3.11-doc package (README.md).

    apt-get download python3.11-doc && dpkg -x python3.11-doc_*.deb root
    python tests/data/human_qa/build.py root > tests/data/human_qa/human_qa.jsonl
    python tests/data/human_qa/build.py root --text howto/sorting.html > sorting.txt

Stdlib only (html.parser). Every FAQ entry of the pages below is taken in file order: a FAQ
entry is a <section> with no <section> inside it, its heading the question. The answer is the
entry's first paragraph (<p>) as written; an entry whose first block is code, or that has no
paragraph, is skipped (its answer is empty or only code). The passage is the entry's text
without its heading, grown with the following entries of the same page (headings included)
while under MIN_CHARS, block by block, and cut at a block boundary to at most MAX_CHARS.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

PACKAGE = "python3.11-doc"
FAQ = Path("usr/share/doc/python3.11/html/faq")
PAGES = ("general", "programming", "design", "library", "extending", "windows", "gui", "installed")
MIN_CHARS, MAX_CHARS = 1000, 2000  # passage length (characters), as the pipeline's chunks
VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
SKIP = {"script", "style"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []  # children: Node or str

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()


class Tree(HTMLParser):
    """The page as a tree of Nodes (Sphinx writes well-formed HTML, so a stack suffices)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def raw(node: Node) -> str:
    """The text under a node, as in the browser, without the headings' permalink mark."""
    if node.tag in SKIP or node.has_class("headerlink"):
        return ""
    return "".join(c if isinstance(c, str) else raw(c) for c in node.children)


def inline(node: Node) -> str:
    return re.sub(r"\s+", " ", raw(node)).strip()


INLINE = {"a", "span", "code", "em", "strong", "b", "i", "kbd", "abbr", "cite", "sub", "sup",
          "var", "samp", "tt", "br", "wbr"}  # fmt: skip


def blocks(node: Node) -> list[tuple[str, str]]:
    """(kind, text) of each block: 'p' paragraphs, 'code' code, 'h' headings, 'text' others."""
    if node.tag == "pre":
        return [("code", raw(node).rstrip("\n"))]
    if node.tag == "p":
        return [("p", inline(node))] if inline(node) else []
    if node.tag in HEADINGS:
        return [("h", inline(node))]
    out: list[tuple[str, str]] = []
    buf: list[Node | str] = []

    def flush() -> None:
        text = re.sub(r"\s+", " ", "".join(x if isinstance(x, str) else raw(x) for x in buf))
        if text.strip():
            out.append(("text", text.strip()))
        buf.clear()

    for c in node.children:
        if isinstance(c, str) or c.tag in INLINE:
            buf.append(c)
        else:
            flush()
            out += blocks(c)
    flush()
    return out


def main_body(page: Path) -> Node:
    tree = Tree()
    tree.feed(page.read_text(encoding="utf-8"))
    return next(n for n in tree.root.walk() if n.attrs.get("role") == "main")


def entries(page: Path) -> list[dict]:
    """Every FAQ entry of a page: id, question, its blocks (heading left out)."""
    body = main_body(page)
    out = []
    for sec in body.walk():
        if sec.tag != "section" or any(n.tag == "section" for n in list(sec.walk())[1:]):
            continue
        head = next(c for c in sec.children if isinstance(c, Node) and c.tag in HEADINGS)
        rest = Node("div", {})
        rest.children = [c for c in sec.children if c is not head]
        out.append({"id": sec.attrs["id"], "question": inline(head), "blocks": blocks(rest)})
    return out


def passage(items: list[dict], i: int) -> str:
    """Entry i's text, then the next entries' (with headings) while short; cut to MAX_CHARS."""
    texts = [t for _, t in items[i]["blocks"]]
    for nxt in items[i + 1 :]:
        if len("\n\n".join(texts)) >= MIN_CHARS:
            break
        texts += [nxt["question"]] + [t for _, t in nxt["blocks"]]
    out = texts[0]
    for t in texts[1:]:
        if len(out) + 2 + len(t) > MAX_CHARS:
            break
        out += "\n\n" + t
    return out


def kept(root: str):
    """(page name, the page's entries, index, entry) of every entry the pairs are made of."""
    for name in PAGES:
        items = entries(Path(root) / FAQ / f"{name}.html")
        for i, e in enumerate(items):
            first = next((k for k, t in e["blocks"] if k in ("p", "code")), None)
            if first != "p":
                continue  # no paragraph, or code before it: the answer is empty or only code
            yield name, items, i, e


def main(root: str) -> None:
    for name, items, i, e in kept(root):
        answer = next(t for k, t in e["blocks"] if k == "p")
        row = {
            "source": f"{PACKAGE}:{FAQ / name}.html",
            "id": f"{name}#{e['id']}",
            "question": e["question"],
            "answer": answer,
            "passage": passage(items, i),
        }
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--text":  # one page as plain text (a corpus file)
        html = Path(sys.argv[1]) / FAQ.parent / sys.argv[3]
        print("\n\n".join(t for _, t in blocks(main_body(html))))
    else:
        main(sys.argv[1])

"""Dev sets of human-written queries over a small corpus: write one, read one (stdlib only).

A dev set is a folder benchmarks/data/<name>/ holding
  docs/NNN.txt     one document per file (an FAQ answer, its question title removed)
  queries.jsonl    {"query": "...", "doc": "NNN.txt", "id": "<where it came from>"} per line,
                   the document that answers the query (one relevant document per query)
  README.md        source, licence, how it was built, counts, baseline scores
  build.py         rebuilds docs/ and queries.jsonl from the source package (stdlib only)
and the licence text of its source.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ("python_faq", "perlfaq", "curl_faq")  # every dev set in this folder
UNSEEN = ("curl_faq",)  # held out: read only to check a decision made on the others


@dataclass
class DevSet:
    name: str
    docs: dict[str, str]  # file name -> text, in file order
    queries: list[dict]  # {"query", "doc", "id"} in file order

    def first(self, n: int | None) -> DevSet:
        """The first n documents and the queries that point at them (all when n is None)."""
        if n is None:
            return self
        keep = dict(list(self.docs.items())[:n])
        return DevSet(self.name, keep, [q for q in self.queries if q["doc"] in keep])


def load(name: str, root: Path = HERE) -> DevSet:
    folder = root / name
    docs = {p.name: p.read_text(encoding="utf-8") for p in sorted((folder / "docs").glob("*.txt"))}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line) for line in f if line.strip()]
    return DevSet(name, docs, queries)


def write(folder: Path, pairs: list[tuple[str, str, str]]) -> None:
    """(query, document text, source id) pairs -> docs/NNN.txt and queries.jsonl, anew."""
    docs = folder / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    width = max(3, len(str(len(pairs))))
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for i, (query, text, source) in enumerate(pairs, 1):
            name = f"{i:0{width}d}.txt"
            (docs / name).write_text(text.strip() + "\n", encoding="utf-8")
            f.write(json.dumps({"query": query, "doc": name, "id": source}, ensure_ascii=False))
            f.write("\n")

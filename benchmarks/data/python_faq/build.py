"""Rebuild the python_faq dev set (docs/, queries.jsonl) from Debian's python3.11-doc (README.md).

    apt-get download python3.11-doc=3.11.2-6+deb12u9 && dpkg -x python3.11-doc_*.deb root
    python benchmarks/data/python_faq/build.py root

Stdlib only. The entries are those of tests/data/human_qa (its build.py, the same rule: a FAQ
entry is a <section> holding no other section; one whose first block is code, or that has no
paragraph, is skipped), in the same order. Query: the entry's heading. Document: the entry's
whole text without its heading (every block, blocks joined by a blank line), not grown with
the next entries as human_qa's passages are, so no other entry's heading is in it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))  # benchmarks/data: devset.py

import devset  # noqa: E402


def human_qa():
    path = REPO / "tests" / "data" / "human_qa" / "build.py"
    spec = importlib.util.spec_from_file_location("human_qa_build", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(root: str) -> None:
    hq = human_qa()
    pairs = []
    for name, _, _, e in hq.kept(root):
        text = "\n\n".join(t for _, t in e["blocks"])
        pairs.append((e["question"], text, f"{hq.PACKAGE}:{hq.FAQ / name}.html#{e['id']}"))
    devset.write(HERE, pairs)
    print(f"{len(pairs)} pairs -> {HERE}")


if __name__ == "__main__":
    main(sys.argv[1])

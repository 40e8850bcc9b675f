"""`python -m synthgen.schema`: write the key table of docs/configuration.md from the schema
(between its `<!-- keys -->` markers); tests/test_schema.py fails while the two differ."""

from __future__ import annotations

import sys
from pathlib import Path

from synthgen.schema import table

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN, END = "<!-- keys: written by python -m synthgen.schema -->\n", "<!-- end keys -->\n"


def with_table(text: str) -> str:
    """The page with its generated table replaced by the schema's."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + BEGIN + table() + END + tail


if __name__ == "__main__":
    new = with_table(DOC.read_text(encoding="utf-8"))
    DOC.write_text(new, encoding="utf-8")
    sys.stdout.write(f"wrote the key table of {DOC}\n")

from __future__ import annotations

from synthgen.dataset.chunking import chunk_docs
from synthgen.records import Doc

TEXT = " ".join(f"Sentence number {i} talks about the film and its director." for i in range(300))


def test_chunk_ids_are_stable_content_hashes() -> None:
    a = chunk_docs([Doc("a.txt", TEXT)], 256, 32)
    b = chunk_docs([Doc("a.txt", TEXT)], 256, 32)
    assert len(a) > 3
    assert [c.id for c in a] == [c.id for c in b]  # same file + same text = same id
    assert len({c.id for c in a}) == len(a)
    other = chunk_docs([Doc("b.txt", TEXT)], 256, 32)
    assert {c.id for c in other}.isdisjoint(c.id for c in a)  # another file, other ids
    assert all(c.source == "a.txt" for c in a)


def test_repeated_text_in_one_file_gets_distinct_ids() -> None:
    chunks = chunk_docs(
        [Doc("a.pdf", "Same page text.", "1"), Doc("a.pdf", "Same page text.", "2")], 256, 0
    )
    assert len(chunks) == 2 and chunks[0].id != chunks[1].id
    assert [c.page for c in chunks] == ["1", "2"]


def test_chunk_size_is_in_tokens() -> None:
    small = chunk_docs([Doc("a.txt", TEXT)], 128, 0)
    big = chunk_docs([Doc("a.txt", TEXT)], 512, 0)
    assert len(small) > 3 * len(big) / 2

from __future__ import annotations

import re

from synthgen.corpus.chunking import chunk_docs, cut_text, fit_chunks, join_text
from synthgen.corpus.selection import select
from synthgen.records import Chunk, Doc

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


# --- chunking.bounds=fit -----------------------------------------------------------------------

PROSE = "\n\n".join(
    " ".join(f"Paragraph {p} sentence {i} says what the module does here." for i in range(12))
    for p in range(20)
)


def no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_fit_cuts_a_long_chunk_into_even_pieces_within_the_bounds() -> None:
    long = Chunk(id="x", source="help.txt", text=PROSE, page=None)
    pieces = fit_chunks([long], 400, 1400)
    assert len(pieces) == -(-len(PROSE) // 1399)  # the fewest pieces under max_chars
    assert all(400 < len(c.text) < 1400 for c in pieces)
    sizes = [len(c.text) for c in pieces]
    assert max(sizes) - min(sizes) < 1400 / 2  # even, no tiny tail
    assert all(c.text.endswith(".") for c in pieces)  # at sentence or paragraph ends
    assert no_space("".join(c.text for c in pieces)) == no_space(PROSE)  # nothing lost
    assert all(c.source == "help.txt" for c in pieces)
    assert len({c.id for c in pieces}) == len(pieces) and "x" not in {c.id for c in pieces}
    kept, rejected = select(pieces, 400, 1400, [], "word")
    assert len(kept) == len(pieces) and not rejected


def test_fit_cuts_text_without_sentences_at_whitespace_or_hard() -> None:
    words = " ".join(f"name{i}()" for i in range(600))
    pieces = cut_text(words, 1000, 2000)
    assert all(1000 < len(p) < 2000 for p in pieces)
    assert all(re.fullmatch(r"(name\d+\(\) ?)+", p) for p in pieces)  # whole words
    assert no_space("".join(pieces)) == no_space(words)
    blob = "x" * 5000  # no whitespace at all: hard cuts, still inside the bounds
    assert [len(p) for p in cut_text(blob, 1000, 2000)] == [1667, 1667, 1666]


def test_fit_bounds_that_leave_no_even_cut_overlap_the_last_piece() -> None:
    # 1000 < len < 2000 cannot hold two pieces of a 2,001-character text: the last starts earlier
    text = PROSE[:2001]
    pieces = cut_text(text, 1000, 2000)
    assert len(pieces) == 2 and all(1000 < len(p) < 2000 for p in pieces)
    assert no_space(text).startswith(no_space(pieces[0]))
    assert no_space(text).endswith(no_space(pieces[1]))


def test_fit_joins_a_short_chunk_to_its_neighbour_of_the_same_document() -> None:
    a = Chunk("a", "f.txt", "First sentence of a file. " * 20)  # 520 characters
    tail = Chunk("t", "f.txt", "A short last sentence.")
    other = Chunk("o", "g.txt", "Another file, alone and short.")
    ok = Chunk("k", "g.txt", "Inside the bounds. " * 30)
    got = fit_chunks([a, tail, other, ok], 100, 1400)
    assert [c.source for c in got] == ["f.txt", "g.txt"]
    assert got[0].text == a.text + "\n\n" + tail.text and got[0].id not in {"a", "t", "o", "k"}
    assert got[1].text == other.text + "\n\n" + ok.text
    # too long together: the short one stays, and selection drops it as too_short
    got = fit_chunks([a, tail], 100, 540)
    assert got == [a, tail]
    assert select(got, 100, 540, [], "word")[1] == {"too_short": 1}
    # pages of a PDF are documents of their own
    p1, p2 = Chunk("1", "b.pdf", "x " * 100, "1"), Chunk("2", "b.pdf", "y.", "2")
    assert fit_chunks([p1, p2], 100, 1400) == [p1, p2]


def test_fit_joins_overlapping_chunks_with_their_overlap_once() -> None:
    shared = "This sentence is in both chunks, the overlap. "
    a = Chunk("a", "f.txt", "Start of the text. " * 30 + shared.strip())
    b = Chunk("b", "f.txt", shared + "Then the end.")
    (got,) = fit_chunks([a, b], 100, 1400)
    assert got.text == a.text + " Then the end."
    assert join_text("no overlap", "here") == "no overlap\n\nhere"


def test_fit_keeps_chunks_inside_the_bounds_and_their_ids() -> None:
    chunks = chunk_docs([Doc("a.txt", TEXT)], 256, 32)
    inside = [c for c in chunks if 200 < len(c.text) < 5000]
    assert fit_chunks(inside, 200, 5000) == inside


def test_fit_gives_repeated_pieces_distinct_ids() -> None:
    text = "Same sentence again and again. " * 100  # cut into identical pieces
    got = fit_chunks([Chunk("x", "a.txt", text), Chunk("y", "a.txt", text)], 400, 1400)
    assert len(got) > 4 and len({c.id for c in got}) == len(got)
    assert len({c.text for c in got}) < len(got)


def test_fit_is_real_chunking_then_selection() -> None:
    doc = Doc("help.txt", PROSE.replace("\n\n", "\n\n" + "word " * 400 + "\n\n"))
    chunks = chunk_docs([doc], 1024, 200)
    assert any(len(c.text) >= 2000 for c in chunks)
    dropped = select(chunks, 1000, 2000, [], "word")
    fitted = select(fit_chunks(chunks, 1000, 2000), 1000, 2000, [], "word")
    assert "too_long" in dropped[1] and "too_long" not in fitted[1]
    assert len(fitted[0]) > len(dropped[0])

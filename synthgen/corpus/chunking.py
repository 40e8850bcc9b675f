"""Stage 2: Docs -> Chunks with LlamaIndex's SentenceSplitter (the notebook's SimpleNodeParser);
with chunking.bounds=fit, chunks are then cut or joined into the length bounds (fit_chunks)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable

from synthgen.records import Chunk, Doc, short_hash


def tokenizer() -> Callable[[str], list]:
    """LlamaIndex's default chunking tokenizer (tiktoken cl100k), offline.

    LlamaIndex ships the cl100k file and points tiktoken at it only when TIKTOKEN_CACHE_DIR
    is unset; a machine that sets it elsewhere (seen on a GPU image) makes tiktoken try to
    download it. Retry with the shipped copy.
    """
    import llama_index.core
    from llama_index.core.utils import get_tokenizer

    try:
        return get_tokenizer()
    except Exception:
        shipped = os.path.join(
            os.path.dirname(llama_index.core.__file__), "_static", "tiktoken_cache"
        )
        os.environ["TIKTOKEN_CACHE_DIR"] = shipped
        return get_tokenizer()


def chunk_docs(docs: list[Doc], chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split each doc; chunk ids are content hashes, so the same file and text give the same id.

    Metadata is left out of the size budget (include_metadata=False), so chunk boundaries
    depend on the text alone, not on where the corpus folder lives.
    """
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode

    splitter = SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        include_metadata=False,
        tokenizer=tokenizer(),
    )
    seen: Counter[tuple[str, str]] = Counter()  # (source, text) -> occurrences so far
    chunks: list[Chunk] = []
    for doc in docs:
        nodes = splitter.get_nodes_from_documents([Document(text=doc.text)])
        for node in nodes:
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            n = seen[(doc.source, text)]
            seen[(doc.source, text)] += 1
            # a text repeated in one file (a running header, say) still gets distinct ids
            cid = short_hash(doc.source, text) if n == 0 else short_hash(doc.source, text, str(n))
            chunks.append(Chunk(id=cid, source=doc.source, text=text, page=doc.page))
    return chunks


# where a piece may end, best first: the index just past a paragraph break, a sentence's end,
# a line break, any whitespace
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"[.!?][\"')\]]*\s+"),
    re.compile(r"\n\s*"),
    re.compile(r"\s+"),
)
_MIN_OVERLAP = 16  # characters: a shorter match of a chunk's end and the next one's start: chance


def fit_chunks(chunks: list[Chunk], min_chars: int, max_chars: int) -> list[Chunk]:
    """chunking.bounds=fit: chunks inside min_chars < len < max_chars instead of dropped.

    Why: chunk_size counts tokens and the bounds count characters, and how many characters a
    token holds depends on the text; on the plain-text help of Python modules the notebook's
    1,024 tokens made chunks over 2,000 characters, and 2,174 of 2,477 were dropped as too long.
    Here a chunk of max_chars or more is cut into the fewest even pieces inside the bounds,
    each ending at a paragraph break, a sentence's end or whitespace near its even share (a
    hard cut only where none is near); nothing but whitespace at a cut is lost. A chunk of
    min_chars or less is joined to its neighbour of the same document (previous, else next;
    their shared overlap once) where the join stays under max_chars; otherwise it stays, and
    selection drops it as too_short. A chunk inside the bounds keeps its id; a piece or a join
    gets a content hash of source and text, like chunk_docs.
    """
    pieces: list[tuple[Chunk, str | None]] = []  # (chunk it came from, new text or None)
    for c in chunks:
        if len(c.text) >= max_chars:
            pieces += [(c, t) for t in cut_text(c.text, min_chars, max_chars)]
        else:
            pieces.append((c, None))
    return _with_ids(_join_short(pieces, min_chars, max_chars))


def cut_text(text: str, min_chars: int, max_chars: int) -> list[str]:
    """`text` in the fewest even pieces with min_chars < len < max_chars, cut where _cut_at
    finds a boundary. Where the bounds allow no such pieces (with max_chars < 2 * min_chars
    some lengths cannot be split so), the last piece starts earlier, overlapping the one
    before it as neighbouring chunks do, rather than be too short."""
    size = len(text)
    n = -(-size // (max_chars - 1))  # fewest pieces under max_chars
    out: list[str] = []
    start = 0
    for left in range(n, 1, -1):  # pieces still to make, this one included
        rest = size - start
        target = start + rest / left  # even share of what is left
        # this piece inside the bounds, and the rest still fits in left - 1 pieces
        lo = max(start + min_chars + 1, size - (left - 1) * (max_chars - 1))
        hi = min(start + max_chars - 1, size - (left - 1) * (min_chars + 1))
        if lo > hi:  # no cut inside the bounds: this piece inside, the rest under max_chars
            lo = max(start + min_chars + 1, size - (left - 1) * (max_chars - 1))
            hi = start + max_chars - 1
        end = _cut_at(text, lo, hi, target, tolerance=rest / left / 5)
        out.append(text[start:end].strip())
        start = end
    if len(text[start:].strip()) <= min_chars and out:  # too short: start it earlier
        lo, hi = size - max_chars + 1, min(start, size - min_chars - 1)
        start = _cut_at(text, lo, hi, size - (min_chars + max_chars) / 2, tolerance=0)
    out.append(text[start:].strip())
    return [p for p in out if p]


def _cut_at(text: str, lo: int, hi: int, target: float, tolerance: float) -> int:
    """A cut in lo..hi: the best kind of boundary within `tolerance` of target (the nearest of
    that kind), else the best kind anywhere in lo..hi, else a hard cut at target."""
    found = [
        [m.end() for m in pat.finditer(text, max(lo - 8, 0), hi + 8) if lo <= m.end() <= hi]
        for pat in _BOUNDARIES
    ]
    for near in (True, False):
        for ends in found:
            ok = [e for e in ends if not near or abs(e - target) <= tolerance]
            if ok:
                return min(ok, key=lambda e: abs(e - target))
    return min(max(round(target), lo), hi)


def join_text(a: str, b: str) -> str:
    """b after a; where a ends with b's start (the chunk overlap), that part once."""
    probe = b[:_MIN_OVERLAP]
    if len(probe) == _MIN_OVERLAP:
        at = a.find(probe, max(0, len(a) - len(b)))
        while at != -1:  # the earliest match is the longest overlap
            if b.startswith(a[at:]):
                return a + b[len(a) - at :]
            at = a.find(probe, at + 1)
    return f"{a}\n\n{b}"


def _join_short(
    pieces: list[tuple[Chunk, str | None]], min_chars: int, max_chars: int
) -> list[tuple[Chunk, str | None]]:
    """Each piece of min_chars or less joined to its previous, else its next, neighbour of the
    same document, where the join stays under max_chars."""

    def text(p: tuple[Chunk, str | None]) -> str:
        return p[0].text if p[1] is None else p[1]

    def same_doc(p: tuple[Chunk, str | None], q: tuple[Chunk, str | None]) -> bool:
        return (p[0].source, p[0].page) == (q[0].source, q[0].page)

    out: list[tuple[Chunk, str | None]] = []
    i = 0
    while i < len(pieces):
        p = pieces[i]
        i += 1
        if len(text(p)) > min_chars:
            out.append(p)
            continue
        if out and same_doc(out[-1], p):
            joined = join_text(text(out[-1]), text(p))
            if len(joined) < max_chars:
                out[-1] = (out[-1][0], joined)
                continue
        if i < len(pieces) and same_doc(p, pieces[i]):
            joined = join_text(text(p), text(pieces[i]))
            if len(joined) < max_chars:
                pieces[i] = (pieces[i][0], joined)  # may still be short: tried again
                continue
        out.append(p)
    return out


def _with_ids(pieces: list[tuple[Chunk, str | None]]) -> list[Chunk]:
    """Chunks of the pieces: an untouched chunk as it was, a new text with a new id that no
    other chunk of the list has."""
    taken = {c.id for c, t in pieces if t is None}
    out = []
    for c, t in pieces:
        if t is None:
            out.append(c)
            continue
        cid, n = short_hash(c.source, t), 0
        while cid in taken:
            n += 1
            cid = short_hash(c.source, t, str(n))
        taken.add(cid)
        out.append(Chunk(id=cid, source=c.source, text=t, page=c.page))
    return out

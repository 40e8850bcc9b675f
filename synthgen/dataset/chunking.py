"""Stage 2: Docs -> Chunks with LlamaIndex's SentenceSplitter (the notebook's SimpleNodeParser)."""

from __future__ import annotations

import os
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

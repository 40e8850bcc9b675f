"""The groups that decide which text the model sees: corpus, cleaning, chunking, dedup and
keywords. Each field: its one default and its help (meaning and unit)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

from omegaconf import MISSING, DictConfig, OmegaConf

from synthgen.checks import integer, need
from synthgen.errors import ConfigError
from synthgen.schema.fields import key


@dataclass(frozen=True)
class Corpus:
    """The `corpus` group: which files, and what to do with a passage in both splits."""

    dir: str = key(
        MISSING,
        "folder of the documents; train_files and val_files are relative to it (a relative dir "
        "is taken from where you launch)",
    )
    train_files: tuple[str, ...] = key(
        MISSING,
        "file names or glob patterns, relative to dir; the notebook's TRAIN_FILES list drops "
        "in as is",
    )
    val_files: tuple[str, ...] = key(
        MISSING,
        "file names or glob patterns, relative to dir; the notebook's VAL_FILES list drops in "
        "as is",
    )
    encoding: str = key(
        "auto",
        "text files (.txt, .md, ...): auto = UTF-8, else the most plausible encoding "
        "(summary.json says which, and how sure); or force one, e.g. cp1252, latin-1, cp1250",
    )
    prepared: str | None = key(
        None,
        "a task=prepare run dir: take the chunks from there instead of reading the files "
        '(docs/scaling.md "Read and chunk once"); null = read the files',
    )
    leak: str = key(
        "warn",
        "a passage in both train and val (dedup.leak_threshold): warn = report it "
        "(summary.json, log); drop = leave the val copy out; fail = stop before the model loads",
    )

    @staticmethod
    def check(cfg: DictConfig) -> None:
        enc = cfg.corpus.encoding
        if enc != "auto":
            try:
                codecs.lookup(str(enc))
            except LookupError:
                raise ConfigError(
                    f"corpus.encoding: unknown encoding {enc!r} (auto, or a codec such as "
                    "utf-8, cp1252, latin-1, cp1250)"
                ) from None
        leak = cfg.corpus.leak
        need(
            leak in ("drop", "warn", "fail"),
            f"corpus.leak: must be drop, warn or fail, got {leak!r}",
        )


def _share(cfg: DictConfig, key: str) -> None:
    v = OmegaConf.select(cfg, key)
    need(0 <= v <= 1, f"{key}: must be a number in [0, 1], got {v!r}")


@dataclass(frozen=True)
class Cleaning:
    """The `cleaning` group: page furniture off PDF text before chunking
    (synthgen/corpus/cleaning.py, docs/corpus.md; counts per file in summary.json)."""

    apply_to: tuple[str, ...] = key(
        (".pdf",),
        "file extensions cleaned (lower case, with the dot); add .txt for hard-wrapped text files",
    )
    page_numbers: bool = key(
        True,
        'drop bare page numbers ("12", "- 12 -", "Page 12 of 80", "xii") at a page\'s top or '
        "bottom, when they follow the page order",
    )
    furniture: bool = key(
        True,
        "drop running headers and footers: top or bottom lines that repeat on most pages once "
        "digits are ignored",
    )
    edge_lines: int = key(
        3,
        "lines at the top and at the bottom of each page looked at for headers, footers and "
        "page numbers (lines)",
    )
    min_pages: int = key(
        4,
        "fewest pages a document needs before a repeated line counts as a header or footer (pages)",
    )
    min_share: float = key(
        0.5,
        "share of the pages, or of the odd or of the even pages (alternating headers), a line "
        "must repeat on (0-1)",
    )
    similarity: float = key(
        0.8,
        "difflib ratio from which two lines are one header, so OCR variants go with it (0-1)",
    )
    hyphenation: bool = key(
        True,
        'join words split at line ends ("expe-\\ndite" -> "expedite"); keeps real hyphens the '
        'document shows ("well-known")',
    )
    whitespace: bool = key(
        True,
        "collapse runs of spaces and tabs to one space and 3+ line breaks to 2; drop control "
        "characters",
    )

    @staticmethod
    def check(cfg: DictConfig) -> None:
        need(
            all(str(e).startswith(".") for e in cfg.cleaning.apply_to),
            "cleaning.apply_to: must be a list of file extensions such as [.pdf]",
        )
        integer(cfg, "cleaning.edge_lines", 0)
        integer(cfg, "cleaning.min_pages", 2)
        _share(cfg, "cleaning.min_share")
        _share(cfg, "cleaning.similarity")


@dataclass(frozen=True)
class Chunking:
    """The `chunking` group: how documents are cut (the notebook's SimpleNodeParser defaults
    and its 1000 < len(chunk) < 2000)."""

    chunk_size: int = key(1024, "SentenceSplitter chunk size (tokens, tiktoken cl100k)")
    chunk_overlap: int = key(200, "tokens shared by neighbouring chunks (tokens)")
    min_chars: int = key(1000, "a chunk is kept only if min_chars < len(text) (characters)")
    max_chars: int = key(2000, "... and len(text) < max_chars (characters)")
    bounds: Literal["drop", "fit"] = key(
        "drop",
        "a chunk outside min_chars/max_chars (characters): drop = dropped (the notebook's "
        "rule); fit = a longer one cut into pieces within them at sentence or paragraph ends, "
        "a shorter one joined to its neighbour",
    )

    @staticmethod
    def check(cfg: DictConfig) -> None:
        ch = cfg.chunking
        integer(cfg, "chunking.chunk_size", 16)
        integer(cfg, "chunking.chunk_overlap", 0)
        need(
            ch.chunk_overlap < ch.chunk_size,
            "chunking.chunk_overlap: must be < chunking.chunk_size",
        )
        integer(cfg, "chunking.min_chars", 0)
        integer(cfg, "chunking.max_chars", 1)
        need(
            ch.min_chars < ch.max_chars,
            f"chunking.min_chars: must be < chunking.max_chars ({ch.min_chars} >= {ch.max_chars})",
        )


@dataclass(frozen=True)
class Dedup:
    """The `dedup` group: passages shared by train and val, copies within a split, repeated
    questions (synthgen/corpus/dedup.py)."""

    shingle_words: int = key(5, "words per shingle when chunks are compared (words)")
    leak_threshold: float = key(
        0.5,
        "a val chunk whose shingles lie this much inside one train chunk (share of the smaller "
        "chunk's shingles, 0-1) is the same passage: reported, and handled by corpus.leak",
    )
    chunk_threshold: float = key(
        0.8,
        "within a split, a chunk this similar to an earlier one (Jaccard of shingles, 0-1) is a "
        "copy: generated once, reported, left out of <split>_corpus.json",
    )
    min_shingles: int = key(8, "chunks with fewer shingles are too short to compare (shingles)")
    question_threshold: float = key(
        0.9,
        "a question this similar to an earlier one of its split (difflib ratio after case, "
        "accents and punctuation are folded, 0-1) is a duplicate; 1.0 = exact duplicates only",
    )

    @staticmethod
    def check(cfg: DictConfig) -> None:
        integer(cfg, "dedup.shingle_words", 1)
        integer(cfg, "dedup.min_shingles", 1)
        for name in ("leak_threshold", "chunk_threshold", "question_threshold"):
            _share(cfg, f"dedup.{name}")


@dataclass(frozen=True)
class Keywords:
    """The `keywords` group: which chunks are asked about (no words: every chunk)."""

    words: tuple[str, ...] = key((), "a chunk is kept if it contains at least one of these")
    match: str = key(
        "word",
        "word = whole word, case-insensitive; substring = the notebook's exact test "
        '(`w in text`, case-sensitive: "great" hits "greatest")',
    )

    @staticmethod
    def check(cfg: DictConfig) -> None:
        need(
            cfg.keywords.match in ("word", "substring"),
            f"keywords.match: must be 'word' or 'substring', got {cfg.keywords.match!r}",
        )

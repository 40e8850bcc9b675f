"""Stage 1: files -> Docs, through LlamaIndex's SimpleDirectoryReader, one file at a time
(then each file's docs through the cleaning stage, synthgen/corpus/cleaning.py).

One file at a time so that a broken file is skipped and reported instead of stopping the
run (or being skipped silently, which SimpleDirectoryReader does with raise_on_error=False).
"""

from __future__ import annotations

import glob
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthgen import faults
from synthgen.corpus import cleaning, decoding
from synthgen.errors import ConfigError
from synthgen.records import Doc, Skipped
from synthgen.schema import Corpus  # corpus.encoding's default

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".rst"}
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS | {".pdf", ".docx"}


def resolve_files(directory: str | Path, patterns: list[str], key: str) -> list[Path]:
    """Expand names and glob patterns relative to `directory`, in list order, without repeats.

    Raises ConfigError naming `key` when the list is empty or an entry matches nothing.
    """
    directory = Path(directory)
    if not patterns:
        raise ConfigError(f"{key}: the file list is empty; list at least one file or glob pattern")
    out: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if glob.has_magic(pattern) and not (directory / pattern).is_file():  # "Notes [draft].txt"
            hits = sorted(p for p in directory.glob(pattern) if p.is_file())
            if not hits:
                raise ConfigError(f"{key}: pattern {pattern!r} matches no file in {directory}")
        else:
            path = directory / pattern
            if not path.is_file():
                raise ConfigError(f"{key}: file {pattern!r} not found in {directory}")
            hits = [path]
        out.extend(p for p in hits if p not in out)
    return out


def decode_text(data: bytes, encoding: str = Corpus.encoding) -> tuple[str, str]:
    """Decode bytes as UTF-8, else as the most plausible encoding (synthgen/corpus/decoding.py).

    Returns (text, encoding). Raises UnicodeDecodeError when no encoding fits.
    """
    d = decoding.decode_bytes(data, encoding)
    return d.text, d.encoding


def root_cause(e: BaseException) -> BaseException:
    """The reader wraps causes in "Error loading file" and tenacity's RetryError; unwrap them."""
    for _ in range(10):
        attempt = getattr(e, "last_attempt", None)  # tenacity.RetryError
        inner = attempt.exception() if attempt is not None else e.__cause__
        if inner is None or inner is e:
            break
        e = inner
    return e


def explain(e: BaseException, ext: str) -> str:
    """A reason a user can act on, from whatever the reader raised."""
    cause = root_cause(e)
    name, text = type(cause).__name__, " ".join(str(cause).split())
    if "NotDecrypted" in name or "encrypt" in text.lower():
        return f"encrypted PDF (password protected): {name}"
    if ext == ".pdf":
        return f"corrupt or unreadable PDF: {name}: {text}"
    if ext == ".docx":
        return f"broken DOCX (not a valid Word file): {name}: {text}"
    return f"{name}: {text}"


def read_file(
    path: Path, source: str, encoding: str = Corpus.encoding
) -> tuple[list[Doc], dict[str, Any] | None]:
    """Read one file. Returns (docs, how a non-UTF-8 text file was decoded, else None);
    raises with a readable message on failure."""
    from llama_index.core import SimpleDirectoryReader

    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise ValueError(f"unsupported extension {ext or '(none)'!r}; synthgen reads {supported}")
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")

    info = None
    with tempfile.TemporaryDirectory() as tmp:
        target = path
        if ext in TEXT_EXTENSIONS:
            # SimpleDirectoryReader decodes text as UTF-8 with errors="ignore": bytes of any
            # other encoding vanish without a word. Decode here and hand it clean UTF-8.
            data = path.read_bytes()
            try:
                d = decoding.decode_bytes(data, encoding)
            except UnicodeDecodeError as e:
                raise ValueError(f"cannot decode: {e.reason} (byte {e.start})") from None
            if d.encoding != "utf-8":
                info = d.info()
                if encoding != "auto" and not data.isascii() and _is_utf8(data):
                    info["warning"] = f"valid UTF-8, read as {d.encoding} as corpus.encoding says"
                target = Path(tmp) / path.name
                target.write_text(d.text, encoding="utf-8")
        reader = SimpleDirectoryReader(
            input_files=[str(target)], raise_on_error=True, errors="strict"
        )
        try:
            loaded = reader.load_data()
        except Exception as e:
            raise ValueError(explain(e, ext)) from e

    docs = [
        Doc(source=source, text=d.text, page=d.metadata.get("page_label"))
        for d in loaded
        if d.text and d.text.strip()
    ]
    if not docs:
        what = "image-only or scanned PDF?" if ext == ".pdf" else "empty document"
        raise ValueError(f"no text extracted ({what})")
    return docs, info


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def note_of(info: dict[str, Any]) -> str:
    """The one-line note of a non-UTF-8 file, for the log and dry_run."""
    if info.get("warning"):
        return f"decoded as {info['encoding']}: {info['warning']}"
    runner = info.get("runner_up")
    alt = f"; next best {runner['encoding']}" if runner else ""
    return f"decoded as {info['encoding']} (not UTF-8; {info['confidence']} confidence{alt})"


@dataclass
class ReadResult:
    """Docs of a file list, with what was skipped and how each non-UTF-8 file was decoded."""

    docs: list[Doc] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # file -> one line
    encodings: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> Decoded.info()
    cleaning: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> counts per rule


def read_corpus(
    directory: str | Path,
    files: list[Path],
    encoding: str = Corpus.encoding,
    clean: cleaning.Settings | None = None,
) -> ReadResult:
    """Read (and clean) every file; an unreadable one is skipped with its reason."""
    directory = Path(directory)
    out = ReadResult()
    for path in files:
        source = (
            path.relative_to(directory).as_posix() if path.is_relative_to(directory) else str(path)
        )
        try:
            got, info = read_file(path, source, encoding)
        except Exception as e:
            reason = " ".join(str(e).split())[:300] or type(e).__name__
            log.warning("skipped %s: %s", source, reason)
            out.skipped.append(Skipped(source, reason))
            continue
        faults.point("read")
        if info:
            out.notes[source] = note_of(info)
            out.encodings[source] = info
            log.warning("%s: %s", source, out.notes[source])
        if clean is not None:
            got, counts = cleaning.clean_file(got, clean)
            if counts:
                out.cleaning[source] = counts
            faults.point("clean")
        out.docs.extend(got)
    return out


def read_files(
    directory: str | Path, files: list[Path], encoding: str = Corpus.encoding
) -> tuple[list[Doc], list[Skipped], dict[str, str]]:
    """Read every file, uncleaned. Returns (docs in file order, skipped files, notes per file
    such as a non-UTF-8 encoding)."""
    r = read_corpus(directory, files, encoding)
    return r.docs, r.skipped, r.notes

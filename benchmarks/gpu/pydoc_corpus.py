"""A corpus of real, distinct text for the end-to-end run: the plain-text help of the stdlib.

Made where it runs (the GPU machine has no network): `pydoc` renders the help of every
importable top-level module of this Python as plain text; each module's help is cut at blank
lines into pieces of 1,050-1,600 characters, one text file each, so that the default chunking
(chunking=notebook: 1,024-token chunks, 1,000 < characters < 2,000 kept) makes one chunk of
each. A fifth of the modules (by a hash of the name) go to val/, the rest to train/.

Then the project's own reading, chunking, dedup and selection (`load_corpus`, keywords=none)
count the chunks per split, as `python run.py` will see them, and the script fails if fewer
than --min distinct chunks are used. One JSON line to DIR/results.jsonl (--out or $OUT).

    python benchmarks/gpu/pydoc_corpus.py /tmp/pycorpus --min 2000
    python run.py corpus.dir=/tmp/pycorpus 'corpus.train_files=[train/*.txt]' \
        'corpus.val_files=[val/*.txt]' keywords=none num_rows=100000 ...
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import pkgutil
import pydoc
import sys
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
# never imported for their help: they open windows, print, start servers, or are the heavy
# packages of the machine rather than the standard library
SKIP = {"antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle", "vllm", "torch"}
SKIP |= {"encodings", "lib2to3", "ensurepip", "pydoc_data"}  # codec tables, grammar files
SKIP_PARTS = {"test", "tests", "__main__", "main"}
OVERRIDES = [
    "keywords=none",
    "corpus.train_files=[train/*.txt]",
    "corpus.val_files=[val/*.txt]",
    "num_rows=100000",  # every selected chunk
]


def stdlib_names() -> list[str]:
    """Modules of the standard library importable here: the top-level ones
    (sys.stdlib_module_names) and the modules inside their packages, two levels down."""
    found = {m.name for m in pkgutil.iter_modules()}
    top = sorted(n for n in sys.stdlib_module_names if n in found and not n.startswith("_"))
    names = []
    for name in top:
        if name in SKIP:
            continue
        names.append(name)
        spec = importlib.util.find_spec(name)
        for m in pkgutil.iter_modules(spec.submodule_search_locations or []):
            names.append(f"{name}.{m.name}")
            if m.ispkg:
                sub = importlib.util.find_spec(f"{name}.{m.name}")
                paths = sub.submodule_search_locations or [] if sub else []
                names += [f"{name}.{m.name}.{x.name}" for x in pkgutil.iter_modules(paths)]
    # no tests, no scripts that run when imported, no private modules
    return [n for n in names if not any(p in SKIP_PARTS or p.startswith("_") for p in n.split("."))]


def pieces(text: str, lo: int = 1050, hi: int = 1600) -> list[str]:
    """`text` cut at blank lines into pieces of lo-hi characters (a paragraph over hi cut at
    line ends first); a piece left under lo is dropped."""
    paras = []
    for para in text.split("\n\n"):
        if len(para) < hi:
            paras.append(para)
            continue
        cur = ""
        for line in para.splitlines():
            if cur and len(cur) + len(line) + 1 >= hi:
                paras.append(cur)
                cur = ""
            cur += line[: hi - 1] + "\n"
        paras.append(cur)
    out, cur = [], ""
    for p in paras:
        if cur and len(cur) + 2 + len(p) >= hi:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{p}" if cur else p
    out.append(cur)
    return [p.strip() + "\n" for p in out if lo <= len(p.strip()) < hi]


def drop_inherited(text: str) -> str:
    """pydoc's "... inherited from builtins.X:" sections of each class (the same text under
    every exception class) cut out, up to the class's next section."""
    out, skip = [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|") and " inherited from builtins." in s:
            skip = True
        elif skip and (s.startswith("|  ---") or not s.startswith("|")):
            skip = False
        if not skip:
            out.append(line)
    return "\n".join(out)


def write(dest: Path) -> dict:
    warnings.simplefilter("ignore")
    (dest / "train").mkdir(parents=True, exist_ok=True)
    (dest / "val").mkdir(parents=True, exist_ok=True)
    files = chars = modules = 0
    seen: set[str] = set()  # paragraphs already written: pydoc repeats its boilerplate
    for name in stdlib_names():
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                module = importlib.import_module(name)
                text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        except BaseException:  # noqa: BLE001  a module that will not import here: left out
            continue
        paras = []
        for para in drop_inherited(text).split("\n\n"):
            key = " ".join(para.split())
            if key and key not in seen and "MODULE REFERENCE" not in para:
                seen.add(key)
                paras.append(para)
        top = name.split(".")[0]  # a package and its modules in one split: no leak
        split = "val" if zlib.crc32(top.encode()) % 5 == 0 else "train"
        got = pieces("\n\n".join(paras))
        for j, p in enumerate(got):
            (dest / split / f"{name}__{j:03d}.txt").write_text(p, encoding="utf-8")
        files, chars, modules = files + len(got), chars + sum(map(len, got)), modules + bool(got)
    return {"modules": modules, "files": files, "chars": chars}


def count(dest: Path) -> dict:
    """Chunks per split as run.py sees them (default chunking and dedup, keywords=none)."""
    from hydra import compose, initialize_config_dir

    from synthgen.corpus.load import load_corpus
    from synthgen.settings import Settings

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"corpus.dir={dest}", *OVERRIDES])
    corpus = load_corpus(Settings.from_cfg(cfg), Counter())
    out = {}
    for split, sc in corpus.items():
        c = sc.counts().to_dict()
        out[split] = {k: c[k] for k in ("files_read", "chunks_total", "chunks_kept", "chunks_used")}
        out[split]["duplicates"] = len(c["duplicate_chunks"])
        out[split]["distinct_used"] = len({ch.id for ch in sc.used})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--min", type=int, default=2000, help="fewest distinct chunks used")
    ap.add_argument("--out", default=os.environ.get("OUT") or None)
    args = ap.parse_args()
    t = time.time()
    line = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "workload": "e2e", "way": "corpus"}
    line |= {"dir": str(args.dest), "python": sys.version.split()[0], **write(args.dest)}
    return report(line, args.dest, t, args.out, args.min)


def report(line: dict, dest: Path, t0: float, out: str | None, least: int) -> int:
    """Count `dest`'s chunks into `line`, print it, append it to OUT/results.jsonl; 1 when
    fewer than `least` distinct chunks are used (pyhtml_corpus.py ends the same way)."""
    line["splits"] = count(dest)
    line["distinct_chunks_used"] = sum(s["distinct_used"] for s in line["splits"].values())
    line["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(line)
    print(text)
    if out:
        with (Path(out) / "results.jsonl").open("a") as f:
            f.write(text + "\n")
    if line["distinct_chunks_used"] < least:
        print(f"error: {line['distinct_chunks_used']} distinct chunks < --min {least}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

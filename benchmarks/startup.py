"""Per-job start time: reading the corpus files vs loading a `task=prepare` folder (CPU).

Every shard job of a sweep needs the whole corpus before its first prompt. This measures,
with `dry_run=true` (nothing generated, no weights), the wall seconds of one job's
`python run.py` from process start to exit, once reading the files and once with
`corpus.prepared=DIR`, on the sample corpus and on a generated one
(benchmarks/make_corpus.py), plus the one `task=prepare` run that pays the reading for all:

    python benchmarks/startup.py                      # sample corpus + 36 copies (3,096 files)
    python benchmarks/startup.py --copies 72 --val-copies 24

Appends one JSON line per corpus to benchmarks/results.jsonl (benchmark "startup") and a
table to benchmarks/RESULTS.md. Fields: corpus, files, chunks (train+val), kept,
prepare_wall_s (task=prepare, whole process), prepare_corpus_s (its read+chunk+dedup+select
seconds), job_files_s / job_prepared_s (dry-run job, whole process, wall) and *_cpu_s (its
user + system CPU seconds: on a shared machine the wall also counts waits for a core),
load_prepared_s (the prepared folder loaded in-process), prepared_mb (its size),
load_average (1 min, at the end), host, cpus, time, git_commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results.jsonl"
TABLE = REPO / "benchmarks" / "RESULTS.md"


def run_py(*args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of `python run.py ARGS` (fails loudly). CPU = user + system of the
    process: on a shared machine the wall seconds also count the waits for a core."""
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if p.returncode != 0:
        raise SystemExit(f"error: run.py {' '.join(args)}: {p.stderr.strip()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - t, cpu


def measure(sub: str, corpus_args: list[str], work: Path) -> dict:
    from synthgen import rundir
    from synthgen.corpus.load import load_prepared
    from synthgen.settings import Settings
    from tests.conftest import compose

    folder = work / sub / "prepared"
    prepare_wall, prepare_cpu = run_py("task=prepare", f"hydra.run.dir={folder}", *corpus_args)
    s = rundir.read_summary(folder)
    dry = ["dry_run=true", f"hydra.run.dir={work / sub / 'dry'}", *corpus_args]
    files_s, files_cpu = run_py(*dry)
    prepared_s, prepared_cpu = run_py(*dry, f"corpus.prepared={folder}")
    st = Settings.from_cfg(compose([*corpus_args, f"corpus.prepared={folder}"]))
    t = time.perf_counter()
    load_prepared(st, Counter(), None)
    load_s = time.perf_counter() - t
    sp = s["splits"]
    return {
        "benchmark": "startup",
        "files": sum(sp[x]["files_read"] + len(sp[x]["files_skipped"]) for x in sp),
        "chunks": sum(sp[x]["chunks_total"] for x in sp),
        "kept": sum(sp[x]["chunks_kept"] for x in sp),
        "prepare_wall_s": round(prepare_wall, 2),
        "prepare_cpu_s": round(prepare_cpu, 2),
        "prepare_corpus_s": round(
            sum(s["seconds"].get(k, 0) for k in ("read", "chunk", "dedup", "select")), 2
        ),
        "job_files_s": round(files_s, 2),
        "job_prepared_s": round(prepared_s, 2),
        "job_files_cpu_s": round(files_cpu, 2),
        "job_prepared_cpu_s": round(prepared_cpu, 2),
        "load_average": round(os.getloadavg()[0], 1),
        "load_prepared_s": round(load_s, 3),
        "prepared_mb": round(sum(p.stat().st_size for p in folder.glob("*.json")) / 2**20, 2),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "time": rundir.now(),
        "git_commit": rundir.versions().get("git_commit"),
    }


def table(rows: list[dict]) -> str:
    head = (
        "| corpus | files | chunks | kept | task=prepare: wall / CPU s (corpus stages s) "
        "| one job, files: wall / CPU s | one job, prepared: wall / CPU s "
        "| prepared load in-process (s) | prepared size (MB) | load average |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "".join(
        f"| {r['corpus']} | {r['files']} | {r['chunks']} | {r['kept']} | {r['prepare_wall_s']} / "
        f"{r['prepare_cpu_s']} ({r['prepare_corpus_s']}) | {r['job_files_s']} / "
        f"{r['job_files_cpu_s']} | {r['job_prepared_s']} / {r['job_prepared_cpu_s']} "
        f"| {r['load_prepared_s']} | {r['prepared_mb']} | {r['load_average']} |\n"
        for r in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--copies", type=int, default=36, help="generated corpus: essay copies")
    ap.add_argument("--val-copies", type=int, default=12, help="of which go to val/")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthgen-startup"))
    ap.add_argument("--no-sample", action="store_true", help="only the generated corpus")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    import make_corpus

    big = a.work / "corpus"
    if not big.is_dir():
        make_corpus.make(big, a.copies, a.val_copies)
    generated = [f"corpus.dir={big}", "corpus.train_files=[train/*.txt]"]
    generated.append("corpus.val_files=[val/*.txt]")
    # the copies differ by a "(k) " per paragraph: near-duplicates to the default dedup, which
    # would keep one copy; 1.0 = only identical passages are copies or leaks
    generated += ["dedup.chunk_threshold=1.0", "dedup.leak_threshold=1.0"]
    corpora = [] if a.no_sample else [("sample (data/movies)", "sample", [])]
    corpora.append((f"make_corpus.py --copies {a.copies}", "generated", generated))
    rows = []
    for name, sub, args in corpora:
        r = {"corpus": name, **measure(sub, args, a.work)}
        r["corpus"] = name
        rows.append(r)
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(json.dumps(r) + "\n")
        print(json.dumps(r), flush=True)
    text = table(rows)
    with open(TABLE, "a", encoding="utf-8") as f:
        f.write(
            f"\n## Issue 16: per-job start, files vs task=prepare ({rows[0]['time'][:10]}, "
            f"{rows[0]['cpus']} CPUs, dry_run)\n\nWritten by `benchmarks/startup.py`.\n\n{text}"
        )
    print(text)


if __name__ == "__main__":
    main()

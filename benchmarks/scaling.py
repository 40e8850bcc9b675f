"""Scale-out on one machine: N shard jobs through a Hydra launcher, merged, against N = 1.

For each engine and each N, one sweep of its own (a sweep dir per engine and N, so no shard
reuses rows another N made):

    python run.py -m hydra/launcher=ray 'shard.index=range(0,N)' shard.count=N \\
        engine=ENGINE corpus.prepared=WORK/prepared hydra.sweep.dir=WORK/ENGINE-nN ...

after one `task=prepare` into WORK/prepared (every job loads its chunks from there: the corpus
is read once). The merge runs at the sweep's end (the sweep's callback). Then, per engine and
N, one JSON line in benchmarks/results.jsonl (benchmark "scaling") and a table in
benchmarks/RESULTS.md:

- per shard: rows, output tokens, tok/s (its generate seconds), load seconds (model load),
  seconds to first row, seconds in all, CUDA_VISIBLE_DEVICES;
- merged: rows, output tokens, wall seconds (first shard's start to last shard's end),
  aggregate tok/s (output tokens / wall) and rows/hour, the sweep's wall seconds as launched
  (Ray start, merge and comparison included);
- efficiency = aggregate tok/s / (N x the N = 1 run's aggregate tok/s, same engine), and the
  same over generate seconds only (sum of shard tok/s / (N x N = 1 tok/s));
- same_keys_as_n1: the merged dataset has exactly the row keys of the N = 1 run;
  own_card: every shard saw one device and no two the same.

The GPU session (benchmarks/gpu_session.md, step `scale`):

    python benchmarks/scaling.py --ns 1,2,4 --engines static,vllm --copies 72 \\
        --set model=llama31_8b model.name_or_path=/tmp/synthgen-bench-ckpt num_rows=2000

On a CPU (tests/test_scaling_bench.py): --launcher joblib --engines dynamic, a tiny model.
Exits 1 when a merged dataset's keys differ from N = 1's or a sweep failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_py(args: list[str], log: Path, timeout: float | None) -> tuple[int, float]:
    """`python run.py ARGS` with its output in `log`; (exit code, wall seconds)."""
    t = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        f.write("python run.py " + " ".join(args) + "\n")
        f.flush()
        try:
            rc = subprocess.run(
                [sys.executable, str(REPO / "run.py"), *args],
                cwd=REPO,
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "RAY_DEDUP_LOGS": "0"},
            ).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - t


def shard_record(d: Path) -> dict[str, Any]:
    """One job dir's figures, from its summary.json."""
    from synthgen import rundir

    s = rundir.read_summary(d)
    ses = s.get("this_session", {})
    return {
        "index": s.get("shard", {}).get("index"),
        "rows": sum(s.get("rows", {}).values()),
        "output_tokens": ses.get("output_tokens"),
        "tokens_per_second": ses.get("tokens_per_second"),
        "load_seconds": s.get("seconds", {}).get("load_model"),
        "first_row_seconds": ses.get("first_row_seconds"),
        "seconds": s.get("seconds", {}).get("total"),
        "cuda_visible_devices": s.get("host", {}).get("cuda_visible_devices"),
        "engine": (ses.get("engine") or {}).get("name"),
        "corpus": s.get("corpus", {}).get("prepared"),
        "started": s.get("started"),
        "finished": s.get("finished"),
    }


def dataset_dir(sweep: Path) -> Path:
    """The merged dir of a sharded sweep; the one job dir of an N = 1 sweep."""
    from synthgen.scale import sharding

    if (sweep / "merged").is_dir():
        return sweep / "merged"
    jobs = sharding.job_dirs(sweep)
    if len(jobs) != 1:
        raise SystemExit(f"error: {sweep}: no merged dir and {len(jobs)} job dirs")
    return jobs[0].path


def row_keys(d: Path) -> set[str]:
    from synthgen import rundir
    from synthgen.records import key_of

    return {
        key_of(r)
        for s in rundir.SPLITS
        for r in json.loads((d / rundir.dataset_file(s)).read_text())
    }


def wall(shards: list[dict[str, Any]]) -> float:
    """First shard's start to last shard's end (seconds), as the merge computes it."""
    spans = [(x["started"], x["finished"]) for x in shards if x["started"] and x["finished"]]
    if not spans:
        return 0.0
    begin = min(datetime.fromisoformat(b) for b, _ in spans)
    return (max(datetime.fromisoformat(e) for _, e in spans) - begin).total_seconds()


def measure(engine: str, n: int, a: argparse.Namespace, base: list[str]) -> dict[str, Any]:
    """One sweep of N shards with one engine; its figures (before efficiency)."""
    from synthgen.scale import sharding

    sweep = a.work / f"{engine}-n{n}"
    args = [
        "-m",
        f"hydra/launcher={a.launcher}",
        f"shard.index=range(0,{n})",
        f"shard.count={n}",
        f"engine={engine}",
        f"hydra.sweep.dir={sweep}",
        *base,
    ]
    if a.launcher == "ray" and a.simulate_gpus:
        args += [f"hydra.launcher.ray.init.num_gpus={a.simulate_gpus}"]
        args += ["hydra.launcher.ray.remote.max_calls=0"]
    rc, sweep_wall = run_py(args, a.work / f"{engine}-n{n}.log", a.timeout)
    shards = [shard_record(j.path) for j in sharding.job_dirs(sweep) if j.finished]
    shards.sort(key=lambda x: x["index"])
    span = wall(shards)
    tokens = sum(x["output_tokens"] or 0 for x in shards)
    rows = sum(x["rows"] for x in shards)
    devices = [x["cuda_visible_devices"] for x in shards]
    rec: dict[str, Any] = {
        "benchmark": "scaling",
        "engine": engine,
        "n": n,
        "launcher": a.launcher,
        "exit_code": rc,
        "shards_finished": len(shards),
        "shards": shards,
        "rows": rows,
        "output_tokens": tokens,
        "wall_seconds": round(span, 1),
        "sweep_seconds": round(sweep_wall, 1),
        "aggregate_tokens_per_second": round(tokens / span, 1) if span else None,
        "rows_per_hour": round(rows / span * 3600) if span else None,
        "sum_shard_tokens_per_second": round(sum(x["tokens_per_second"] or 0 for x in shards), 1),
        "own_card": len(devices) == n and None not in devices and len(set(devices)) == n,
        "overrides": base,
    }
    if rc == 0 and len(shards) == n:
        rec["keys"] = row_keys(dataset_dir(sweep))
    return rec


def efficiency(rec: dict[str, Any], one: dict[str, Any] | None) -> None:
    """Against the N = 1 run of the same engine (None: this is it, or it failed)."""
    agg, one_agg = rec["aggregate_tokens_per_second"], one and one["aggregate_tokens_per_second"]
    rec["efficiency"] = round(agg / (rec["n"] * one_agg), 3) if agg and one_agg else None
    gen, one_gen = rec["sum_shard_tokens_per_second"], one and one["sum_shard_tokens_per_second"]
    rec["efficiency_generate"] = round(gen / (rec["n"] * one_gen), 3) if gen and one_gen else None


def table(recs: list[dict[str, Any]]) -> str:
    out = [
        "| engine | N | rows | tok/s aggregate | rows/hour | efficiency | efficiency (generate) "
        "| per shard: tok/s, load s, first row s, CUDA_VISIBLE_DEVICES | own card | same keys as N=1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        per = "; ".join(
            f"{x['tokens_per_second']}, {x['load_seconds']}, {x['first_row_seconds']}, "
            f"{x['cuda_visible_devices']}"
            for x in r["shards"]
        )
        out.append(
            f"| {r['engine']} | {r['n']} | {r['rows']} | {r['aggregate_tokens_per_second']} "
            f"| {r['rows_per_hour']} | {r['efficiency']} | {r['efficiency_generate']} "
            f"| {per} | {r['own_card']} | {r['same_keys_as_n1']} |"
        )
    return "\n".join(out) + "\n"


def corpus_args(a: argparse.Namespace) -> list[str]:
    """The generated corpus (benchmarks/make_corpus.py) when --copies is given, else none."""
    if not a.copies:
        return []
    sys.path.insert(0, str(REPO / "benchmarks"))
    import make_corpus

    big = a.work / "corpus"
    if not big.is_dir():
        make_corpus.make(big, a.copies, max(1, a.copies // 3))
    files = [
        f"corpus.dir={big}",
        "corpus.train_files=[train/*.txt]",
        "corpus.val_files=[val/*.txt]",
    ]
    # copies differ by a "(k) " per paragraph: the default dedup would keep one of each
    return [*files, "dedup.chunk_threshold=1.0", "dedup.leak_threshold=1.0"]


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--ns",
        default="1,2,4",
        help="shard counts; N = 1 is the reference, measured here or "
        "by an earlier invocation with the same --work (one N per device command)",
    )
    ap.add_argument("--engines", default="static,vllm", help="engine options")
    ap.add_argument("--launcher", default="ray", help="hydra/launcher: ray | joblib | ...")
    ap.add_argument("--simulate-gpus", type=int, default=0, help="ray: GPUs Ray believes in")
    ap.add_argument("--copies", type=int, default=0, help="make_corpus.py copies (0: sample)")
    ap.add_argument("--set", nargs="*", default=[], help="more run.py overrides (model=...)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthgen-scaling"))
    ap.add_argument("--timeout", type=float, default=None, help="seconds per sweep")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results.jsonl")
    ap.add_argument("--table", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    return ap.parse_args()


def prepare(a: argparse.Namespace, base: list[str]) -> tuple[Path, float]:
    """task=prepare into WORK/prepared, once: a later invocation (one N per device command)
    reuses it (every job checks its fingerprint)."""
    from synthgen import rundir

    prepared = a.work / "prepared"
    if rundir.is_done(prepared):
        return prepared, rundir_seconds(prepared)
    log = a.work / "prepare.log"
    rc, secs = run_py(["task=prepare", f"hydra.run.dir={prepared}", *base], log, a.timeout)
    if rc:
        raise SystemExit(f"error: task=prepare failed, see {log}")
    print(f"prepared the corpus once in {secs:.1f} s: {prepared}", flush=True)
    return prepared, secs


def rundir_seconds(d: Path) -> float:
    from synthgen import rundir

    return float(rundir.read_summary(d).get("seconds", {}).get("total", 0.0))


def sweep_record(engine: str, n: int, a: argparse.Namespace, base: list[str]) -> dict[str, Any]:
    """The figures of (engine, N): measured now, or read back from WORK/ENGINE-nN.json when an
    earlier invocation on this machine made them (so N = 1 stays the reference)."""
    saved = a.work / f"{engine}-n{n}.json"
    if saved.exists():
        rec = json.loads(saved.read_text())
        rec["keys"] = set(rec["keys"]) if rec.get("keys") is not None else None
        return {**rec, "reused": True}
    rec = measure(engine, n, a, base)
    keys = rec.get("keys")
    saved.write_text(json.dumps({**rec, "keys": sorted(keys) if keys is not None else None}))
    return {**rec, "reused": False}


def main() -> None:
    from synthgen import rundir

    a = parse()
    a.work.mkdir(parents=True, exist_ok=True)
    ns = sorted(int(x) for x in a.ns.split(","))
    base = [*corpus_args(a), *a.set]
    prepared, secs = prepare(a, base)
    base.append(f"corpus.prepared={prepared}")
    recs, ok = [], True
    for engine in a.engines.split(","):
        known = 1 in ns or (a.work / f"{engine}-n1.json").exists()
        ref = sweep_record(engine, 1, a, base) if known else None  # the reference: N = 1
        for n in ns:
            rec = ref if n == 1 else sweep_record(engine, n, a, base)
            keys = rec.pop("keys", None) if n != 1 else rec.get("keys")
            rec = {k: v for k, v in rec.items() if k != "keys"}
            rec["prepare_seconds"] = round(secs, 1)
            rec["same_keys_as_n1"] = keys is not None and ref is not None and keys == ref["keys"]
            efficiency(rec, ref)
            ok &= rec["exit_code"] == 0 and rec["same_keys_as_n1"]
            recs.append(rec)
            if rec.pop("reused"):
                continue  # its line is in the results of the invocation that measured it
            line = {**rec, "time": rundir.now(), "git_commit": rundir.versions().get("git_commit")}
            with open(a.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)
    text = table(recs)
    with open(a.table, "a", encoding="utf-8") as f:
        f.write(f"\n## Issue 16: scale-out, {a.launcher}, N = {a.ns} ({rundir.now()[:10]})\n\n")
        f.write(f"Written by `benchmarks/scaling.py`; overrides: `{' '.join(a.set)}`.\n\n{text}")
    print(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

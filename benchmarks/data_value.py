"""What a generated dataset is worth: human queries found better after tuning on its rows?

For each dev set (benchmarks/data/<name>: FAQ answers as documents, the FAQ's own questions as
queries, see benchmarks/data/devset.py) and each config:
1. generate: the dev set's documents are the corpus (corpus.dir = its docs/, one document per
   chunk: --base-overrides), `task=generate` with the config's Hydra overrides, in this process
   (synthgen.tasks.run, as run.py calls it); or take an existing run dir (--rows DIR, e.g. made
   on a GPU), or re-gate one with `task=filter` (--variants);
2. fine-tune: `task=finetune` on the run dir's train rows (MultipleNegativesRankingLoss, the
   project's own code path), once per seed (--seeds);
3. score: every human query against ALL the dev set's documents (its one relevant document:
   the answer it heads), ranked by BM25 (bm25s), the base embedder and each tuned one:
   nDCG@10, recall@1, recall@10 (synthgen.embed.retrieval).

One JSON line per dev set and config in benchmarks/results.jsonl (workload "data_value"):
dev_set, docs, queries, config {name, overrides, base_overrides, variant}, model, embedder,
rows / slots per split, train_pairs, bm25 / base / tuned (mean over seeds) metrics,
tuned_seeds (per seed), tuned_sd, delta (tuned mean - base), seconds (generate, finetune,
score, total), finetune settings, date, invocation, git_commit, machine (cpu, cpus, gpu),
versions, work dir. Without --config, --rows or --variants it scores BM25 and the base
embedder only (config "baseline"). --report appends this invocation's table to
benchmarks/RESULTS.md.

    python benchmarks/data_value.py --dev-sets python_faq,perlfaq --report              # baselines
    python benchmarks/data_value.py --dev-sets python_faq --docs 10 --seeds 1 \\
        --config notebook= --config qonly=prompt=questions_only --report
    python benchmarks/data_value.py --rows outputs/gpu_run --variants strict=filters=strict

curl_faq is the unseen set: score it only to check a choice made on the other two.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import devset  # noqa: E402  (benchmarks/data/devset.py)

RESULTS = REPO / "benchmarks" / "results.jsonl"
TABLE = REPO / "benchmarks" / "RESULTS.md"
WORKLOAD = "data_value"
# each document one chunk: no keyword filter, no length bounds, chunks larger than any document
BASE_OVERRIDES = (
    "keywords=none chunking=small chunking.chunk_size=2048 chunking.chunk_overlap=0 "
    "chunking.min_chars=0 chunking.max_chars=100000 num_rows=100000"
)
METRICS = ("ndcg@10", "recall@1", "recall@10")
RETRIEVERS = ("bm25", "base", "tuned")

log = logging.getLogger("data_value")


def say(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --- config ------------------------------------------------------------------------------------


def embedder_overrides(args: argparse.Namespace) -> list[str]:
    """The one place the embedder is chosen: the config's default embedder (conf/config.yaml)
    unless --embedder names another option of the group; --embedder-overrides adds keys
    (e.g. embedder.name_or_path=<a local folder>)."""
    out = [f"embedder={args.embedder}"] if args.embedder else []
    return out + shlex.split(args.embedder_overrides or "")


def compose(overrides: list[str]) -> Any:
    """The config run.py would get for these overrides, composed in this process."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def run_task(overrides: list[str], run_dir: Path) -> dict:
    """One task (task=... among the overrides) in run_dir, as run.py runs it; its summary."""
    from synthgen import tasks

    say("task:", shlex.join(overrides), "->", run_dir)
    try:
        return tasks.run(compose(overrides), run_dir)
    finally:
        gc.collect()


def named(spec: str, what: str) -> tuple[str, list[str]]:
    """NAME=OVERRIDES (a shell-quoted string of Hydra overrides) -> (NAME, [overrides])."""
    name, eq, rest = spec.partition("=")
    if not eq or not name or "/" in name:
        raise SystemExit(f"error: {what}: expected NAME=OVERRIDES, got {spec!r}")
    return name, shlex.split(rest)


def corpus_overrides(ds: devset.DevSet, val_docs: int) -> list[str]:
    """The dev set's documents as the corpus: the last val_docs of them are the val split."""
    names = list(ds.docs)
    if not 0 < val_docs < len(names):
        raise SystemExit(f"error: --val-docs: must be 1..{len(names) - 1} for {len(names)} docs")
    train, val = names[:-val_docs], names[-val_docs:]

    def files(xs: list[str]) -> str:
        return "[" + ",".join(f"'{x}'" for x in xs) + "]"

    return [
        f"corpus.dir={REPO / 'benchmarks' / 'data' / ds.name / 'docs'}",
        f"corpus.train_files={files(train)}",
        f"corpus.val_files={files(val)}",
    ]


# --- scoring -----------------------------------------------------------------------------------


def evaluation(ds: devset.DevSet) -> tuple[list[str], list[set[str]], list[str], list[str]]:
    """(queries, relevant docs per query, doc ids, doc texts): a query text that heads two
    entries (python_faq's "What is Python?") is one query with both documents relevant."""
    relevant: dict[str, set[str]] = {}
    for q in ds.queries:
        relevant.setdefault(q["query"], set()).add(q["doc"])
    return list(relevant), list(relevant.values()), list(ds.docs), list(ds.docs.values())


def scores(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    """nDCG@10 (synthgen.embed.retrieval), recall@1 and recall@10 (share of a query's relevant
    documents in its top k, averaged over queries)."""
    from synthgen.embed import retrieval

    m = retrieval.metrics(ranked, relevant, hits=(1, 10), at=10)
    out = {"ndcg@10": m["ndcg@10"]}
    for k in (1, 10):
        out[f"recall@{k}"] = sum(
            len(set(r[:k]) & rel) / len(rel) for r, rel in zip(ranked, relevant, strict=True)
        ) / max(1, len(ranked))
    return {k: round(v, 4) for k, v in out.items()}


def score_model(model: Any, prefix: str, batch: int, ev: tuple) -> dict[str, float]:
    from synthgen.embed import retrieval

    queries, relevant, ids, texts = ev
    ranked = retrieval.rank_embeddings(model, queries, ids, texts, 10, prefix, batch)
    return scores(ranked, relevant)


def baselines(args: argparse.Namespace, ds: devset.DevSet) -> tuple[dict, dict, float]:
    """BM25 and the base embedder on the dev set: ({retriever: metrics}, embedder info, s)."""
    from synthgen.embed import embedding, retrieval

    t = time.perf_counter()
    ev = evaluation(ds)
    queries, relevant, ids, texts = ev
    out = {"bm25": scores(retrieval.rank_bm25(queries, ids, texts, k=10), relevant)}
    cfg = compose(embedder_overrides(args))
    model = embedding.load_embedder(cfg)
    prefix, batch = embedding.query_prefix(cfg), int(cfg.embedder.batch_size)
    out["base"] = score_model(model, prefix, batch, ev)
    info = {
        "name": str(cfg.embedder.name),
        "name_or_path": str(cfg.embedder.name_or_path),
        "query_prefix": prefix,
        "max_seq_length": int(model.max_seq_length),
    }
    del model
    gc.collect()
    return out, info, time.perf_counter() - t


def tune_and_score(
    args: argparse.Namespace, ds: devset.DevSet, data: Path, work: Path
) -> tuple[list[dict], float, float]:
    """task=finetune on data's train rows once per seed, each tuned model scored on the
    human queries: ([metrics per seed], finetune seconds, scoring seconds)."""
    from synthgen.embed import embedding

    per_seed, ft_s, score_s = [], 0.0, 0.0
    ev = evaluation(ds)
    for seed in range(args.seeds):
        out = work / f"ft-seed{seed}"
        if out.exists():
            shutil.rmtree(out)  # a fresh model per seed: never resume an old checkpoint
        t = time.perf_counter()
        run_task(
            [
                "task=finetune",
                f"finetune.data={data}",
                "finetune.evaluate=false",
                f"finetune.seed={seed}",
                f"finetune.epochs={args.epochs}",
                f"finetune.lr={args.lr}",
                f"finetune.batch_size={args.batch_size}",
                "finetune.save_total_limit=1",
                *args.finetune_overrides.split(),
                *embedder_overrides(args),
            ],
            out,
        )
        ft_s += time.perf_counter() - t
        t = time.perf_counter()
        cfg = compose(embedder_overrides(args))
        model = embedding.load_embedder(cfg, out / "model", "tuned model")
        m = score_model(model, embedding.query_prefix(cfg), int(cfg.embedder.batch_size), ev)
        per_seed.append({"seed": seed, **m})
        del model
        gc.collect()
        score_s += time.perf_counter() - t
        say(f"seed {seed}:", m)
        if not args.keep_models:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            shutil.rmtree(out / "model", ignore_errors=True)
    return per_seed, ft_s, score_s


# --- one config --------------------------------------------------------------------------------


def made(data: Path) -> dict:
    """What the run dir holds, from its summary.json: rows and slots per split, rejects."""
    summary = json.loads((data / "summary.json").read_text(encoding="utf-8"))
    splits = summary.get("splits", {})
    return {
        "model": summary.get("model"),
        "prompt": summary.get("prompt"),
        "rows": summary.get("rows"),
        "slots": {s: splits[s].get("slots") for s in splits},
        "rejected": (summary.get("filters") or {}).get("rejected"),
    }


def measure(
    args: argparse.Namespace, ds: devset.DevSet, base: dict, data: Path, work: Path
) -> dict:
    """Fine-tune on one run dir's train rows and score: the line's tuned fields."""
    from synthgen.rundir.reading import load_split

    train = load_split(data, "train", "run dir")
    per_seed, ft_s, score_s = tune_and_score(args, ds, data, work)
    tuned = {k: round(statistics.fmean(s[k] for s in per_seed), 4) for k in METRICS}
    sd = {
        k: round(statistics.stdev(s[k] for s in per_seed), 4) if len(per_seed) > 1 else None
        for k in METRICS
    }
    return {
        "train_pairs": len(train.rows),
        "tuned": tuned,
        "tuned_sd": sd,
        "tuned_seeds": per_seed,
        "delta": {k: round(tuned[k] - base[k], 4) for k in METRICS},
        "finetune_s": round(ft_s, 1),
        "score_tuned_s": round(score_s, 1),
    }


def generated(
    args: argparse.Namespace, ds: devset.DevSet, overrides: list[str], work: Path
) -> Path:
    """task=generate over the dev set's documents into work/gen (resumed if it is there)."""
    run_dir = work / "gen"
    run_task(
        [
            *shlex.split(args.base_overrides),
            *corpus_overrides(ds, args.val_docs),
            *overrides,
            "task=generate",
        ],
        run_dir,
    )
    return run_dir


def refiltered(src: Path, overrides: list[str], work: Path) -> Path:
    """task=filter: src's rows through other gates into work/filtered, anew."""
    run_dir = work / "filtered"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_task(["task=filter", f"filter.data={src}", *overrides], run_dir)
    return run_dir


def rows_dev_set(args: argparse.Namespace, run_dir: Path) -> devset.DevSet:
    """The dev set (and its documents) an existing run dir was made from: its corpus.dir is a
    dev set's docs/ (or --dev-sets names one set); its corpus files pick the documents."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / "config.yaml")
    folder = Path(str(cfg.corpus.dir))
    name = folder.parent.name if folder.name == "docs" else None
    if name not in devset.NAMES:
        if len(args.dev_sets) != 1:
            raise SystemExit(
                f"error: --rows {run_dir}: its corpus.dir {folder} is no dev set's docs/; "
                "name one dev set with --dev-sets"
            )
        name = args.dev_sets[0]
    ds = devset.load(name)
    files = {str(f) for f in [*cfg.corpus.train_files, *cfg.corpus.val_files]}
    if files <= set(ds.docs):  # the named documents only (a --docs run)
        keep = {k: v for k, v in ds.docs.items() if k in files}
        ds = devset.DevSet(name, keep, [q for q in ds.queries if q["doc"] in keep])
    return ds


# --- the result line ---------------------------------------------------------------------------


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu, "host": platform.node()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "") if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib import metadata

    out = {}
    for p in ("torch", "transformers", "sentence-transformers", "bm25s"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def append(path: Path, line: dict) -> None:
    """One JSON line, on disk at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- the table ---------------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(lines: list[dict]) -> str:
    head = (
        "| dev set | config | rows train/val | slots | BM25 nDCG@10 | base nDCG@10 | tuned "
        "nDCG@10 (sd) | delta nDCG@10 | base R@1 | tuned R@1 | base R@10 | tuned R@10 | min |"
    )
    out = [head, "|" + "---|" * 13]
    for x in lines:
        rows, slots, tuned = x.get("rows") or {}, x.get("slots") or {}, x.get("tuned") or {}
        sd = (x.get("tuned_sd") or {}).get("ndcg@10")
        b, base = x["bm25"], x["base"]
        why = x.get("error_line") or x.get("note")
        cfg = x["config"]["name"] + (f" ({why})" if why else "")
        out.append(
            "| "
            + " | ".join(
                [
                    f"{x['dev_set']} ({x['docs']} docs)",
                    cfg,
                    f"{rows.get('train', '-')}/{rows.get('val', '-')}" if rows else "-",
                    str(sum(v or 0 for v in slots.values())) if slots else "-",
                    fmt(b["ndcg@10"]),
                    fmt(base["ndcg@10"]),
                    fmt(tuned.get("ndcg@10")) + (f" ({sd:.3f})" if sd is not None else ""),
                    fmt((x.get("delta") or {}).get("ndcg@10")),
                    fmt(base["recall@1"]),
                    fmt(tuned.get("recall@1")),
                    fmt(base["recall@10"]),
                    fmt(tuned.get("recall@10")),
                    f"{x['seconds']['total'] / 60:.1f}",
                ]
            )
            + " |"
        )
    return "\n".join(out)


def report(lines: list[dict], path: Path) -> None:
    if not lines:
        return
    x = lines[0]
    m = x["machine"]
    where = m["gpu"] or f"CPU ({m['cpus']} cores, {m['cpu']})"
    emb = x["embedder"]
    ft = x["finetune"]
    text = (
        f"\n## {x['date'][:10]}, data_value ({x['invocation']}): {where}\n\n"
        "Human FAQ queries against all of a dev set's documents (`benchmarks/data_value.py`); "
        f"embedder `{emb['name']}` ({emb['name_or_path']}); tuned = `task=finetune` on the "
        f"config's train rows, mean of {ft['seeds']} seed(s), {ft['epochs']} epoch(s), "
        f"lr {ft['lr']}, batch {ft['batch_size']}"
        + (f", `{' '.join(ft['overrides'])}`" if ft.get("overrides") else "")
        + "; R@k = recall@k; min = wall minutes of the "
        f"line (generation included). Commit {x['git_commit']}.\n\n" + table(lines) + "\n"
    )
    for x in lines:
        if x["config"]["overrides"]:
            text += f"\n- {x['config']['name']}: `{shlex.join(x['config']['overrides'])}`"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")
    say("table appended to", path)


# --- main --------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dev-sets", default="python_faq", help="comma list of benchmarks/data sets")
    ap.add_argument("--docs", type=int, default=None, help="first N documents only (quick runs)")
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=OVERRIDES",
        help="generate with these Hydra overrides (quoted, space-separated); repeatable",
    )
    ap.add_argument(
        "--variants",
        action="append",
        default=[],
        metavar="NAME=OVERRIDES",
        help="re-gate each config's (or --rows') run with task=filter and these overrides",
    )
    ap.add_argument(
        "--rows",
        action="append",
        default=[],
        metavar="[NAME=]RUN_DIR",
        help="score an existing run dir instead of generating (e.g. one made on a GPU)",
    )
    ap.add_argument("--base-overrides", default=BASE_OVERRIDES)
    ap.add_argument("--val-docs", type=int, default=1, help="documents in the val split")
    ap.add_argument("--embedder", default=None, help="embedder group option (default: config's)")
    ap.add_argument(
        "--embedder-overrides", default="", help="more embedder.* overrides, e.g. a local path"
    )
    ap.add_argument("--seeds", type=int, default=3, help="fine-tune seeds 0..N-1")
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--finetune-overrides",
        default="",
        help="more finetune.* overrides, e.g. 'finetune.hard_negatives=1 finetune.warmup=0'",
    )
    ap.add_argument("--keep-models", action="store_true", help="keep tuned models in --work")
    ap.add_argument("--work", type=Path, default=None, help="default /tmp/synthgen-data-value/ID")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--report", action="store_true", help="append this run's table to --table")
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--invocation", default=None)
    args = ap.parse_args(argv)
    args.dev_sets = [s for s in args.dev_sets.split(",") if s]
    for s in args.dev_sets:
        if s not in devset.NAMES:
            ap.error(f"--dev-sets: unknown set {s!r} (have {', '.join(devset.NAMES)})")
    if args.seeds < 1:
        ap.error("--seeds: at least 1")
    args.invocation = args.invocation or datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    args.work = args.work or Path("/tmp/synthgen-data-value") / args.invocation
    return args


def jobs(args: argparse.Namespace) -> list[tuple[devset.DevSet, str, list[str], Path | None]]:
    """(dev set, config name, overrides, existing run dir or None) per job; no config at all:
    one baseline job per dev set (run dir None, overrides None)."""
    out = []
    for spec in args.rows:
        name, eq, path = spec.partition("=")
        if not eq or Path(spec).expanduser().exists():  # a path that holds "=" itself
            name, path = "", spec
        run_dir = Path(path).expanduser()
        if not (run_dir / "summary.json").exists():
            raise SystemExit(f"error: --rows: {run_dir} is no finished run dir (no summary.json)")
        out.append((rows_dev_set(args, run_dir), name or run_dir.name, [], run_dir))
    for name_ds in args.dev_sets if args.config or not args.rows else []:
        ds = devset.load(name_ds).first(args.docs)
        for spec in args.config:
            name, overrides = named(spec, "--config")
            out.append((ds, name, overrides, None))
        if not args.config and not args.rows:
            out.append((ds, "baseline", None, None))
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse(argv)
    variants = [named(v, "--variants") for v in args.variants]
    todo = jobs(args)
    common = {
        "workload": WORKLOAD,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "invocation": args.invocation,
        "git_commit": git_commit(),
        "machine": (mach := machine()),
        "gpu": mach["gpu"] or "cpu",  # as benchmarks/generation.py's lines have it
        "versions": versions(),
        "finetune": {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "loss": "mnrl",
            "overrides": args.finetune_overrides.split(),
        },
    }
    base_cache: dict[tuple[str, tuple[str, ...]], tuple[dict, dict, float]] = {}
    written, failed = [], 0
    for ds, name, overrides, given in todo:
        key = (ds.name, tuple(ds.docs))
        if key not in base_cache:
            say(f"{ds.name}: {len(ds.docs)} docs, {len(ds.queries)} queries: BM25 and base")
            base_cache[key] = baselines(args, ds)
        base, emb, base_s = base_cache[key]
        say(f"{ds.name}: bm25 {base['bm25']}, base {base['base']}")
        work = args.work / ds.name / name
        t0 = time.perf_counter()
        line_base = {
            **common,
            "dev_set": ds.name,
            "unseen": ds.name in devset.UNSEEN,
            "docs": len(ds.docs),
            "queries": len(evaluation(ds)[0]),
            "embedder": emb,
            "bm25": base["bm25"],
            "base": base["base"],
        }
        if overrides is None:  # baselines only
            line = {
                **line_base,
                "config": {"name": "baseline", "overrides": [], "base_overrides": None},
                "seconds": {"score_base": round(base_s, 1), "total": round(base_s, 1)},
            }
            append(args.results, line)
            written.append(line)
            continue
        # (config name, variant overrides, run dir or the error that stopped it, seconds, the
        # folder its tuned models go to)
        sources: list[tuple[str, list[str] | None, Path | Exception, float | None, Path]] = []
        data: Path | Exception = given if given is not None else Path()
        t = time.perf_counter()
        if given is None:
            try:
                data = generated(args, ds, overrides, work)
            except Exception as e:  # one line saying so; the next config goes on
                traceback.print_exc()
                data = e
        sources.append((name, None, data, None if given else time.perf_counter() - t, work))
        for vname, vover in variants if isinstance(data, Path) else []:
            t = time.perf_counter()
            try:
                vdata: Path | Exception = refiltered(data, vover, work / f"variant-{vname}")
            except Exception as e:
                traceback.print_exc()
                vdata = e
            vwork = work / f"variant-{vname}"
            sources.append((f"{name}+{vname}", vover, vdata, time.perf_counter() - t, vwork))
        for cname, vover, data, s, folder in sources:
            line = {
                **line_base,
                "config": {
                    "name": cname,
                    "overrides": overrides,
                    "base_overrides": None if given else shlex.split(args.base_overrides),
                    "variant": vover,
                    "rows_dir": str(given) if given else None,
                },
                "work": str(folder),
            }
            t = time.perf_counter()
            try:
                if isinstance(data, Exception):
                    raise data
                line.update(made(data))
                if not (line["rows"] or {}).get("train"):  # a result, not a failure
                    line.update(train_pairs=0, tuned=None, note="no train rows: nothing tuned")
                else:
                    line.update(measure(args, ds, base["base"], data, folder))
            except Exception as e:
                from synthgen.tasks import one_line

                traceback.print_exc()
                failed += 1
                line["error_line"] = one_line(e)[:300]
            line["seconds"] = {
                "generate" if vover is None else "filter": None if s is None else round(s, 1),
                "finetune": line.get("finetune_s"),
                "score_tuned": line.pop("score_tuned_s", None),
                "score_base": round(base_s, 1),
                "total": round((s or 0) + (time.perf_counter() - t), 1),
            }
            line.pop("finetune_s", None)
            append(args.results, line)
            written.append(line)
            say("line:", json.dumps({k: line.get(k) for k in ("dev_set", "config", "delta")}))
        say(f"{ds.name} {name}: {time.perf_counter() - t0:.0f} s")
    if args.report:
        report(written, args.table)
    print(table(written))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

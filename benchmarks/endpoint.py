"""`python run.py model=openai_compatible` against a real server: rows per hour and tokens/s.

Starts the server on a checkpoint at a free port (`--serve vllm`: `vllm serve`, on the GPU
machine; `--serve transformers`: `transformers serve`, any machine), or uses one that runs
already (`--base-url URL --name MODEL`), waits for /health, then runs the pipeline through it
once per `--concurrency` value, each in a fresh run dir, exactly as a user types it (the run's
own settings in `--run-args`). Each run is one JSON line in benchmarks/results.jsonl (and
$OUT/results.jsonl) as soon as it ends, workload "endpoint": rows, generate seconds, rows_h
(rows per hour of generation), tok_s (output tokens/s), the server's prompt and completion
tokens, retries, failed requests, server start seconds; at the end a table goes to RESULTS.md.

    # GPU machine, after the checkpoint and corpus of benchmarks/gpu_session.sh step x:
    python3 benchmarks/endpoint.py --serve vllm --ckpt /tmp/synthgen-bench-ckpt \
        --concurrency 64,256 --run-args "corpus.dir=/tmp/bigcorpus ..."
    # CPU, the tiny test model (what tests/test_endpoint.py runs):
    python3 benchmarks/endpoint.py --serve transformers --ckpt DIR --concurrency 4 \
        --run-args "num_rows=2 generation.max_new_tokens=8 filters=none"
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
# `transformers serve ...` / `vllm serve ...` through this interpreter (no console script needed)
SERVERS = {
    "transformers": "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'x'; main()",
    "vllm": "import sys; from vllm.entrypoints.cli.main import main; sys.argv[0] = 'vllm'; main()",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    parts = urlsplit(url)
    try:
        c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        c.request("GET", "/health")
        return c.getresponse().status == 200
    except OSError:
        return False


def server_args(kind: str, model: Path, port: int, extra: list[str]) -> list[str]:
    args = ["serve", str(model), "--host", "127.0.0.1", "--port", str(port)]
    if kind == "transformers":
        args += ["--device", "cpu"] if not _cuda() else []
    return args + extra


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@contextmanager
def start_server(kind: str, model: Path, log: Path, timeout: float = 600, extra: list[str] = ()):
    """The server on 127.0.0.1:<free port>; yields (API root .../v1, seconds until healthy).
    The served model's name is str(model)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if kind == "transformers" and not _cuda():
        env["OMP_NUM_THREADS"] = "1"  # a shared small CPU box: spinning OpenMP threads slow it
    argv = [sys.executable, "-c", SERVERS[kind], *server_args(kind, model, port, list(extra))]
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not healthy(f"http://127.0.0.1:{port}"):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{kind} serve exited {proc.returncode}: {log.read_text()[-3000:]}"
                )
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(
                    f"{kind} serve not healthy after {timeout} s: {log.read_text()[-3000:]}"
                )
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1", round(time.perf_counter() - t0, 1)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.splitlines()[0] if out else "cpu"
    except (OSError, subprocess.SubprocessError):
        return "cpu"


def version(pkg: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def run_once(args: argparse.Namespace, url: str, name: str, concurrency: int, work: Path) -> dict:
    """One `python run.py` through the server; the line for results.jsonl."""
    run_dir = work / f"endpoint-c{concurrency}"
    cmd = [
        sys.executable,
        str(REPO / "run.py"),
        "model=openai_compatible",
        f"model.base_url={url}",
        f"model.name={name}",
        f"model.concurrency={concurrency}",
        *shlex.split(args.run_args),
        f"hydra.run.dir={run_dir}",
        "resume=false",
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.timeout)
    wall = round(time.perf_counter() - t0, 1)
    line = {"concurrency": concurrency, "wall_s": wall, "run_dir": str(run_dir)}
    if p.returncode != 0:
        return {**line, "error": p.stderr.strip().splitlines()[-1][:300] if p.stderr else "?"}
    s = json.loads((run_dir / "summary.json").read_text())
    sess, usage = s["this_session"], s["this_session"].get("usage") or {}
    rows, secs = sum(s["rows"].values()), sess["generate_seconds"]
    return {
        **line,
        "rows": rows,
        "slots": sum(v["slots"] for v in s["splits"].values()),
        "seconds": secs,
        "rows_h": round(rows / secs * 3600) if secs else None,
        "tok_s": sess["tokens_per_second"],
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cached_tokens": usage.get("cached_tokens"),
        "retries": usage.get("retries"),
        "failed": usage.get("failed"),
        "first_row_s": sess.get("first_row_seconds"),
    }


def append(paths: list[Path], line: dict) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def table(lines: list[dict]) -> str:
    head = lines[0]
    out = [
        "",
        f"### {head['date'][:10]}, {head['gpu']}, endpoint: `{head['server']}` serving "
        f"{head['model']}, invocation {head['invocation']}",
        "",
        f"`python run.py model=openai_compatible ... {head['run_args']}`",
        "",
        "| concurrency | rows | generate s | rows/h | tok/s | prompt tok | completion tok | retries | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in lines:
        if "error" in x:
            out.append(f"| {x['concurrency']} | error: {x['error']} |  |  |  |  |  |  |  |")
            continue
        out.append(
            f"| {x['concurrency']} | {x['rows']} | {x['seconds']} | {x['rows_h']} | {x['tok_s']} "
            f"| {x['prompt_tokens']} | {x['completion_tokens']} | {x['retries']} | {x['failed']} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--serve", choices=sorted(SERVERS), help="start this server on --ckpt")
    ap.add_argument("--ckpt", type=Path, help="the model folder the server loads")
    ap.add_argument("--base-url", help="a server that runs already (with --name)")
    ap.add_argument("--name", help="its served model name")
    ap.add_argument(
        "--server-args", default="", help="extra server flags, e.g. '--max-num-seqs 256'"
    )
    ap.add_argument("--concurrency", default="64", help="comma list: model.concurrency per run")
    ap.add_argument("--run-args", default="", help="run.py overrides, one string")
    ap.add_argument("--invocation", default="endpoint")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthgen-endpoint"), help="run dirs")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results.jsonl")
    ap.add_argument("--table", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    ap.add_argument(
        # an empty $OUT is no folder (argparse would make Path("") of it: the cwd)
        "--out",
        type=Path,
        default=os.environ.get("OUT") or None,
        help="also DIR/results.jsonl",
    )
    ap.add_argument("--timeout", type=float, default=540, help="seconds per run")
    args = ap.parse_args(argv)
    if bool(args.serve) == bool(args.base_url) or (args.serve and not args.ckpt):
        ap.error("give --serve KIND --ckpt DIR, or --base-url URL --name MODEL")
    args.work.mkdir(parents=True, exist_ok=True)
    paths = [args.results] + ([Path(args.out) / "results.jsonl"] if args.out else [])
    base = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "invocation": args.invocation,
        "workload": "endpoint",
        "gpu": gpu_name(),
        "server": f"{args.serve} serve" if args.serve else args.base_url,
        "server_version": version(args.serve) if args.serve else None,
        "model": str(args.ckpt or args.name),
        "run_args": args.run_args,
    }
    lines = []

    def runs(url: str, name: str, start_s: float | None) -> None:
        for c in [int(x) for x in args.concurrency.split(",")]:
            line = {**base, "server_start_s": start_s, **run_once(args, url, name, c, args.work)}
            append(paths, line)
            print(json.dumps(line), flush=True)
            lines.append(line)

    if args.serve:
        log = args.work / f"{args.serve}-serve.log"
        with start_server(args.serve, args.ckpt, log, extra=shlex.split(args.server_args)) as (
            url,
            s,
        ):
            runs(url, str(args.ckpt), s)
    else:
        runs(args.base_url, args.name, None)
    with open(args.table, "a", encoding="utf-8") as f:
        f.write(table(lines))
    return 1 if any("error" in x for x in lines) else 0


if __name__ == "__main__":
    sys.exit(main())

"""task=compare: load the runs, compute every number, write the report files."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthgen import rundir
from synthgen.compare.difficulty import retrieval_scores
from synthgen.compare.options import Options
from synthgen.compare.runs import (
    assign_labels,
    config_diff,
    load_run,
    question_tokens,
    reject_shares,
    run_metrics,
    split_counts,
)
from synthgen.compare.verdict import examples, verdict
from synthgen.embed.retrieval import KEYS
from synthgen.errors import ConfigError
from synthgen.rundir import SPLITS, is_run_dir
from synthgen.rundir.discovery import find_runs
from synthgen.tasks import TaskRun, task

log = logging.getLogger(__name__)


def build_report(paths: Iterable[str | Path], out: Path, opts_node: Any) -> dict[str, Any]:
    """Compare the runs in `paths` and write compare.{xlsx,md,html,json} and plots into `out`."""
    from synthgen.compare import report

    opts = Options.from_cfg(opts_node)
    paths = list(paths)
    runs = [load_run(d) for d in find_runs(paths)]
    assign_labels(runs)
    log.info("compare: %d runs: %s", len(runs), ", ".join(r.label for r in runs))
    table = []
    for r in runs:
        row = {"run": r.label, "dir": str(r.path), "status": r.status, "error": r.error}
        table.append({**row, **(run_metrics(r, opts) if r.ok else {})})
    scores, note = retrieval_scores(runs, opts)
    by_label = {m["run"]: m for m in table}
    for s in scores:
        by_label[s["run"]]["val_chunks"] = s["val_chunks"]
        for k in KEYS:
            by_label[s["run"]][f"{s['method']}_{k}"] = s[k]
    result = {
        "created": rundir.now(),
        "inputs": [str(p) for p in paths],
        "out": str(out),
        "options": opts.record(),
        "runs": [m["run"] for m in table],
        "metrics": table,
        "config_diff": config_diff(runs),
        "splits": [{"run": r.label, **c} for r in runs if r.ok for c in split_counts(r)],
        "rejects": reject_shares(runs),
        "retrieval": scores,
        "embedder": note,
        "verdict": verdict(table, note),
        "examples": examples(runs, opts.examples),
        "lengths": {
            r.label: {
                "question": [question_tokens(r, x) for s in SPLITS for x in r.rows.get(s, [])],
                "answer": [
                    x["tokens"]["answer"]
                    for s in SPLITS
                    for x in r.rows[s]
                    if "answer" in x.get("tokens", {})
                ],
            }
            for r in runs
            if r.ok
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    files = report.write_report(out, result)
    log.info("compare: wrote %s and %d plots into %s", ", ".join(files[:4]), len(files) - 4, out)
    return {"task": "compare", "status": "complete", "out": str(out), "files": files, **result}


@task("compare")
def compare(t: TaskRun) -> dict[str, Any]:
    """task=compare: compare.runs -> report in compare.out (default: the one sweep dir given,
    else this run's dir). The run dir gets the config and a summary, as every task's does."""
    node = t.cfg.get("compare") or {}
    runs = node.get("runs")
    paths = [runs] if isinstance(runs, str) else list(runs or [])
    if not paths:
        raise ConfigError(
            "compare.runs: give run dirs or sweep dirs, e.g. compare.runs='[outputs/multirun/X]'"
        )
    out = node.get("out")
    if not out:
        one_sweep = len(paths) == 1 and not is_run_dir(Path(paths[0]).expanduser())
        out = Path(paths[0]).expanduser() if one_sweep else t.run_dir
    result = build_report(paths, Path(out), node)
    t.save_config()
    print(f"comparison of {len(result['runs'])} runs: {Path(out) / 'compare.html'}", flush=True)
    keep = ("out", "files", "runs", "embedder", "verdict")
    return t.finish({k: result[k] for k in keep})

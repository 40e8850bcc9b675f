"""One run dir's files, loaded once, and the numbers the report computes from them.

Every number is recomputed from the run dir's own files (train/val.jsonl, rejected.jsonl,
*_corpus.json, the summary and config), so a comparison can be redone and checked by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from synthgen.compare.catalogue import PARSE_REASONS
from synthgen.compare.options import Options
from synthgen.compare.text import copies_span, distinct_n, keyword_coverage, length_stats, openings
from synthgen.gates import filters
from synthgen.generate import prompting
from synthgen.rundir import (
    REJECTED,
    SPLITS,
    SUMMARY,
    corpus_file,
    discovery,
    load_config,
    rows_file,
    writing,
)

IGNORED_KEYS = ("compare.",)  # config keys that never change a dataset


@dataclass
class Run:
    """One run dir's files, loaded once."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]  # dotted keys
    rows: dict[str, list[dict]] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)
    corpus: dict[str, dict[str, str]] = field(default_factory=dict)
    label: str = ""
    load_error: str | None = None

    @property
    def status(self) -> str:
        return "unreadable" if self.load_error else str(self.summary.get("status", "unknown"))

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    @property
    def error(self) -> str | None:
        last = self.summary.get("last_attempt_error")  # a relaunch refused; its data still stand
        return (
            self.load_error
            or self.summary.get("error")
            or (f"last attempt: {last}" if last else None)
        )


def load_run(path: Path) -> Run:
    """A broken file makes the run 'unreadable' in the report; the other runs go on."""
    run = Run(path, {}, {})
    try:
        run.summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
        cfg = OmegaConf.to_container(load_config(path), resolve=False)  # upgraded
        run.config = flatten(cfg)
        if run.summary.get("status") != "complete":
            return run
        run.rows = {s: writing.read_jsonl(path / rows_file(s)) for s in SPLITS}
        run.rejected = writing.read_jsonl(path / REJECTED)
        for s in SPLITS:
            f = path / corpus_file(s)
            run.corpus[s] = json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}
    except (OSError, ValueError) as e:  # JSONDecodeError and corrupt JSONL are ValueErrors
        run.load_error = f"{type(e).__name__}: {' '.join(str(e).split())}"
    return run


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def assign_labels(runs: list[Run]) -> None:
    """Short names: the overrides that tell a run from the others (synthgen.rundir.discovery)."""
    for r, label in zip(runs, discovery.labels([r.path for r in runs]), strict=True):
        r.label = label


def config_diff(runs: list[Run]) -> dict[str, list[Any]]:
    """Config keys whose value is not the same in every run: key -> one value per run."""
    keys = sorted(set().union(*(r.config for r in runs)))
    out = {}
    for k in keys:
        if k.startswith(IGNORED_KEYS):
            continue
        values = [r.config.get(k, "(not set)") for r in runs]
        if any(v != values[0] for v in values[1:]):
            out[k] = values
    return out


def question_tokens(run: Run, row: dict) -> float:
    """A list prompt generates a chunk's questions in one call: each gets an equal share."""
    per_call = 1
    if prompting.asks_for_list(str(run.config.get("prompt.question", ""))):
        per_call = int(run.config["prompt.questions_per_chunk"])  # upgraded: always there
    return row.get("tokens", {}).get("question", 0) / per_call


def split_counts(run: Run) -> list[dict[str, Any]]:
    """Per split: corpus counts from the summary, rows and rejects from the run's files."""
    out = []
    for s in SPLITS:
        info = run.summary.get("splits", {}).get(s, {})
        rej = Counter(f"{r['stage']}:{r['reason']}" for r in run.rejected if r["split"] == s)
        rows = len(run.rows.get(s, []))
        slots = info.get("slots", rows + sum(rej.values()))
        out.append(
            {
                "split": s,
                "files_read": info.get("files_read"),
                "files_skipped": len(info.get("files_skipped", [])),
                "chunks_total": info.get("chunks_total"),
                "chunks_kept": info.get("chunks_kept"),
                "chunks_used": info.get("chunks_used"),
                "slots": slots,
                "rows": rows,
                "rejected": sum(rej.values()),
                **{f"rejected {k}": v for k, v in sorted(rej.items())},
            }
        )
    return out


def run_metrics(run: Run, opts: Options) -> dict[str, Any]:
    """The headline numbers of one complete run (retrieval is added by retrieval_scores)."""
    rows = [r for s in SPLITS for r in run.rows.get(s, [])]
    counts = split_counts(run)
    slots = sum(c["slots"] for c in counts)
    reasons = Counter(r["reason"] for r in run.rejected)

    def rate(n: int) -> float | None:
        return n / slots if slots else None

    questions = [r["question"] for r in rows]
    q_tok = length_stats([question_tokens(run, r) for r in rows])
    # questions-only and qa_pair rows have no answer call of their own: no answer length
    a_tok = length_stats([r["tokens"]["answer"] for r in rows if "answer" in r.get("tokens", {})])
    shared, top = openings(questions)
    asked = {(r["split"], r["chunk_id"]) for r in [*rows, *run.rejected]}
    chunk_texts = [run.corpus.get(s, {}).get(cid, "") for s, cid in sorted(asked)]
    kws = run.config.get("keywords.words") or []
    match = run.config.get("keywords.match")  # rundir.upgrade_config filled it in
    gen = run.summary.get("generation") or run.summary.get("this_session") or {}
    return {
        "rows_train": len(run.rows.get("train", [])),
        "rows_val": len(run.rows.get("val", [])),
        "slots": slots,
        "reject_rate": rate(len(run.rejected)),
        "duplicate_rate": rate(reasons.get("duplicate", 0)),
        "parse_failure_rate": rate(sum(reasons.get(x, 0) for x in PARSE_REASONS)),
        "gate_reject_rate": rate(sum(reasons.get(x, 0) for x in filters.REASONS)),
        **{f"q_tokens_{k}": v for k, v in q_tok.items()},
        **{f"a_tokens_{k}": v for k, v in a_tok.items()},
        "distinct_2": distinct_n(questions, 2),
        "distinct_3": distinct_n(questions, 3),
        "copy_rate": (
            sum(copies_span(r["question"], r["doc"], opts.copy_span) for r in rows) / len(rows)
            if rows
            else None
        ),
        "same_start_rate": shared,
        "top_start": top,
        "kw_chunks": keyword_coverage(kws, match, chunk_texts),
        "kw_questions": keyword_coverage(kws, match, questions),
        "tokens_per_second": gen.get("tokens_per_second"),
        "cost_usd": usd((gen.get("usage") or {}).get("cost_usd")),
        "generate_seconds": gen.get("generate_seconds"),
        "wall_seconds": run.summary.get("seconds", {}).get("total"),
    }


def usd(cost: float | None) -> str | None:
    return None if cost is None else f"{cost:.6f}"


def reject_shares(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per 'stage:reason' seen in any complete run: each run's share of its slots."""
    ok = [r for r in runs if r.ok]
    slots = {r.label: sum(c["slots"] for c in split_counts(r)) for r in ok}
    counts = {r.label: Counter(f"{x['stage']}:{x['reason']}" for x in r.rejected) for r in ok}
    keys = sorted(set().union(*counts.values())) if counts else []
    return [
        {
            "reason": k,
            "gate": k.split(":", 1)[1] in filters.REASONS,
            **{
                label: (counts[label][k] / slots[label] if slots[label] else None)
                for label in counts
            },
        }
        for k in keys
    ]

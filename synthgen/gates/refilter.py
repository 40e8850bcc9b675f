"""task=filter: a finished run dir through the quality gates again, into a new run dir.

For tightening (or loosening) the gates after seeing the data, without generating again:

    python run.py task=filter filter.data=outputs/<run> filters=strict

No language model is loaded (the embedding gate, when on, loads only its embedder), unless
`judge=default` asks the source run's model to judge the rows the gates keep. The source
run dir is only read; the command's own run dir gets every file a generate run writes, built
from the kept rows, and a rejected.jsonl with the source's rejects plus the newly dropped rows.
The echo gate compares against the source run's prompt templates (they made its text).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from synthgen import rundir
from synthgen.errors import ConfigError, SynthgenError
from synthgen.gates import filters, judge, judge_spec, signals
from synthgen.records import Rejected, SplitCounts
from synthgen.rundir import SPLITS
from synthgen.rundir.finish import apply_in_order, finalize
from synthgen.rundir.reading import check_out_dir, run_dir_arg
from synthgen.rundir.state import RunState
from synthgen.settings import Settings
from synthgen.tasks import TaskRun, task

log = logging.getLogger(__name__)


@task("filter")
def refilter(t: TaskRun) -> dict[str, Any]:
    cfg, run_dir = t.cfg, t.run_dir
    src = run_dir_arg(OmegaConf.select(cfg, "filter.data"), "filter.data")
    check_out_dir(run_dir, src, "filter.data")
    if not rundir.is_done(src) or not rundir.has_config(src):
        raise ConfigError(
            f"filter.data: {src} is not a finished run dir (no {rundir.DONE} or "
            f"{rundir.CONFIG}); finish it first: run its command again with the same hydra.run.dir"
        )
    source_cfg = rundir.load_config(src)
    filters.check(cfg)
    judge_spec.check(cfg)
    gates = filters.Gates(cfg, source_cfg.get("prompt"))
    gates.prepare()
    state, rows, corpus = _read(src)
    source_summary = rundir.read_summary(src, default={})

    _fill_signals(gates.scorer(corpus), gates.embed_signals, rows)
    kept, dropped = _gate(gates, rows)
    run_dir.mkdir(parents=True, exist_ok=True)
    kept, judged = _judge(t, source_cfg, src, kept, dropped)
    # accepted questions (answered or not) that the question gates still accept
    questions = [
        q
        for q in state.questions
        if gates.question(q["question"], corpus[q["split"]].get(q["chunk_id"], "")) is None
        and gates.signals(q.get("signals") or {}) is None
    ]
    rejected = [*state.rejected, *dropped]
    files = _write(t, src, source_cfg, kept, rejected, questions, corpus)

    summary = _summary(source_summary, src, run_dir, rows, kept, rejected, dropped, gates.name)
    if judged is not None:
        summary["judge"] = judged
    summary.update(
        started=t.started,
        files=files,
        seconds={**source_summary.get("seconds", {}), "filter": round(t.elapsed(), 3)},
    )
    summary = t.finish(summary, done=True)
    log.info(
        "filter %s: kept train %d/%d, val %d/%d -> %s",
        gates.name,
        len(kept["train"]),
        len(rows["train"]),
        len(kept["val"]),
        len(rows["val"]),
        run_dir,
    )
    print(
        f"filters={gates.name}: kept {sum(len(v) for v in kept.values())} of "
        f"{sum(len(v) for v in rows.values())} rows ({len(dropped)} dropped) -> {run_dir}",
        flush=True,
    )
    return summary


def _read(src: Path) -> tuple[RunState, dict[str, list[dict]], dict[str, Any]]:
    """The source run dir's state (rejects, accepted questions), its rows per split in dataset
    order, and its retrieval corpus per split; a damaged file is one line naming filter.data."""
    try:
        state = RunState.load(src, repair=False)
        rows = {s: _load(src / rundir.dataset_file(s)) for s in SPLITS}  # in dataset order
        corpus = {s: _load(src / rundir.corpus_file(s)) for s in SPLITS}
    except (OSError, ValueError) as e:
        raise SynthgenError(f"filter.data: {e}") from None
    return state, rows, corpus


def _write(
    t: TaskRun,
    src: Path,
    source_cfg: Any,
    kept: dict[str, list[dict]],
    rejected: list[dict],
    questions: list[dict],
    corpus: dict[str, Any],
) -> list[str]:
    """Every file a generate run writes, from the kept rows, into this command's run dir (its
    DONE cleared first); the config saved is the source's with this command's filters and
    judge, task=filter and filter.data. Returns summary.json's `files` (finalize)."""
    cfg, run_dir = t.cfg, t.run_dir
    jsonl = {rundir.rows_file(s): kept[s] for s in SPLITS}
    jsonl.update({rundir.REJECTED: rejected, rundir.QUESTIONS: questions})
    files = finalize(run_dir, kept, corpus, jsonl)
    out_cfg = OmegaConf.create(OmegaConf.to_container(source_cfg, resolve=True))
    out_cfg.filters = OmegaConf.to_container(cfg.filters, resolve=True) if "filters" in cfg else {}
    if "judge" in cfg:
        out_cfg.judge = OmegaConf.to_container(cfg.judge, resolve=True)
    out_cfg.task = "filter"
    out_cfg.filter = {"data": str(src)}
    t.save_config(out_cfg, resolve=False)
    return files


def _gate(
    gates: filters.Gates, rows: dict[str, list[dict]]
) -> tuple[dict[str, list[dict]], list[dict]]:
    """(kept rows per split, rejected records of the dropped ones); dataset order, so of two
    near-duplicate answers the first stays."""
    kept: dict[str, list[dict]] = {}
    dropped: list[dict] = []
    for s in SPLITS:
        kept[s], d = apply_in_order(rows[s], partial(_decide, gates, s))
        dropped += d
    return kept, dropped


def _decide(gates: filters.Gates, split: str, r: dict) -> dict | Rejected:
    """One row through the question gates, its signals' gates, then the answer gates."""
    stage = "question"
    drop = gates.question(r["question"], r["doc"]) or gates.signals(r["signals"])
    if drop is None:
        stage = "answer"
        drop = gates.answer(r["answer"], r["doc"], r["question"], split, r["chunk_id"])
    if drop is not None:
        return _reject(r, stage, drop, gates.name)
    gates.accept(r["answer"], split, r["chunk_id"])
    return r


def _judge(
    t: TaskRun, source_cfg: Any, src: Path, kept: dict[str, list[dict]], dropped: list[dict]
) -> tuple[dict[str, list[dict]], dict[str, Any] | None]:
    """The judge stage of this command's `judge` group on the rows the gates kept, with the
    source run's model (it wrote them); its rejects join `dropped`. The source's verdicts
    (judged.jsonl) are copied first: a row judged with the same settings is not asked again."""
    js = judge_spec.JudgeSettings.from_cfg(t.cfg)
    if not js.enabled:
        return kept, None
    from synthgen.generate.llm import load_backend

    st = dataclasses.replace(Settings.from_cfg(source_cfg), judge=js)
    if (src / rundir.JUDGED).exists() and not (t.run_dir / rundir.JUDGED).exists():
        shutil.copyfile(src / rundir.JUDGED, t.run_dir / rundir.JUDGED)
    out, drops, counts = judge.judge_splits(
        lambda: load_backend(source_cfg, st), st, kept, t.run_dir
    )
    dropped += drops
    return out, counts


def _fill_signals(scorer: signals.Scorer, embeds: bool, rows: dict[str, list[dict]]) -> None:
    """Rows from before signals were stored (or without the embedding ones the gates now
    want) get them computed here, over the source's own retrieval corpus; stored ones stay."""
    for s in SPLITS:
        for r in rows[s]:
            r["signals"] = dict(r.get("signals") or {})
        wanted = ("bm25_rank", "embed_rank") if embeds else ("bm25_rank",)
        need = [r for r in rows[s] if any(r["signals"].get(k) is None for k in wanted)]
        got = scorer.questions(s, [r["chunk_id"] for r in need], [r["question"] for r in need])
        for r, sig in zip(need, got, strict=True):
            r["signals"] = {**sig, **{k: v for k, v in r["signals"].items() if v is not None}}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _reject(row: dict, stage: str, drop: filters.Drop, name: str) -> Rejected:
    """The rejected.jsonl line a generate run would have written for this row."""
    raw = row["question"] if stage == "question" else row["answer"]
    extra = {**drop.record(), "filters": name, "task": "filter"}
    sig = row.get("signals") or {}
    return Rejected.of_row(row, stage, drop.reason, raw=raw, extra=extra, signals=sig)


def _summary(
    source: dict[str, Any],
    src: Path,
    run_dir: Path,
    rows: dict[str, list[dict]],
    kept: dict[str, list[dict]],
    rejected: list[dict],
    dropped: list[dict],
    name: str,
) -> dict[str, Any]:
    """The source's summary with every count the gates change recomputed."""
    out = {k: v for k, v in source.items() if k != "this_session"}  # no generation ran here
    splits = {
        s: SplitCounts.from_dict(source.get("splits", {}).get(s, {}))
        .with_rejects(len(kept[s]), rejected, s)
        .to_dict()
        for s in SPLITS
    }
    out.update(
        run_dir=str(run_dir),
        task="filter",
        status="complete",
        splits=splits,
        rows={s: len(kept[s]) for s in SPLITS},
        filters={
            "name": name,
            "rejected": filters.counts(rejected),  # the source's gate rejects and this pass's
            "this_pass": filters.counts(dropped),
        },
        filtered_from={
            "run_dir": str(src),
            "filters": source.get("filters", {}).get("name"),
            "rows": {s: len(rows[s]) for s in SPLITS},
        },
    )
    return out

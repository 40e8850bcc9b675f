"""The generate task: read -> clean -> chunk -> dedup -> select -> prompt -> generate -> parse
-> gate -> dedup -> write, as prepare -> generate rows -> finish.

`synthgen.tasks.run(cfg)` is what run.py calls (re-exported here as `run`); tests call it
directly with a composed config.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthgen import rundir
from synthgen.backends.base import Usage
from synthgen.config import check
from synthgen.corpus.load import (
    Corpus,
    corpus_texts,
    load_corpus,
    make_slots,
    prepared_record,
    warnings,
)
from synthgen.errors import OutOfMemory, SynthgenError
from synthgen.gates import filters
from synthgen.generate.dryrun import dry_run
from synthgen.generate.feed import Feed, Stats, drive
from synthgen.generate.llm import batch_size, load_backend, prepare_model, stage_params
from synthgen.generate.rows import RowMaker
from synthgen.records import GenTotals, Slot, first_per_key, key_of
from synthgen.rundir import SPLITS
from synthgen.rundir.finish import finalize, order_rows
from synthgen.rundir.state import RunState, check_resume
from synthgen.scale import sharding
from synthgen.settings import Settings
from synthgen.tasks import TaskRun, task
from synthgen.tasks import run as run  # the entry point run.py and the tests call

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What this session will generate: the corpus, the slots, and what the dirs hold."""

    corpus: Corpus
    slots: dict[str, list[Slot]]  # this shard's slots, per split, in dataset order
    slots_total: dict[str, int]  # slots of the whole dataset, before sharding
    leak: dict[str, Any]  # the leak check's report
    state: RunState  # this run dir's records, loaded once
    known: RunState  # with the sibling shards' records (they count as done here too)
    sibling_dirs: list[Path]
    done: set[str]  # keys done here or in a sibling
    todo: int  # slots to generate
    elsewhere: int  # this shard's slots already done in a sibling job dir
    warnings: list[str] = field(default_factory=list)  # selection drops most chunks: one line each


@dataclass
class Session:
    """What generating this session's rows gave."""

    stats: Stats = field(default_factory=Stats)
    rejects: Counter[str] = field(default_factory=Counter)  # "stage:reason" -> count
    first_row: float | None = None  # seconds from the start to the first row on disk
    engine: dict[str, Any] = field(default_factory=dict)  # what ran and why
    written: RunState = field(default_factory=RunState)  # records appended to the run dir
    usage: dict[str, Any] | None = None  # an endpoint's: tokens and cost as the server counted


@task("generate", lock=True)
def generate(t: TaskRun) -> dict[str, Any]:
    """Build (or resume) the dataset in run_dir, holding the run dir's lock throughout."""
    check(t.cfg)
    st = Settings.from_cfg(t.cfg)
    if t.cfg.dry_run:
        corpus, slots, _, leak = read(t, st)
        return dry_run(t.cfg, st, corpus, slots, t.run_dir, leak)
    rundir.remove_partial(t.run_dir)  # half-written by a run that was killed
    prepare_model(t.cfg)  # a model that cannot come fails before the corpus is read
    plan = prepare(t, st)
    session = generate_rows(t, st, plan) if plan.todo else Session()
    return finish(t, st, plan, session)


def read(
    t: TaskRun, st: Settings
) -> tuple[Corpus, dict[str, list[Slot]], dict[str, int], dict[str, Any]]:
    """(corpus, this shard's slots, slots of the whole dataset per split, leak report)."""
    leak: dict[str, Any] = {}
    corpus = load_corpus(st, t.seconds, leak)
    slots = make_slots(st, corpus)
    total = {s: len(v) for s, v in slots.items()}
    # this job's part (all of it when count=1)
    return corpus, sharding.keep(slots, st.shard.count, st.shard.index), total, leak


def prepare(t: TaskRun, st: Settings) -> Plan:
    """Corpus and slots; the run dir checked for resume, repaired, its config saved."""
    corpus, slots, total, leak = read(t, st)
    warned = warnings(st, corpus)
    for w in warned:
        log.warning(w.removeprefix("warning: "))
    run_dir = t.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    state = RunState.load(run_dir, repair=False)
    check_resume(t.cfg, run_dir, state)  # refused: the dir is left as it was
    RunState.repair(run_dir)  # cut a half-written last line before appending
    others, sibling_dirs = sharding.sibling_state(t.cfg, run_dir)
    rundir.clear_done(run_dir)  # back only when this session finishes
    t.save_config()  # atomic: a sibling shard never reads half a file
    own = state.done_keys()
    known = RunState.union([state, others])
    done = known.done_keys()
    keys = [s.key for ss in slots.values() for s in ss]
    todo = sum(k not in done for k in keys)
    elsewhere = sum(k in done and k not in own for k in keys)
    log.info("%d slots, %d done already, %d to generate", len(keys), len(keys) - todo, todo)
    return Plan(
        corpus, slots, total, leak, state, known, sibling_dirs, done, todo, elsewhere, warned
    )


def generate_rows(t: TaskRun, st: Settings, plan: Plan) -> Session:
    """Load the model and fill the open slots; every result is on disk as it lands."""
    cfg, tick = t.cfg, time.perf_counter()
    gates = filters.Gates(cfg, cfg.prompt)
    gates.prepare()  # the embedding gate's model, if on: a bad one fails before the LLM loads
    backend = load_backend(cfg, st)
    t.seconds["load_model"] += time.perf_counter() - tick
    backend.set_seed(st.generation.seed)
    # token ids through the chat template; an endpoint's prompts are the messages themselves
    # each question's own chunk is ranked among its split's retrieval corpus (signals.py)
    scorer = gates.scorer(corpus_texts(plan.corpus))
    maker = RowMaker(st, t.run_dir, backend.encode, plan.known, gates, scorer=scorer)
    params = stage_params(st, backend.spec)
    out = Session()
    from tqdm import tqdm

    try:
        with tqdm(total=plan.todo, unit="row", desc="generate", dynamic_ncols=True) as bar:
            maker.progress = bar
            backend.attach(bar)  # an endpoint shows the run's cost there
            size = batch_size(st, backend)
            for split in SPLITS:
                jobs = maker.initial_jobs(plan.slots[split], plan.known, plan.done)
                try:
                    drive(
                        backend,
                        jobs,
                        Feed(maker.on_result, params, size, bar, out.stats, maker.sync),
                    )
                except OutOfMemory:
                    raise SynthgenError(
                        "generation.batch_size: out of memory even at batch size 1; rows so "
                        "far are kept: lower generation.max_new_tokens, set "
                        "model.load_in_4bit=true or use a smaller model"
                    ) from None
                # a batch size halved by OOM stays halved for the next split
                size = out.stats.batch_size or size
    finally:
        maker.close()
        backend.close()
    t.seconds["generate"] += out.stats.seconds
    out.rejects, out.written = maker.rejects, maker.written
    out.first_row = round(maker.first_row_at - t.t0, 3) if maker.first_row_at else None
    out.engine = {
        "name": backend.engine,
        "requested": st.engine.name,
        **backend.choices,  # why this engine, load_in_4bit chosen and why
        "feed": out.stats.feed,
        "notes": backend.notes,
    }
    out.usage = backend.usage.to_dict() if backend.usage is not None else None  # an endpoint's
    return out


def finish(t: TaskRun, st: Settings, plan: Plan, session: Session) -> dict[str, Any]:
    """The dataset files from every row of the run dir, then summary.json, then DONE."""
    run_dir, tick = t.run_dir, time.perf_counter()
    state = RunState.union([plan.state, session.written])  # the JSONL files, as on disk now
    wanted = {sl.key for ss in plan.slots.values() for sl in ss}
    # rows of a larger num_rows in an earlier session stay in the JSONL, not in the dataset;
    # a key in the JSONL twice (two writers in one dir, before the lock existed) goes in once
    rows, repeated = {}, {}
    for s in SPLITS:
        once = first_per_key(state.rows[s])
        repeated[s] = len(state.rows[s]) - len(once)
        chunk_ids = [c.id for c in plan.corpus[s].chunks]
        rows[s] = order_rows([r for r in once if key_of(r) in wanted], chunk_ids)
    t.seconds["write"] += time.perf_counter() - tick
    rows, state.rejected, judged = judge_rows(t, st, rows, state.rejected)
    tick = time.perf_counter()
    # a judge pass rewrites rejected.jsonl: its rejects in place of earlier ones
    records = {rundir.REJECTED: state.rejected} if judged is not None else None
    files = finalize(run_dir, rows, corpus_texts(plan.corpus), records)
    t.seconds["write"] += time.perf_counter() - tick

    summary = make_summary(t, st, plan, state, rows, session)
    if judged is not None:
        summary["judge"] = judged
    if any(repeated.values()):
        summary["jsonl_repeated_rows"] = repeated  # lines whose key came before: not in the dataset
    summary["files"] = files
    summary["seconds"] = {k: round(v, 3) for k, v in t.seconds.items()}
    summary = t.finish(summary, done=True)
    log.info("rows: train %d, val %d -> %s", len(rows["train"]), len(rows["val"]), run_dir)
    return summary


def judge_rows(
    t: TaskRun, st: Settings, rows: dict[str, list[dict]], rejected: list[dict]
) -> tuple[dict[str, list[dict]], list[dict], dict[str, Any] | None]:
    """The judge stage (judge=default), after the rows are made: (the rows it keeps, each with
    its verdict; rejected.jsonl's records with this pass's judge rejects in place of earlier
    ones, for finish to write; summary.json's `judge` counts). judged.jsonl holds the verdicts
    as they land, so a rerun judges only what it lacks, and the judge rejects are rebuilt from
    it every time. Without a judge: the rows and records as they were, and None."""
    if not st.judge.enabled:
        return rows, rejected, None
    from synthgen.gates import judge

    stats = Stats()
    kept, drops, counts = judge.judge_splits(
        lambda: load_backend(t.cfg, st), st, rows, t.run_dir, stats=stats
    )
    t.seconds["judge"] += stats.seconds
    rejected = [r for r in rejected if r.get("stage") != "judge"] + drops
    return kept, rejected, counts


def session_record(t: TaskRun, session: Session) -> dict[str, Any]:
    """summary.json's this_session: what this process generated (a resumed run dir's earlier
    sessions are in `generation`, summed by totals)."""
    stats = session.stats
    return {
        "prompts": stats.prompts,
        "rejects": dict(sorted(session.rejects.items())),
        "output_tokens": stats.output_tokens,
        "prompt_tokens": stats.prompt_tokens,
        "prompt_tokens_cached": stats.cached_tokens,  # prefix reuse: not prefilled again
        "unfinished_outputs": stats.unfinished,
        "generate_seconds": round(stats.seconds, 3),
        "tokens_per_second": round(stats.tokens_per_second, 1),
        "batches": stats.batches,
        "batch_size": stats.batch_size,
        # stream feed: the most requests in flight at once, and the KV cache (tokens) that
        # kept them fewer than batch_size (0: none reported) so prefixes stay cached
        "most_in_flight": stats.most_in_flight,
        "kv_cache_tokens": stats.kv_tokens,
        "oom_retries": stats.oom_retries,
        "engine": session.engine,
        "started": t.started,
        "first_row_seconds": session.first_row,
    }


def make_summary(
    t: TaskRun,
    st: Settings,
    plan: Plan,
    state: RunState,
    rows: dict[str, list[dict]],
    session: Session,
) -> dict[str, Any]:
    """Counts per stage and split, over the whole run dir (earlier resumed sessions included)."""
    cfg = t.cfg
    # a key rejected twice (two writers, before the lock) counts once
    rejected = first_per_key(state.rejected)
    splits = {
        s: plan.corpus[s].counts(len(plan.slots[s])).with_rejects(len(rows[s]), rejected, s)
        for s in SPLITS
    }
    this_session = session_record(t, session)
    if session.usage is not None:  # the server's token counts (the prompts here are messages)
        this_session.update(usage=session.usage, prompt_tokens=session.usage["prompt_tokens"])
    return {
        "run_dir": str(t.run_dir),
        "prompt": cfg.prompt.name,
        "model": cfg.model.name_or_path,
        "splits": {s: c.to_dict() for s, c in splits.items()},
        "rows": {s: len(rows[s]) for s in SPLITS},
        "warnings": plan.warnings,  # selection dropped most chunks of a split: what to change
        # quality-gate rejects over the run dir, per "stage:reason" (also in splits.*.rejected_*)
        "filters": {"name": filters.name(cfg), "rejected": filters.counts(state.rejected)},
        "this_session": this_session,
        "generation": totals(t.run_dir, this_session),
        "shard": {
            "count": st.shard.count,
            "index": st.shard.index,
            "slots_total": plan.slots_total,  # slots of the whole dataset, before sharding
            "done_elsewhere": plan.elsewhere,
            "siblings": [str(d) for d in plan.sibling_dirs],
        },
        "host": sharding.host(),
        "leak": plan.leak,
        "corpus": prepared_record(plan.corpus),  # chunks from corpus.prepared, or the files
    }


def totals(run_dir: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Generation figures over every session of the run dir (a resumed run has several)."""
    sessions: list[dict[str, Any]] = []
    if (run_dir / rundir.SUMMARY).exists():
        sessions = rundir.read_summary(run_dir).get("generation", {}).get("sessions", [])
    sessions = [*sessions, session]
    total = sum((GenTotals.from_dict(x) for x in sessions), start=GenTotals())
    out = {**total.to_dict(), "sessions": sessions}
    if (usage := Usage.total(sessions)) is not None:  # endpoint sessions: tokens and cost
        out["usage"] = usage
    return out

"""Join the shards of a sweep into one run dir: `task=merge` and the end-of-multirun callback.

Every set of job dirs that make the same dataset (same overrides once shard.* is dropped) is
merged into `<sweep>/merged`, or `<sweep>/<overrides>/merged` when the sweep also varies
other settings. The merged dir is a complete run dir, as one job would have written it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from synthgen import rundir
from synthgen.corpus import dedup
from synthgen.corpus.load import corpus_texts, load_corpus
from synthgen.errors import ConfigError, SynthgenError
from synthgen.gates import filters
from synthgen.records import GenTotals, Rejected, SplitCounts, first_per_key, key_of
from synthgen.rundir import SPLITS, discovery, runlock
from synthgen.rundir.finish import apply_in_order, finalize, order_rows
from synthgen.rundir.identity import row_config, row_config_diff
from synthgen.rundir.state import RunState
from synthgen.scale import sharding
from synthgen.scale.sharding import JobDir
from synthgen.schema import Merge
from synthgen.settings import Settings
from synthgen.tasks import TaskRun

log = logging.getLogger(__name__)


def merge(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """`python run.py task=merge merge.sweep=DIR`: for sweeps whose launching process is gone."""
    sweep = OmegaConf.select(cfg, "merge.sweep")
    if not sweep:
        raise ConfigError(
            "merge.sweep: set it to the sweep dir of a sharded -m run, "
            "e.g. merge.sweep=outputs/big-run"
        )
    path = Path(str(sweep)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"merge.sweep: folder {str(path)!r} not found")
    partial = cfg.merge.partial
    if not isinstance(partial, bool):
        raise ConfigError(f"merge.partial: must be true or false, got {partial!r}")
    return merge_sweep(path, partial=partial)


class MergeShards(Callback):
    """After a -m sweep whose jobs all returned, merge each set of shards."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.task != "generate" or config.dry_run:
            return
        try:  # every job of this launch returned: a dataset still unfinished is an older one
            merge_sweep(
                Path(str(config.hydra.sweep.dir)), require_shards=False, skip_unfinished=True
            )
        except SynthgenError as e:  # same one line as run.py prints
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)


def merge_sweep(
    sweep: Path,
    partial: bool = Merge.partial,
    require_shards: bool = True,
    skip_unfinished: bool = False,
) -> dict[str, Any]:
    """Merge every sharded dataset of a sweep. Checks all of them before writing any.

    skip_unfinished: leave a dataset with unfinished shards alone (logged) instead of refusing.
    """
    groups: dict[tuple[str, ...], list[JobDir]] = {}
    for job in sharding.job_dirs(sweep):
        groups.setdefault(job.group, []).append(job)
    sharded = {g: js for g, js in groups.items() if any(j.count > 1 for j in js)}
    if not sharded:
        if require_shards:
            raise ConfigError(
                f"merge.sweep: no sharded job dirs under {sweep} (none with .hydra/ and "
                "shard.count > 1); each job of an unsharded sweep is a complete run already"
            )
        return {"status": "nothing_to_merge", "merged": []}

    names = discovery.group_names(list(groups))
    missing = {g: unfinished(js) for g, js in sharded.items()}
    not_done = [f"{names[g]}: {m}" if names[g] else m for g, ms in missing.items() for m in ms]
    if not_done and skip_unfinished and not partial:
        log.warning("not merged, shards unfinished: %s", "; ".join(not_done))
        sharded = {g: js for g, js in sharded.items() if not missing[g]}
    elif not_done and not partial:
        raise ConfigError(
            f"merge.sweep: {len(not_done)} shard(s) under {sweep} did not finish "
            f"({'; '.join(not_done)}); relaunch the same command with "
            f"hydra.sweep.dir={sweep} to finish them, or set merge.partial=true"
        )
    if "" not in names.values() and (sweep / "merged" / rundir.SUMMARY).exists():
        log.warning(
            "%s holds an earlier merge; this sweep now makes %d datasets, merged into "
            "<sweep>/<overrides>/merged",
            sweep / "merged",
            len(groups),
        )
    merged = []
    for g, js in sharded.items():
        out = sweep / names[g] / "merged" if names[g] else sweep / "merged"
        merged.append(merge_group(sweep, g, js, out, missing[g]))
    return {"status": "merged", "merged": merged}


def unfinished(jobs: list[JobDir]) -> list[str]:
    """Shards still to finish: none when, for some shard.count, every index has its DONE.

    Otherwise those of the latest launch's shard.count (its most recently started job).
    """
    by_count: dict[int, dict[int, JobDir]] = {}
    for j in jobs:
        by_count.setdefault(j.count, {})[j.index] = j
    for count, idx in by_count.items():
        if all(i in idx and idx[i].finished for i in range(count)):
            return []
    latest = max(jobs, key=lambda j: (j.path / rundir.HYDRA).stat().st_mtime).count
    idx = by_count[latest]
    out = []
    for i in range(latest):
        label = f"shard.count={latest},shard.index={i}"
        if i not in idx:
            out.append(f"{label} never started")
        elif not idx[i].finished:
            out.append(f"{label} has no {rundir.DONE}")
    return out


def merge_group(
    sweep: Path, group: tuple[str, ...], jobs: list[JobDir], out: Path, missing: list[str]
) -> dict[str, Any]:
    """One dataset from its shards' job dirs; returns the merged summary. Holds the merged
    dir's lock while it writes (a second merge of the same sweep stops at once)."""
    with runlock.held(out):
        rundir.remove_partial(out)  # half-written by a merge that was killed
        return _merge_group(sweep, group, jobs, out, missing)


@dataclass
class Shards:
    """The job dirs of one dataset that wrote something, finished ones first, read once."""

    jobs: list[JobDir]
    base: DictConfig  # the first one's config (all agree on the row config)
    states: dict[Path, RunState]
    summaries: dict[Path, dict]


def _merge_group(
    sweep: Path, group: tuple[str, ...], jobs: list[JobDir], out: Path, missing: list[str]
) -> dict[str, Any]:
    shards = _read_shards(jobs, out)
    t = TaskRun("merge", shards.base, out)
    base = shards.base
    # every shard reads the whole corpus: its *_corpus.json (in chunk order) is the same in all
    corpus = _corpus(shards.jobs)
    if corpus is None:  # no shard finished (merge.partial): read the documents again
        sc = load_corpus(Settings.from_cfg(base), Counter())
        corpus = corpus_texts(sc)
    rows, repeated = _rows(shards)
    states = list(shards.states.values())
    rejected = first_per_key(r for st in states for r in st.rejected)
    questions = first_per_key(q for st in states for q in st.questions)
    rows, dropped = _dedup(base, rows, corpus)
    rejected += dropped
    duplicates = {r["key"] for r in dropped if r["stage"] == "question"}
    row_keys = {key_of(r) for s in SPLITS for r in rows[s]}
    rejected = [r for r in rejected if r["key"] not in row_keys]
    questions = [q for q in questions if q["key"] not in duplicates]
    complete = not missing
    files = _write(t, rows, rejected, questions, corpus, complete)

    summary = _summary(sweep, group, out, shards, rows, rejected)
    summary.update(
        status="complete" if complete else "partial",
        unfinished=missing,
        rows_in_several_shards=repeated,
        files=files,
    )
    summary["seconds"]["merge"] = round(t.elapsed(), 3)
    summary = t.finish(summary, done=complete)
    log.info(
        "merged %d job dirs -> %s (rows: train %d, val %d%s)",
        len(shards.jobs),
        out,
        len(rows["train"]),
        len(rows["val"]),
        "" if complete else f"; partial, missing {', '.join(missing)}",
    )
    return summary


def _write(
    t: TaskRun,
    rows: dict[str, list[dict]],
    rejected: list[dict],
    questions: list[dict],
    corpus: dict[str, dict[str, str]],
    complete: bool,
) -> list[str]:
    """The merged run dir's files (a fault point after each step for the crash tests) and its
    config: the shards' own, as one complete 1-shard run. Returns summary.json's `files`."""
    jsonl = {rundir.rows_file(s): rows[s] for s in SPLITS}
    jsonl.update({rundir.REJECTED: rejected, rundir.QUESTIONS: questions})
    files = finalize(t.run_dir, rows, corpus, jsonl, point="merge", done=complete)
    merged_cfg = OmegaConf.create(OmegaConf.to_container(t.cfg, resolve=True))
    merged_cfg.shard = {"count": 1, "index": 0}  # one complete run, as a 1-shard job makes it
    t.save_config(merged_cfg, resolve=False)
    return files


def _read_shards(jobs: list[JobDir], out: Path) -> Shards:
    """The shards that wrote something, checked to make the same rows."""
    jobs = sorted(jobs, key=lambda j: (not j.finished, j.count, j.index, str(j.path)))
    jobs = [j for j in jobs if rundir.has_config(j.path)]  # the others wrote nothing
    if not jobs:
        raise ConfigError(f"merge.sweep: no shard of {out} wrote anything yet")
    cfgs = {j.path: rundir.load_config(j.path) for j in jobs}
    base = cfgs[jobs[0].path]
    ref = row_config(base)
    for j in jobs[1:]:
        diff = row_config_diff(ref, row_config(cfgs[j.path]))
        if diff:
            raise ConfigError(
                f"merge.sweep: {j.path} and {jobs[0].path} were made with different configs "
                f"({diff})"
            )
    try:
        states = {j.path: RunState.load(j.path, repair=False) for j in jobs}
    except ValueError as e:  # a corrupt line inside a file (not a cut last line)
        raise SynthgenError(f"merge.sweep: {e}") from None
    summaries = {j.path: rundir.read_summary(j.path, default={}) for j in jobs}
    return Shards(jobs, base, states, summaries)


def _rows(shards: Shards) -> tuple[dict[str, list[dict]], int]:
    """Each key once (first finished shard wins); and how many rows came twice."""
    rows: dict[str, list[dict]] = {}
    repeated = 0
    for s in SPLITS:
        every = [r for j in shards.jobs for r in shards.states[j.path].rows[s]]
        rows[s] = first_per_key(every)
        repeated += len(every) - len(rows[s])
    return rows, repeated


def _dedup(
    base: DictConfig, rows: dict[str, list[dict]], corpus: dict[str, dict[str, str]]
) -> tuple[dict[str, list[dict]], list[dict]]:
    """Dataset order, then what one run would have dropped across shards: a question asked in
    two shards, an answer another shard gave for another chunk (the near-duplicate gate; the
    per-row gates already ran in every shard). Returns (kept rows, the dropped as rejects)."""
    threshold = Settings.from_cfg(base).dedup.question_threshold
    near = filters.Gates(base, base.get("prompt")).duplicates
    name = filters.name(base)
    kept: dict[str, list[dict]] = {}
    dropped: list[dict] = []
    for s in SPLITS:
        asked = dedup.QuestionSet(threshold)
        gate = partial(_twice, asked, near, name, s)
        kept[s], d = apply_in_order(order_rows(rows[s], corpus[s]), gate)
        dropped += d
    return kept, dropped


def _twice(asked: dedup.QuestionSet, near: Any, name: str, split: str, r: dict) -> dict | Rejected:
    """A row whose question was asked before, or whose answer another chunk gave, goes: the
    first in dataset order stays, as in one run."""
    twin = asked.match(r["question"])
    if twin is not None:
        extra = {"duplicate_of": twin[0], "similarity": round(twin[1], 3)}
        return Rejected.of_row(r, "question", "duplicate", extra=extra)
    asked.add(r["question"])  # asked, whatever becomes of its answer (as in one run)
    answer = r["answer"]  # None in a questions-only run: nothing to compare
    if near is None or answer is None:
        return r
    drop = near.check(answer, split, r["chunk_id"])
    if drop is not None:
        extra = {**drop.record(), "filters": name}
        return Rejected.of_row(r, "answer", drop.reason, raw=answer, extra=extra)
    near.add(answer, split, r["chunk_id"])
    return r


def _summary(
    sweep: Path,
    group: tuple[str, ...],
    out: Path,
    shards: Shards,
    rows: dict[str, list[dict]],
    rejected: list[dict],
) -> dict[str, Any]:
    """Counts as one run would give them, plus per-shard rows, seconds and tokens/s."""
    jobs, summaries, base = shards.jobs, shards.summaries, shards.base
    ref = next((summaries[j.path] for j in jobs if summaries[j.path].get("splits")), {})
    slots_total = next(
        (summaries[j.path]["shard"]["slots_total"] for j in jobs if "shard" in summaries[j.path]),
        {},
    )
    splits = {}
    for s in SPLITS:  # every shard reads the whole corpus: its counts are the same in all
        corpus = SplitCounts.from_dict(ref.get("splits", {}).get(s, {}))
        corpus.slots = slots_total.get(s)
        splits[s] = corpus.with_rejects(len(rows[s]), rejected, s).to_dict()
    per_shard = [_shard(sweep, j, shards) for j in jobs]
    seconds: Counter[str] = Counter()
    for j in jobs:
        seconds.update(summaries[j.path].get("seconds", {}))
    gen = sum(
        (GenTotals.from_dict(summaries[j.path].get("generation", {})) for j in jobs),
        start=GenTotals(),
    )
    spans = [
        (datetime.fromisoformat(sm["started"]), datetime.fromisoformat(sm["finished"]))
        for sm in summaries.values()
        if sm.get("started") and sm.get("finished")
    ]
    wall = (max(e for _, e in spans) - min(b for b, _ in spans)).total_seconds() if spans else 0.0
    return {
        "run_dir": str(out),
        "prompt": base.prompt.name,
        "model": base.model.name_or_path,
        "merged_from": {"sweep": str(sweep), "overrides": list(group), "job_dirs": len(jobs)},
        "splits": splits,
        "rows": {s: len(rows[s]) for s in SPLITS},
        "warnings": ref.get("warnings", []),  # the corpus's, the same in every shard
        "filters": {"name": filters.name(base), "rejected": filters.counts(rejected)},
        "generation": {
            **gen.to_dict(),  # summed over shards (GPU-seconds; tokens/s per GPU)
            "wall_seconds": round(wall, 3),  # first shard's start to last shard's end
            "aggregate_tokens_per_second": round(gen.output_tokens / wall, 1) if wall else 0.0,
        },
        "shards": per_shard,
        "leak": ref.get("leak", {}),  # every shard checks the whole corpus: the same in all
        "seconds": {k: round(v, 3) for k, v in seconds.items()},  # summed over shards
    }


def _shard(sweep: Path, j: JobDir, shards: Shards) -> dict[str, Any]:
    """One shard's line in the merged summary."""
    sm = shards.summaries[j.path]
    gen = sm.get("generation", {})
    return {
        "dir": j.path.relative_to(sweep).as_posix(),
        "count": j.count,
        "index": j.index,
        "finished": j.finished,
        "rows": {s: len(shards.states[j.path].rows[s]) for s in SPLITS},
        "seconds": sm.get("seconds", {}).get("total"),
        "generate_seconds": gen.get("generate_seconds"),
        "output_tokens": gen.get("output_tokens"),
        "tokens_per_second": gen.get("tokens_per_second"),
        "first_row_seconds": sm.get("this_session", {}).get("first_row_seconds"),
        "host": sm.get("host"),
    }


def _corpus(jobs: list[JobDir]) -> dict[str, dict[str, str]] | None:
    """The corpus of a finished shard; refuses shards that read different documents."""
    out: dict[str, dict[str, str]] = {}
    for s in SPLITS:
        paths = [
            j.path / rundir.corpus_file(s)
            for j in jobs
            if j.finished and (j.path / rundir.corpus_file(s)).exists()
        ]
        if not paths:
            return None
        digests = {hashlib.sha1(p.read_bytes()).hexdigest() for p in paths}
        if len(digests) > 1:
            raise ConfigError(
                f"merge.sweep: the shards' {s}_corpus.json differ (the documents changed "
                "between launches); merge shards of one corpus only"
            )
        out[s] = json.loads(paths[0].read_text(encoding="utf-8"))
    return out

"""Join the shards of a sweep into one run dir: `task=merge` and the end-of-multirun callback.

Every set of job dirs that make the same dataset (same overrides once shard.* is dropped) is
merged into `<sweep>/merged`, or `<sweep>/<overrides>/merged` when the sweep also varies
other settings. The merged dir is a complete run dir, as one job would have written it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from synthgen import rundir
from synthgen.config import ConfigError, SynthgenError, row_config, row_config_diff
from synthgen.dataset import dedup, faults, filters, writing
from synthgen.records import Chunk, Row
from synthgen.rundir import runlock
from synthgen.scale import sharding
from synthgen.scale.sharding import JobDir

log = logging.getLogger(__name__)
SPLITS = ("train", "val")
CORPUS_COUNTS = (
    "files_read",
    "files_skipped",
    "file_notes",
    "encodings",
    "cleaning",
    "docs",
    "chunks_total",
    "chunks_kept",
    "chunks_rejected",
    "chunks_used",
    "duplicate_chunks",
)


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
    partial = OmegaConf.select(cfg, "merge.partial", default=False)
    if not isinstance(partial, bool):
        raise ConfigError(f"merge.partial: must be true or false, got {partial!r}")
    return merge_sweep(path, partial=partial)


class MergeShards(Callback):
    """After a -m sweep whose jobs all returned, merge each set of shards."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("task", "generate") != "generate" or config.get("dry_run"):
            return
        try:  # every job of this launch returned: a dataset still unfinished is an older one
            merge_sweep(
                Path(str(config.hydra.sweep.dir)), require_shards=False, skip_unfinished=True
            )
        except SynthgenError as e:  # same one line as run.py prints
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)


def merge_sweep(
    sweep: Path, partial: bool = False, require_shards: bool = True, skip_unfinished: bool = False
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

    names = _names(list(groups))
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
    if "" not in names.values() and (sweep / "merged" / "summary.json").exists():
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


def _names(groups: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Dir name of each dataset of a sweep: the overrides that tell it from the others.

    One dataset -> "" (<sweep>/merged); `-m model=a,b` -> "model=a", "model=b". Joined like
    Hydra's override_dirname; a slash (a path value) would nest dirs, so it becomes "_".
    """
    parsed = [dict(o.partition("=")[::2] for o in g) for g in groups]
    keys = {k for p in parsed for k in p}
    varying = {k for k in keys if len({p.get(k) for p in parsed}) > 1}
    return {
        g: ",".join(o for o in g if o.partition("=")[0] in varying).replace("/", "_")
        for g in groups
    }


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
    latest = max(jobs, key=lambda j: (j.path / ".hydra").stat().st_mtime).count
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
        for tmp in out.glob("*.tmp*"):  # half-written by a merge that was killed
            tmp.unlink()
        return _merge_group(sweep, group, jobs, out, missing)


def _merge_group(
    sweep: Path, group: tuple[str, ...], jobs: list[JobDir], out: Path, missing: list[str]
) -> dict[str, Any]:
    from synthgen.dataset.pipeline import RunState, SplitCorpus, load_corpus, now, order_rows

    t0, started = time.perf_counter(), now()
    jobs = sorted(jobs, key=lambda j: (not j.finished, j.count, j.index, str(j.path)))
    jobs = [j for j in jobs if (j.path / "config.yaml").exists()]  # the others wrote nothing
    if not jobs:
        raise ConfigError(f"merge.sweep: no shard of {out} wrote anything yet")
    cfgs = {j.path: OmegaConf.load(j.path / "config.yaml") for j in jobs}
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
    summaries = {j.path: _load_json(j.path / "summary.json") for j in jobs}

    # every shard reads the whole corpus: its *_corpus.json (in chunk order) is the same in all
    corpus = _corpus(jobs)
    if corpus is None:  # no shard finished (merge.partial): read the documents again
        sc = load_corpus(base, Counter())
        corpus = {s: {c.id: c.text for c in sc[s].corpus_chunks()} for s in SPLITS}

    # rows: each key once (first finished shard wins), then dataset order
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    seen_keys: set[str] = set()
    repeated = 0
    for j in jobs:
        for s in SPLITS:
            for r in states[j.path].rows[s]:
                key = Row(**r).key
                if key in seen_keys:
                    repeated += 1
                    continue
                seen_keys.add(key)
                rows[s].append(r)
    rejected = _unique(r for j in jobs for r in states[j.path].rejected)
    questions = _unique(q for j in jobs for q in states[j.path].questions)
    duplicates: set[str] = set()
    threshold = float(OmegaConf.select(base, "dedup.question_threshold", default=1.0))
    # shards never saw each other's answers: the near-duplicate answer gate runs again over the
    # whole split, in dataset order (the per-row gates already ran in every shard)
    near = filters.Gates(base, base.get("prompt")).duplicates
    for s in SPLITS:
        chunks = [Chunk(id=cid, source="", text=text) for cid, text in corpus[s].items()]
        rows[s] = order_rows(rows[s], SplitCorpus(chunks=chunks))
        # a question asked in two shards: keep the first in dataset order, as one run would
        kept, asked = [], dedup.QuestionSet(threshold)
        for r in rows[s]:
            twin = asked.match(r["question"])
            if twin is not None:
                duplicates.add(Row(**r).key)
                rejected.append(_duplicate(r, twin))
                continue
            asked.add(r["question"])  # asked, whatever becomes of its answer (as in one run)
            answer = r["answer"]  # None in a questions-only run: nothing to compare
            check = near is not None and answer is not None
            drop = near.check(answer, s, r["chunk_id"]) if check else None
            if drop is not None:
                rejected.append(_near_duplicate(r, drop, filters.name(base)))
                continue
            kept.append(r)
            if near is not None and answer is not None:
                near.add(answer, s, r["chunk_id"])
        rows[s] = kept
    row_keys = {Row(**r).key for s in SPLITS for r in rows[s]}
    rejected = [r for r in rejected if r["key"] not in row_keys]
    questions = [q for q in questions if q["key"] not in duplicates]

    out.mkdir(parents=True, exist_ok=True)
    (out / rundir.DONE).unlink(missing_ok=True)
    for s in SPLITS:
        writing.write_jsonl(out / f"{s}.jsonl", rows[s])
        faults.point("merge")
    writing.write_jsonl(out / "rejected.jsonl", rejected)
    writing.write_jsonl(out / "questions.jsonl", questions)
    faults.point("merge")
    files = writing.write_outputs(out, rows, corpus)
    faults.point("merge")
    merged_cfg = OmegaConf.create(OmegaConf.to_container(base, resolve=True))
    merged_cfg.shard = {"count": 1, "index": 0}  # one complete run, as a 1-shard job makes it
    tmp = out / "config.yaml.tmp"
    OmegaConf.save(merged_cfg, tmp)
    os.replace(tmp, out / "config.yaml")

    complete = not missing
    summary = _summary(sweep, group, out, jobs, states, summaries, rows, rejected, base)
    summary.update(
        status="complete" if complete else "partial",
        unfinished=missing,
        rows_in_several_shards=repeated,
        started=started,
        finished=now(),
        files=sorted(
            [
                *files,
                "config.yaml",
                "summary.json",
                *writing.JSONL_FILES,
                *([rundir.DONE] if complete else []),
            ]
        ),
    )
    summary["seconds"]["merge"] = round(time.perf_counter() - t0, 3)
    writing.write_json(out / "summary.json", summary)
    faults.point("merge")
    if complete:
        writing.write_json(out / rundir.DONE, {"finished": summary["finished"]})
    log.info(
        "merged %d job dirs -> %s (rows: train %d, val %d%s)",
        len(jobs),
        out,
        len(rows["train"]),
        len(rows["val"]),
        "" if complete else f"; partial, missing {', '.join(missing)}",
    )
    return summary


def _summary(
    sweep: Path,
    group: tuple[str, ...],
    out: Path,
    jobs: list[JobDir],
    states: dict[Path, Any],
    summaries: dict[Path, dict],
    rows: dict[str, list[dict]],
    rejected: list[dict],
    base: DictConfig,
) -> dict[str, Any]:
    """Counts as one run would give them, plus per-shard rows, seconds and tokens/s."""
    from synthgen.dataset.pipeline import versions

    ref = next((summaries[j.path] for j in jobs if summaries[j.path].get("splits")), {})
    slots_total = next(
        (summaries[j.path]["shard"]["slots_total"] for j in jobs if "shard" in summaries[j.path]),
        {},
    )
    splits = {}
    for s in SPLITS:
        rq = Counter(r["reason"] for r in rejected if r["split"] == s and r["stage"] == "question")
        ra = Counter(r["reason"] for r in rejected if r["split"] == s and r["stage"] == "answer")
        corpus_counts = ref.get("splits", {}).get(s, {})
        splits[s] = {
            **{k: corpus_counts.get(k) for k in CORPUS_COUNTS},
            "slots": slots_total.get(s),
            "rows": len(rows[s]),
            "duplicates": rq.get("duplicate", 0),
            "rejected_questions": dict(sorted(rq.items())),
            "rejected_answers": dict(sorted(ra.items())),
        }

    shards, seconds = [], Counter()
    tokens, gen_secs = 0, 0.0
    starts, ends = [], []
    for j in jobs:
        sm = summaries[j.path]
        gen = sm.get("generation", {})
        shards.append(
            {
                "dir": j.path.relative_to(sweep).as_posix(),
                "count": j.count,
                "index": j.index,
                "finished": j.finished,
                "rows": {s: len(states[j.path].rows[s]) for s in SPLITS},
                "seconds": sm.get("seconds", {}).get("total"),
                "generate_seconds": gen.get("generate_seconds"),
                "output_tokens": gen.get("output_tokens"),
                "tokens_per_second": gen.get("tokens_per_second"),
                "first_row_seconds": sm.get("this_session", {}).get("first_row_seconds"),
                "host": sm.get("host"),
            }
        )
        for k, v in sm.get("seconds", {}).items():
            seconds[k] += v
        tokens += gen.get("output_tokens", 0)
        gen_secs += gen.get("generate_seconds", 0.0)
        if sm.get("started") and sm.get("finished"):
            starts.append(datetime.fromisoformat(sm["started"]))
            ends.append(datetime.fromisoformat(sm["finished"]))
    wall = (max(ends) - min(starts)).total_seconds() if starts else 0.0
    return {
        "run_dir": str(out),
        "task": "merge",
        "prompt": base.prompt.name,
        "model": base.model.name_or_path,
        "merged_from": {"sweep": str(sweep), "overrides": list(group), "job_dirs": len(jobs)},
        "splits": splits,
        "rows": {s: len(rows[s]) for s in SPLITS},
        "filters": {"name": filters.name(base), "rejected": filters.counts(rejected)},
        "generation": {
            "output_tokens": tokens,
            "generate_seconds": round(gen_secs, 3),  # summed over shards (GPU-seconds)
            "tokens_per_second": round(tokens / gen_secs, 1) if gen_secs else 0.0,  # per GPU
            "wall_seconds": round(wall, 3),  # first shard's start to last shard's end
            "aggregate_tokens_per_second": round(tokens / wall, 1) if wall else 0.0,
        },
        "shards": shards,
        "leak": ref.get("leak", {}),  # every shard checks the whole corpus: the same in all
        "seconds": {k: round(v, 3) for k, v in seconds.items()},  # summed over shards
        "versions": versions(),
    }


def _corpus(jobs: list[JobDir]) -> dict[str, dict[str, str]] | None:
    """The corpus of a finished shard; refuses shards that read different documents."""
    out: dict[str, dict[str, str]] = {}
    for s in SPLITS:
        paths = [
            j.path / f"{s}_corpus.json"
            for j in jobs
            if j.finished and (j.path / f"{s}_corpus.json").exists()
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


def _unique(records: Any) -> list[dict]:
    seen, out = set(), []
    for r in records:
        if r["key"] not in seen:
            seen.add(r["key"])
            out.append(r)
    return out


def _rejected(row: dict, stage: str, reason: str, raw: str = "", **extra: Any) -> dict:
    """The rejected record one run would have written for this row (pipeline.Generator.reject)."""
    return {
        "key": Row(**row).key,
        "split": row["split"],
        "chunk_id": row["chunk_id"],
        "source": row["source"],
        "q_index": row["q_index"],
        "stage": stage,
        "reason": reason,
        "question": row["question"],
        "raw": raw,
        **extra,
    }


def _duplicate(row: dict, twin: tuple[str, float]) -> dict:
    """A question asked in two shards: the later one in dataset order."""
    return _rejected(
        row, "question", "duplicate", duplicate_of=twin[0], similarity=round(twin[1], 3)
    )


def _near_duplicate(row: dict, drop: filters.Drop, name: str) -> dict:
    """An answer another shard already gave for another chunk."""
    return _rejected(row, "answer", drop.reason, row["answer"], **drop.record(), filters=name)


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}

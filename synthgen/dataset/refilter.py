"""task=filter: a finished run dir through the quality gates again, into a new run dir.

For tightening (or loosening) the gates after seeing the data, without generating again:

    python run.py task=filter filter.data=outputs/<run> filters=strict

No language model is loaded (the embedding gate, when on, loads only its embedder). The source
run dir is only read; the command's own run dir gets every file a generate run writes, built
from the kept rows, and a rejected.jsonl with the source's rejects plus the newly dropped rows.
The echo gate compares against the source run's prompt templates (they made its text).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.config import ConfigError, SynthgenError
from synthgen.dataset import filters, writing
from synthgen.embed import embedding
from synthgen.records import Row
from synthgen.scale import sharding

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


def refilter(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from synthgen.dataset.pipeline import RunState, now, versions

    t0, started = time.perf_counter(), now()
    src = embedding.run_dir_arg(OmegaConf.select(cfg, "filter.data"), "filter.data")
    embedding.check_out_dir(run_dir, src, "filter.data")
    if not (src / sharding.DONE).exists() or not (src / "config.yaml").exists():
        raise ConfigError(
            f"filter.data: {src} is not a finished run dir (no {sharding.DONE} or config.yaml); "
            "finish it first: run its command again with the same hydra.run.dir"
        )
    source_cfg = OmegaConf.load(src / "config.yaml")
    filters.check(cfg)
    gates = filters.Gates(cfg, source_cfg.get("prompt"))
    gates.prepare()
    try:
        state = RunState.load(src, repair=False)
        rows = {s: _load(src / f"{s}.json") for s in SPLITS}  # the dataset, in dataset order
        corpus = {s: _load(src / f"{s}_corpus.json") for s in SPLITS}
    except (OSError, ValueError) as e:
        raise SynthgenError(f"filter.data: {e}") from None
    source_summary = _load(src / "summary.json") if (src / "summary.json").exists() else {}

    kept: dict[str, list[dict]] = {s: [] for s in SPLITS}
    dropped: list[dict] = []
    for s in SPLITS:
        for r in rows[s]:  # dataset order: of two near-duplicate answers the first stays
            stage, drop = "question", gates.question(r["question"], r["doc"])
            if drop is None:
                stage = "answer"
                drop = gates.answer(r["answer"], r["doc"], r["question"], s, r["chunk_id"])
            if drop is None:
                gates.accept(r["answer"], s, r["chunk_id"])
                kept[s].append(r)
            else:
                dropped.append(_reject(r, stage, drop, gates.name))
    # accepted questions (answered or not) that the question gates still accept
    questions = [
        q
        for q in state.questions
        if gates.question(q["question"], corpus[q["split"]].get(q["chunk_id"], "")) is None
    ]
    rejected = [*state.rejected, *dropped]

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / sharding.DONE).unlink(missing_ok=True)
    for s in SPLITS:
        writing.write_jsonl(run_dir / f"{s}.jsonl", kept[s])
    writing.write_jsonl(run_dir / "rejected.jsonl", rejected)
    writing.write_jsonl(run_dir / "questions.jsonl", questions)
    files = writing.write_outputs(run_dir, kept, corpus)
    out_cfg = OmegaConf.create(OmegaConf.to_container(source_cfg, resolve=True))
    out_cfg.filters = OmegaConf.to_container(cfg.filters, resolve=True) if "filters" in cfg else {}
    out_cfg.task = "filter"
    out_cfg.filter = {"data": str(src)}
    tmp = run_dir / "config.yaml.tmp"
    OmegaConf.save(out_cfg, tmp)
    os.replace(tmp, run_dir / "config.yaml")

    summary = _summary(source_summary, src, run_dir, rows, kept, rejected, dropped, gates.name)
    summary.update(
        started=started,
        finished=now(),
        versions=versions(),
        files=sorted([*files, "config.yaml", "summary.json", *writing.JSONL_FILES, sharding.DONE]),
    )
    summary["seconds"] = {
        **source_summary.get("seconds", {}),
        "filter": round(time.perf_counter() - t0, 3),
    }
    writing.write_json(run_dir / "summary.json", summary)
    writing.write_json(run_dir / sharding.DONE, {"finished": summary["finished"]})  # last
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


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _reject(row: dict, stage: str, drop: filters.Drop, name: str) -> dict:
    """The rejected.jsonl line a generate run would have written for this row."""
    return {
        "key": Row(**row).key,
        "split": row["split"],
        "chunk_id": row["chunk_id"],
        "source": row["source"],
        "q_index": row["q_index"],
        "stage": stage,
        "reason": drop.reason,
        "question": row["question"],
        "raw": row["question"] if stage == "question" else row["answer"],
        **drop.record(),
        "filters": name,
        "task": "filter",
    }


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
    from collections import Counter

    out = {k: v for k, v in source.items() if k != "this_session"}  # no generation ran here
    splits = {}
    for s in SPLITS:
        rq = Counter(r["reason"] for r in rejected if r["split"] == s and r["stage"] == "question")
        ra = Counter(r["reason"] for r in rejected if r["split"] == s and r["stage"] == "answer")
        splits[s] = {
            **source.get("splits", {}).get(s, {}),
            "rows": len(kept[s]),
            "duplicates": rq.get("duplicate", 0),
            "rejected_questions": dict(sorted(rq.items())),
            "rejected_answers": dict(sorted(ra.items())),
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

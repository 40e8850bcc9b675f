"""task=export: a run dir's Q/A pairs in the layouts embedding trainers and benchmarks read.

flag  FlagEmbedding's fine-tuning JSONL: {"query", "pos": [chunk], "neg": [chunks]}.
st    sentence-transformers columns anchor, positive[, negative_1..k], as JSONL per split
      (datasets.load_dataset("json", ...)) and as a DatasetDict (datasets.load_from_disk).
beir  one BEIR folder per split: corpus.jsonl (every chunk of the split), queries.jsonl and
      qrels/<split>.tsv, so beir's GenericDataLoader(...).load(split) scores what eval.json does.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.embed import embedding, negatives
from synthgen.errors import ConfigError
from synthgen.rundir import CONFIG, SPLITS, SUMMARY
from synthgen.rundir.reading import Split, check_out_dir, load_split, run_dir_arg
from synthgen.tasks import TaskRun, task

log = logging.getLogger(__name__)
FORMATS = ("flag", "st", "beir")


def _jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_flag(path: Path, split: Split, negs: list[list[str]]) -> int:
    _jsonl(
        path,
        [
            {"query": r["question"], "pos": [split.positive(r)], "neg": n}
            for r, n in zip(split.rows, negs, strict=True)
        ],
    )
    return len(split.rows)


def st_records(split: Split, negs: list[list[str]] | None) -> list[dict]:
    out = []
    for i, r in enumerate(split.rows):
        rec = {"anchor": r["question"], "positive": split.positive(r)}
        for j, n in enumerate(negs[i] if negs else []):
            rec[f"negative_{j + 1}"] = n
        out.append(rec)
    return out


def write_beir(folder: Path, split: Split) -> dict[str, int]:
    _jsonl(
        folder / "corpus.jsonl",
        [{"_id": cid, "title": "", "text": text} for cid, text in split.corpus.items()],
    )
    _jsonl(folder / "queries.jsonl", [{"_id": r["id"], "text": r["question"]} for r in split.rows])
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "qrels" / f"{split.name}.tsv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["query-id", "corpus-id", "score"])
        for r in split.rows:
            w.writerow([r["id"], r["chunk_id"], 1])
    return {"corpus": len(split.corpus), "queries": len(split.rows)}


def check(cfg: DictConfig) -> tuple[list[str], list[str]]:
    ex = cfg.export
    formats = list(ex.formats) if OmegaConf.is_list(ex.formats) else [ex.formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(
            f"export.formats: unknown format {bad[0] if bad else '(none)'!r} "
            f"(available: {', '.join(FORMATS)})"
        )
    splits = list(ex.splits) if OmegaConf.is_list(ex.splits) else [ex.splits]
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(f"export.splits: must be train and/or val, got {list(splits)!r}")
    for key in ("hard_negatives", "random_negatives", "seed"):
        v = ex[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"export.{key}: must be an integer >= 0, got {v!r}")
    if ex.hard_negatives > 0:
        embedding.check_embedder(cfg)
    return formats, splits


@task("export")
def export(t: TaskRun) -> dict[str, Any]:
    cfg, run_dir = t.cfg, t.run_dir
    ex = cfg.export
    data = run_dir_arg(ex.data, "export.data")
    formats, split_names = check(cfg)
    embedding.require(
        "export", "datasets", *(["sentence_transformers"] if ex.hard_negatives else [])
    )
    splits = {s: load_split(data, s, "export.data") for s in split_names}
    run_dir.mkdir(parents=True, exist_ok=True)
    check_out_dir(run_dir, data, "export.data")
    t.save_config()

    mined = _mine(cfg, splits) if ex.hard_negatives > 0 and {"flag", "st"} & set(formats) else {}
    counts: dict[str, dict] = {}
    flag_random: dict[str, int] = {}
    files: list[str] = [CONFIG, SUMMARY]
    for fmt in formats:
        if fmt == "flag":
            counts[fmt], flag_random = export_flag(cfg, run_dir, splits, mined, files)
        elif fmt == "st":
            counts[fmt] = export_st(run_dir, splits, mined, files)
        else:
            counts[fmt] = {n: write_beir(run_dir / "beir" / n, sp) for n, sp in splits.items()}
            files += [f"beir/{n}/" for n in splits]
    summary = t.finish(
        {
            "data": str(data),
            "formats": formats,
            "splits": split_names,
            "counts": counts,
            "negatives": {
                "mined": {s: m.stats for s, m in mined.items()} or None,
                "embedder": str(cfg.embedder.name_or_path) if mined else None,
                "flag_rows_with_random": flag_random,  # split -> rows given random negatives
            },
            "files": sorted(files),
        }
    )
    log.info("exported %s of %s -> %s", ", ".join(formats), data, run_dir)
    return summary


def _mine(cfg: DictConfig, splits: dict[str, Split]) -> dict[str, negatives.Mined]:
    """export.hard_negatives per row of each split, mined by the base embedder."""
    from synthgen.embed.finetune import guard_of

    model = embedding.load_embedder(cfg)
    return {
        name: negatives.mine(
            model,
            split,
            int(cfg.export.hard_negatives),
            guard_of(cfg),
            int(cfg.finetune.mining.range_max),
            embedding.query_prefix(cfg),
            int(cfg.embedder.batch_size),
            int(cfg.export.seed),
            key="export.hard_negatives",
        )
        for name, split in splits.items()
    }


def export_flag(
    cfg: DictConfig,
    run_dir: Path,
    splits: dict[str, Split],
    mined: dict[str, negatives.Mined],
    files: list[str],
) -> tuple[dict[str, int], dict[str, int]]:
    """flag/<split>.jsonl; (rows per split, rows per split given random negatives)."""
    ex = cfg.export
    counts: dict[str, int] = {}
    flag_random: dict[str, int] = {}
    for name, split in splits.items():
        k = int(ex.hard_negatives) if name in mined else int(ex.random_negatives)
        rand = negatives.random_negatives(split, k, int(ex.seed))
        # a row the guard left bare gets random negatives, as FlagEmbedding's own miner
        # tops up (its trainer cannot use "neg": [])
        if name in mined:
            negs = [n or r for n, r in zip(mined[name].negatives, rand, strict=True)]
            flag_random[name] = sum(1 for n in mined[name].negatives if not n)
        else:
            negs, flag_random[name] = rand, len(rand)
        counts[name] = write_flag(run_dir / "flag" / f"{name}.jsonl", split, negs)
        files.append(f"flag/{name}.jsonl")
    return counts, flag_random


def export_st(
    run_dir: Path,
    splits: dict[str, Split],
    mined: dict[str, negatives.Mined],
    files: list[str],
) -> dict[str, int]:
    """st/<split>.jsonl (+ <split>_pairs.jsonl) and st/dataset/; rows per split."""
    from datasets import Dataset, DatasetDict

    counts: dict[str, int] = {}
    parts = {}
    for name, split in splits.items():
        negs = mined[name].negatives if name in mined else None
        recs = st_records(split, negs)
        # MNRL needs equal columns: rows the guard left bare go to <split>_pairs
        full = [r for r in recs if len(r) > 2 or not negs]
        bare = [r for r in recs if len(r) == 2 and negs]
        for part, part_recs in ((name, full), (f"{name}_pairs", bare)):
            if part_recs:
                _jsonl(run_dir / "st" / f"{part}.jsonl", part_recs)
                parts[part] = Dataset.from_list(part_recs)
                files.append(f"st/{part}.jsonl")
        counts[name] = len(recs)
    DatasetDict(parts).save_to_disk(str(run_dir / "st" / "dataset"))
    files.append("st/dataset/")
    return counts

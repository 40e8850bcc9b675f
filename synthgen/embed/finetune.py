"""task=finetune: train an embedding model on a run dir's train split, then score it on val.

Each train row gives one (question, source chunk) pair. MultipleNegativesRankingLoss treats the
other chunks of the batch as negatives, so the batch sampler keeps any text out of a batch that
already holds it: with several questions per chunk, a copy of the positive would otherwise be
a false negative. Optional hard negatives come from the train split's own chunks
(synthgen.embed.negatives). The val split is never trained on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen import rundir
from synthgen.checks import integer, need, number
from synthgen.embed import embedding, evaluate, negatives
from synthgen.embed.training import (  # noqa: F401  (names this module has always offered)
    load_model,
    make_loss,
    save_model,
    train_dataset,
    train_model,
    training_args,
    warmup_steps,
)
from synthgen.errors import ConfigError
from synthgen.rundir import CONFIG, SUMMARY, identity
from synthgen.rundir.identity import row_config_diff
from synthgen.rundir.reading import Split, check_out_dir, load_split, run_dir_arg
from synthgen.tasks import TaskRun, task

log = logging.getLogger(__name__)

LOSSES = ("mnrl", "cached_mnrl")
BACKENDS = ("sentence_transformers", "unsloth")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def check(cfg: DictConfig) -> None:
    """Validate finetune.* and the embedder before any data or weights load."""
    ft = cfg.finetune
    if ft.backend not in BACKENDS:
        raise ConfigError(
            f"finetune.backend: must be one of {', '.join(BACKENDS)}, got {ft.backend!r}"
        )
    if ft.loss not in LOSSES:
        raise ConfigError(f"finetune.loss: must be one of {', '.join(LOSSES)}, got {ft.loss!r}")
    if ft.precision not in PRECISIONS:
        raise ConfigError(
            f"finetune.precision: must be one of {', '.join(PRECISIONS)}, got {ft.precision!r}"
        )
    number(cfg, "finetune.epochs", 1)
    if OmegaConf.select(cfg, "finetune.max_steps") != -1:  # -1: all epochs
        integer(cfg, "finetune.max_steps", 1)
    number(cfg, "finetune.lr", 0)
    need(ft.lr > 0, f"finetune.lr: must be > 0, got {ft.lr!r}")
    number(cfg, "finetune.weight_decay", 0)
    number(cfg, "finetune.warmup", 0)
    integer(cfg, "finetune.seed", 0)
    integer(cfg, "finetune.save_total_limit", 1)
    integer(cfg, "finetune.mini_batch_size", 1)
    k = integer(cfg, "finetune.hard_negatives", 0)
    bs = integer(cfg, "finetune.batch_size", 1)
    need(
        bs >= 2 or k > 0,
        "finetune.batch_size: must be >= 2 without hard negatives (MNRL's negatives are the "
        "other chunks of the batch)",
    )
    integer(cfg, "finetune.mining.range_max", max(1, k))
    for m, low in (("relative_margin", 0), ("absolute_margin", 0), ("max_score", -1)):
        if OmegaConf.select(cfg, f"finetune.mining.{m}") is not None:  # null: that guard is off
            number(cfg, f"finetune.mining.{m}", low)
    r = integer(cfg, "finetune.lora_r", 0)
    number(cfg, "finetune.lora_alpha", 1)
    need(
        r == 0 or ft.backend == "unsloth",
        "finetune.lora_r: LoRA is offered with finetune.backend=unsloth only",
    )
    integer(cfg, "embedder.max_seq_length", 8)
    integer(cfg, "embedder.batch_size", 1)
    embedding.check_embedder(cfg)


def guard_of(cfg: DictConfig) -> negatives.Guard:
    m = cfg.finetune.mining
    return negatives.Guard(m.relative_margin, m.absolute_margin, m.max_score)


def _resume_point(cfg: DictConfig, run_dir: Path, ckpt_dir: Path) -> str | None:
    """The last checkpoint to continue from, if the run dir holds one made with this config."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last is None:
        return None
    if not cfg.finetune.resume:
        raise ConfigError(
            f"finetune.resume: {ckpt_dir} already holds checkpoints; set finetune.resume=true "
            "to continue them or choose a new hydra.run.dir"
        )
    if rundir.has_config(run_dir):
        old, new = _train_keys(rundir.load_config(run_dir)), _train_keys(cfg)
        diff = row_config_diff(old, new)
        if diff:
            raise ConfigError(
                f"finetune.resume: {run_dir} was trained with another config ({diff}); "
                "use a new hydra.run.dir or the old value"
            )
    return last


def _train_keys(cfg: DictConfig) -> dict[str, Any]:
    """The keys that decide a checkpoint: finetune.* and embedder.*, but not finetune.resume
    and finetune.evaluate (whether to continue, what to measure after)."""
    keys = [
        f"{g}.{k}"
        for g in ("finetune", "embedder")
        for k in cfg[g]
        if k not in ("resume", "evaluate")
    ]
    return identity.flat(cfg, keys)


# --- the finetune task ---------------------------------------------------------------------------


@task("finetune")
def finetune(t: TaskRun) -> dict[str, Any]:
    cfg, run_dir = t.cfg, t.run_dir
    ft = cfg.finetune
    data, train, val = _inputs(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_out_dir(run_dir, data, "finetune.data")
    ckpt_dir, model_dir = run_dir / "checkpoints", run_dir / "model"
    resume_from = _resume_point(cfg, run_dir, ckpt_dir)
    t.save_config()

    import torch
    import transformers

    transformers.set_seed(int(ft.seed))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with _timed(t.seconds, "load"):
        model = load_model(cfg)
    prefix, bs = embedding.query_prefix(cfg), int(cfg.embedder.batch_size)
    mined = None
    if ft.hard_negatives > 0:
        with _timed(t.seconds, "mine"):
            mined = mine_negatives(cfg, model, train, run_dir / "negatives.jsonl")
    precomputed = _score_base(t, model, val, prefix, bs)
    dataset = train_dataset(train, mined.negatives if mined else None)
    with _timed(t.seconds, "train"):
        result, losses = train_model(cfg, model, dataset, ckpt_dir, len(train.rows), resume_from)
    with _timed(t.seconds, "save"):
        save_model(cfg, model, model_dir)
    ev = None
    if val is not None:
        del model
        with _timed(t.seconds, "evaluate_tuned"):
            tuned = embedding.load_embedder(cfg, model_dir, "hydra.run.dir")  # the saved model
            names = {"base": str(cfg.embedder.name_or_path), "tuned": str(model_dir)}
            ev = evaluate.run_eval(cfg, val, run_dir, None, tuned, names, precomputed)

    summary = t.finish(
        {
            "data": str(data),
            "embedder": str(cfg.embedder.name_or_path),
            "query_prefix": prefix,
            "backend": str(ft.backend),
            "loss": str(ft.loss),
            "model_dir": str(model_dir),
            "train": _train_record(cfg, train, dataset, result, losses, resume_from, device),
            "hard_negatives": mined.stats if mined else None,
            "eval": ev,
            "files": _files(mined, ev),
        },
        versions=("sentence-transformers", "datasets", "accelerate"),
    )
    log.info("tuned model -> %s", model_dir)
    return summary


def _score_base(
    t: TaskRun, model: Any, val: Split | None, prefix: str, batch_size: int
) -> dict[str, dict]:
    """{"base": the untrained model's scores on val}, taken before training changes its
    weights, so the evaluation after it loads only the tuned model; {} without val."""
    if val is None:
        return {}
    with _timed(t.seconds, "evaluate_base"):
        d = t.run_dir / "predictions" / "base"
        d.mkdir(parents=True, exist_ok=True)
        return {"base": evaluate.score_model(model, val, prefix, batch_size, d)}


def _files(mined: negatives.Mined | None, ev: dict[str, Any] | None) -> list[str]:
    """summary.json's `files`: the model and its checkpoints, and what mining and the
    evaluation wrote where they ran."""
    files = ["checkpoints/", CONFIG, "model/", SUMMARY]
    if mined:
        files.append("negatives.jsonl")
    if ev:
        files += ["eval.json", "eval.md", "eval.png", "predictions/"]
    return sorted(files)


def _train_record(
    cfg: DictConfig,
    train: Split,
    dataset: Any,
    result: Any,
    losses: list[dict],
    resume_from: str | None,
    device: str,
) -> dict[str, Any]:
    return {
        "pairs": len(train.rows),
        "chunks_with_questions": len({r["chunk_id"] for r in train.rows}),
        "corpus_chunks": len(train.corpus),
        "columns": dataset.column_names,  # {dataset: columns} when split in two
        "batch_size": int(cfg.finetune.batch_size),
        "epochs": float(cfg.finetune.epochs),
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "resumed_from": resume_from,
        "losses": losses,
        "device": device,
    }


def _inputs(cfg: DictConfig) -> tuple[Path, Split, Split | None]:
    """The data run dir, its train split and (finetune.evaluate) its val split, checked
    before anything is written or loaded."""
    ft = cfg.finetune
    data = run_dir_arg(ft.data, "finetune.data")
    check(cfg)
    embedding.require("finetune", "sentence_transformers", "datasets", "accelerate", "matplotlib")
    train = load_split(data, "train", "finetune.data")
    val = None
    if ft.evaluate:
        try:
            val = load_split(data, "val", "finetune.data")
        except ConfigError as e:
            raise ConfigError(f"{e}; finetune.evaluate=false trains without a val split") from None
    return data, train, val


@contextmanager
def _timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    seconds[key] = time.perf_counter() - t


def mine_negatives(cfg: DictConfig, model: Any, train: Split, path: Path) -> negatives.Mined:
    """finetune.hard_negatives per train row, kept in `path` by chunk id for a look later."""
    ft = cfg.finetune
    mined = negatives.mine(
        model,
        train,
        int(ft.hard_negatives),
        guard_of(cfg),
        int(ft.mining.range_max),
        embedding.query_prefix(cfg),
        int(cfg.embedder.batch_size),
        int(ft.seed),
    )
    ids: dict[str, str] = {}
    for cid, text in train.corpus.items():
        ids.setdefault(text, cid)
    with open(path, "w", encoding="utf-8") as f:
        for row, negs in zip(train.rows, mined.negatives, strict=True):
            rec = {"id": row["id"], "question": row["question"], "chunk_id": row["chunk_id"]}
            rec["negatives"] = [ids[n] for n in negs]
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return mined

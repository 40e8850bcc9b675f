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
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.config import ConfigError, _flatten, row_config_diff
from synthgen.dataset import writing
from synthgen.embed import embedding, evaluate, negatives

log = logging.getLogger(__name__)

LOSSES = ("mnrl", "cached_mnrl")
BACKENDS = ("sentence_transformers", "unsloth")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _num(cfg: DictConfig, key: str, low: float, integer: bool = False, null: bool = False) -> Any:
    v = OmegaConf.select(cfg, key)
    if v is None and null:
        return None
    kind = int if integer else (int, float)
    if isinstance(v, bool) or not isinstance(v, kind) or v < low:
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: must be {what} >= {low}{' or null' if null else ''}, got {v!r}")
    return v


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
    _num(cfg, "finetune.epochs", 1)
    steps = OmegaConf.select(cfg, "finetune.max_steps")
    if steps != -1:
        _num(cfg, "finetune.max_steps", 1, integer=True)
    _num(cfg, "finetune.lr", 0)
    if ft.lr <= 0:
        raise ConfigError(f"finetune.lr: must be > 0, got {ft.lr!r}")
    _num(cfg, "finetune.weight_decay", 0)
    _num(cfg, "finetune.warmup", 0)
    _num(cfg, "finetune.seed", 0, integer=True)
    _num(cfg, "finetune.save_total_limit", 1, integer=True)
    _num(cfg, "finetune.mini_batch_size", 1, integer=True)
    k = _num(cfg, "finetune.hard_negatives", 0, integer=True)
    bs = _num(cfg, "finetune.batch_size", 1, integer=True)
    if bs < 2 and k == 0:
        raise ConfigError(
            "finetune.batch_size: must be >= 2 without hard negatives (MNRL's negatives are the "
            "other chunks of the batch)"
        )
    _num(cfg, "finetune.mining.range_max", max(1, k), integer=True)
    for m in ("relative_margin", "absolute_margin", "max_score"):
        _num(cfg, f"finetune.mining.{m}", -1 if m == "max_score" else 0, null=True)
    r = _num(cfg, "finetune.lora_r", 0, integer=True)
    _num(cfg, "finetune.lora_alpha", 1)
    if r > 0 and ft.backend != "unsloth":
        raise ConfigError("finetune.lora_r: LoRA is offered with finetune.backend=unsloth only")
    _num(cfg, "embedder.max_seq_length", 8, integer=True)
    _num(cfg, "embedder.batch_size", 1, integer=True)
    embedding.check_embedder(cfg)


def guard_of(cfg: DictConfig) -> negatives.Guard:
    m = cfg.finetune.mining
    return negatives.Guard(m.relative_margin, m.absolute_margin, m.max_score)


# --- model and training ------------------------------------------------------------------------


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _precision(name: str) -> dict[str, bool]:
    import torch

    if name == "auto":
        if not torch.cuda.is_available():
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    return {"fp16": name == "fp16", "bf16": name == "bf16"}


def load_model(cfg: DictConfig) -> Any:
    """The model to train: plain sentence-transformers, or Unsloth's FastSentenceTransformer."""
    ft = cfg.finetune
    if ft.backend == "sentence_transformers":
        return embedding.load_embedder(cfg)
    try:
        # Unsloth patches transformers and peft on import: import it first (nothing here did)
        from unsloth import FastSentenceTransformer
    except ImportError as e:
        raise ConfigError(
            f"finetune.backend: unsloth is not importable ({e}); pip install -e '.[unsloth]' "
            "on a CUDA machine"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("finetune.backend: unsloth needs a CUDA GPU; use sentence_transformers")
    name = embedding.check_embedder(cfg)
    model = FastSentenceTransformer.from_pretrained(
        name,
        max_seq_length=int(cfg.embedder.max_seq_length),
        full_finetuning=ft.lora_r == 0,
        random_state=int(ft.seed),
    )
    if ft.lora_r > 0:
        model = FastSentenceTransformer.get_peft_model(
            model,
            r=int(ft.lora_r),
            lora_alpha=float(ft.lora_alpha),
            lora_dropout=0.0,
            bias="none",
            random_state=int(ft.seed),
            task_type="FEATURE_EXTRACTION",
        )
    return model


def make_loss(cfg: DictConfig, model: Any) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    if cfg.finetune.loss == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=int(cfg.finetune.mini_batch_size)
        )
    return MultipleNegativesRankingLoss(model)


def train_dataset(split: embedding.Split, negs: list[list[str]] | None) -> Any:
    """Columns anchor, positive[, negative_1..k]: the layout MNRL reads.

    Rows the negative guard left without any negative form a second dataset of plain pairs
    (the trainer draws each batch from one dataset), so no row is dropped.
    """
    from datasets import Dataset, DatasetDict

    def build(idx: list[int], k: int) -> Any:
        cols: dict[str, list[str]] = {
            "anchor": [split.rows[i]["question"] for i in idx],
            "positive": [split.positive(split.rows[i]) for i in idx],
        }
        for j in range(k):
            cols[f"negative_{j + 1}"] = [negs[i][j] for i in idx]  # type: ignore[index]
        return Dataset.from_dict(cols)

    everyone = list(range(len(split.rows)))
    if not negs:
        return build(everyone, 0)
    k = max(len(n) for n in negs)
    hard = [i for i in everyone if negs[i]]
    pairs = [i for i in everyone if not negs[i]]
    if not pairs:
        return build(hard, k)
    if not hard:
        return build(pairs, 0)
    return DatasetDict({"hard_negatives": build(hard, k), "pairs": build(pairs, 0)})


def warmup_steps(warmup: float, total_steps: int) -> int:
    """Warmup in steps, always leaving one step at a non-zero learning rate.

    A linear warmup starts at lr 0: with 4 pairs and a batch of 32 the only step would
    train nothing, and the "tuned" model would be the base model.
    """
    steps = int(warmup) if warmup >= 1 else math.ceil(warmup * total_steps)
    return max(0, min(steps, total_steps - 1))


def training_args(cfg: DictConfig, out: Path, n_rows: int) -> Any:
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    ft = cfg.finetune
    per_epoch = max(1, math.ceil(n_rows / int(ft.batch_size)))  # NO_DUPLICATES may add a few
    total = int(ft.max_steps) if int(ft.max_steps) > 0 else math.ceil(per_epoch * float(ft.epochs))
    warm = {"warmup_steps": warmup_steps(float(ft.warmup), total)}
    prefix = embedding.query_prefix(cfg)
    return SentenceTransformerTrainingArguments(
        output_dir=str(out),
        num_train_epochs=float(ft.epochs),
        max_steps=int(ft.max_steps),
        per_device_train_batch_size=int(ft.batch_size),
        learning_rate=float(ft.lr),
        weight_decay=float(ft.weight_decay),
        seed=int(ft.seed),
        data_seed=int(ft.seed),
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # no text twice in a batch: no false negatives
        prompts={"anchor": prefix} if prefix else None,  # train questions as they are asked
        save_strategy="epoch",
        save_total_limit=int(ft.save_total_limit),
        logging_strategy="steps",
        logging_steps=0.05,  # a loss line every 5% of the steps
        logging_first_step=True,
        report_to="none",
        dataloader_pin_memory=_cuda(),
        **warm,
        **_precision(str(ft.precision)),
    )


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
    old_path = run_dir / "config.yaml"
    if old_path.exists():
        old, new = _train_keys(OmegaConf.load(old_path)), _train_keys(cfg)
        diff = row_config_diff(old, new)
        if diff:
            raise ConfigError(
                f"finetune.resume: {run_dir} was trained with another config ({diff}); "
                "use a new hydra.run.dir or the old value"
            )
    return last


def _train_keys(cfg: DictConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("finetune", "embedder"):
        value = OmegaConf.to_container(cfg[key], resolve=True)
        for skip in ("resume", "evaluate"):
            value.pop(skip, None)
        _flatten(key, value, out)
    return out


def save_model(cfg: DictConfig, model: Any, path: Path) -> None:
    """The tuned model, its query prefix stored as the "query" prompt that encode_query uses."""
    prefix = embedding.query_prefix(cfg)
    if prefix:
        model.prompts = {**(model.prompts or {}), "query": prefix}
    if cfg.finetune.backend == "unsloth" and cfg.finetune.lora_r > 0:
        model.save_pretrained_merged(str(path))  # adapters merged: loads as a plain model
    else:
        model.save(str(path))


# --- the finetune task ---------------------------------------------------------------------------


def finetune(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from synthgen.dataset.pipeline import now, versions

    started, t0 = now(), time.perf_counter()
    seconds: dict[str, float] = {}
    ft = cfg.finetune
    data = embedding.run_dir_arg(ft.data, "finetune.data")
    check(cfg)
    embedding.require("finetune", "sentence_transformers", "datasets", "accelerate", "matplotlib")
    train = embedding.load_split(data, "train", "finetune.data")
    val = None
    if ft.evaluate:
        try:
            val = embedding.load_split(data, "val", "finetune.data")
        except ConfigError as e:
            raise ConfigError(f"{e}; finetune.evaluate=false trains without a val split") from None
    run_dir.mkdir(parents=True, exist_ok=True)
    embedding.check_out_dir(run_dir, data, "finetune.data")
    ckpt_dir, model_dir = run_dir / "checkpoints", run_dir / "model"
    resume_from = _resume_point(cfg, run_dir, ckpt_dir)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    import torch
    import transformers

    transformers.set_seed(int(ft.seed))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t = time.perf_counter()
    model = load_model(cfg)
    seconds["load"] = time.perf_counter() - t
    prefix, bs = embedding.query_prefix(cfg), int(cfg.embedder.batch_size)

    mined = None
    if ft.hard_negatives > 0:
        t = time.perf_counter()
        mined = negatives.mine(
            model,
            train,
            int(ft.hard_negatives),
            guard_of(cfg),
            int(ft.mining.range_max),
            prefix,
            bs,
            int(ft.seed),
        )
        ids = {}
        for cid, text in train.corpus.items():
            ids.setdefault(text, cid)
        with open(run_dir / "negatives.jsonl", "w", encoding="utf-8") as f:
            for row, negs in zip(train.rows, mined.negatives, strict=True):
                rec = {"id": row["id"], "question": row["question"], "chunk_id": row["chunk_id"]}
                rec["negatives"] = [ids[n] for n in negs]
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        seconds["mine"] = time.perf_counter() - t

    precomputed: dict[str, dict] = {}
    if val is not None:  # the base model's scores, before its weights change
        t = time.perf_counter()
        d = run_dir / "predictions" / "base"
        d.mkdir(parents=True, exist_ok=True)
        precomputed["base"] = evaluate.score_model(model, val, prefix, bs, d)
        seconds["evaluate_base"] = time.perf_counter() - t

    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    dataset = train_dataset(train, mined.negatives if mined else None)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args(cfg, ckpt_dir, len(train.rows)),
        train_dataset=dataset,
        loss=make_loss(cfg, model),
    )
    t = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    save_model(cfg, model, model_dir)
    seconds["save"] = time.perf_counter() - t
    losses = [
        {"step": e["step"], "epoch": round(e.get("epoch", 0), 3), "loss": e["loss"]}
        for e in trainer.state.log_history
        if "loss" in e
    ]

    ev = None
    if val is not None:
        t = time.perf_counter()
        del model, trainer
        tuned = embedding.load_embedder(cfg, model_dir, "hydra.run.dir")  # the saved model
        names = {"base": str(cfg.embedder.name_or_path), "tuned": str(model_dir)}
        ev = evaluate.run_eval(cfg, val, run_dir, None, tuned, names, precomputed)
        seconds["evaluate_tuned"] = time.perf_counter() - t

    seconds["total"] = time.perf_counter() - t0
    files = ["checkpoints/", "config.yaml", "model/", "summary.json"]
    if mined:
        files.append("negatives.jsonl")
    if ev:
        files += ["eval.json", "eval.md", "eval.png", "predictions/"]
    summary = {
        "task": "finetune",
        "status": "complete",
        "data": str(data),
        "embedder": str(cfg.embedder.name_or_path),
        "query_prefix": prefix,
        "backend": str(ft.backend),
        "loss": str(ft.loss),
        "model_dir": str(model_dir),
        "train": {
            "pairs": len(train.rows),
            "chunks_with_questions": len({r["chunk_id"] for r in train.rows}),
            "corpus_chunks": len(train.corpus),
            "columns": dataset.column_names,  # {dataset: columns} when split in two
            "batch_size": int(ft.batch_size),
            "epochs": float(ft.epochs),
            "steps": int(result.global_step),
            "train_loss": float(result.training_loss),
            "resumed_from": resume_from,
            "losses": losses,
            "device": device,
        },
        "hard_negatives": mined.stats if mined else None,
        "eval": ev,
        "files": sorted(files),
        "started": started,
        "finished": now(),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "versions": {**versions(), **_versions()},
    }
    writing.write_json(run_dir / "summary.json", summary)
    log.info("tuned model -> %s", model_dir)
    return summary


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for pkg in ("sentence-transformers", "datasets", "accelerate"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out

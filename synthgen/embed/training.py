"""The model and its training for task=finetune: sentence-transformers or Unsloth, MNRL.

Each train row gives one (question, source chunk) pair. MultipleNegativesRankingLoss treats the
other chunks of the batch as negatives, so the batch sampler keeps any text out of a batch that
already holds it: with several questions per chunk, a copy of the positive would otherwise be
a false negative.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthgen.embed import embedding
from synthgen.errors import ConfigError
from synthgen.rundir.reading import Split


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


def train_dataset(split: Split, negs: list[list[str]] | None) -> Any:
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


def save_model(cfg: DictConfig, model: Any, path: Path) -> None:
    """The tuned model, its query prefix stored as the "query" prompt that encode_query uses."""
    prefix = embedding.query_prefix(cfg)
    if prefix:
        model.prompts = {**(model.prompts or {}), "query": prefix}
    if cfg.finetune.backend == "unsloth" and cfg.finetune.lora_r > 0:
        model.save_pretrained_merged(str(path))  # adapters merged: loads as a plain model
    else:
        model.save(str(path))


def train_model(
    cfg: DictConfig,
    model: Any,
    dataset: Any,
    ckpt_dir: Path,
    n_rows: int,
    resume_from: str | None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Train in place; (the trainer's TrainOutput, the logged losses)."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args(cfg, ckpt_dir, n_rows),
        train_dataset=dataset,
        loss=make_loss(cfg, model),
    )
    result = trainer.train(resume_from_checkpoint=resume_from)
    losses = [
        {"step": e["step"], "epoch": round(e.get("epoch", 0), 3), "loss": e["loss"]}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    return result, losses

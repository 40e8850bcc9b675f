"""The generate task's settings, made once from the checked config and handed to each stage.

`Settings.from_cfg(cfg)` runs after `config.check(cfg)`; from there on a stage gets the small
frozen object it uses (datatrove's steps get theirs at construction), never the whole cfg.
Keys that a config written before they existed lacks take their default here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.config import added
from synthgen.corpus import cleaning
from synthgen.gates import judge_spec
from synthgen.generate import prompting


def _get(cfg: DictConfig, key: str, default: Any) -> Any:
    return OmegaConf.select(cfg, key, default=default)


@dataclass(frozen=True)
class CorpusSettings:
    """The `corpus` group: where the files are and what to do with leaks between splits."""

    dir: Path
    files: dict[str, list[str]]  # split -> file patterns (corpus.<split>_files)
    encoding: str = "auto"  # auto, or a codec name for every text file
    leak: str = "warn"  # drop | warn | fail: val chunks that repeat a train passage
    prepared: Path | None = None  # a task=prepare run dir to take the chunks from

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> CorpusSettings:
        from synthgen.rundir import SPLITS

        return cls(
            dir=Path(cfg.corpus.dir).expanduser(),
            files={s: [str(f) for f in cfg.corpus[f"{s}_files"]] for s in SPLITS},
            encoding=str(_get(cfg, "corpus.encoding", "auto")),
            leak=str(_get(cfg, "corpus.leak", "warn")),
            prepared=Path(p).expanduser() if (p := _get(cfg, "corpus.prepared", None)) else None,
        )


@dataclass(frozen=True)
class ChunkSettings:
    """The `chunking` group: chunk size and overlap in tokens, kept length in characters, and
    what happens to a chunk outside that length (bounds: drop | fit)."""

    size: int
    overlap: int
    min_chars: int
    max_chars: int
    bounds: str = "drop"

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> ChunkSettings:
        c = cfg.chunking
        sizes = (int(c.chunk_size), int(c.chunk_overlap), int(c.min_chars), int(c.max_chars))
        return cls(*sizes, bounds=str(added(cfg, "chunking.bounds")))


@dataclass(frozen=True)
class SelectSettings:
    """Which chunks are asked about: the length bounds (characters) and the `keywords` group."""

    min_chars: int
    max_chars: int
    words: tuple[str, ...]
    match: str  # word | substring

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> SelectSettings:
        k = cfg.keywords
        ch = cfg.chunking
        return cls(int(ch.min_chars), int(ch.max_chars), tuple(k.words), str(k.match))


@dataclass(frozen=True)
class DedupSettings:
    """The `dedup` group; `on=False` for a config from before it (no chunk or leak check)."""

    on: bool = False
    shingle_words: int = 5  # words per shingle
    min_shingles: int = 8  # shorter texts are compared exactly
    chunk_threshold: float = 1.0  # share of shingles: a chunk that repeats one in its split
    leak_threshold: float | None = None  # a val chunk that repeats a train one
    question_threshold: float = 1.0  # a question that repeats one of its split

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> DedupSettings:
        dd = OmegaConf.select(cfg, "dedup")
        if dd is None:
            return cls()
        return cls(
            True,
            int(dd.shingle_words),
            int(dd.min_shingles),
            float(dd.chunk_threshold),
            float(dd.leak_threshold),
            float(dd.question_threshold),
        )


@dataclass(frozen=True)
class PromptSettings:
    """The `prompt` group: templates and what kind of reply each asks for."""

    name: str
    question: str  # template with {context} (and {num_questions} for a list)
    answer: str | None  # template with {context} and {question}; None: questions only
    followup: str | None  # appended with {previous} for a chunk's later questions
    system: str | None
    questions_per_chunk: int
    require_question_mark: bool
    reply: str  # question | qa_pair
    examples: str = ""  # the rendered {examples} block ("" = no worked examples)
    # per stage, stop strings this prompt adds to the model's (prompt.stop_strings)
    stop_strings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    example_passages: tuple[str, ...] = ()  # their passages, checked against the corpus

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> PromptSettings:
        pr = cfg.prompt
        examples = prompting.load_examples(pr.get("examples"))
        return cls(
            name=str(pr.name),
            question=str(pr.question),
            answer=pr.get("answer"),
            followup=pr.get("followup"),
            system=pr.get("system"),
            questions_per_chunk=int(pr.questions_per_chunk),
            require_question_mark=bool(pr.get("require_question_mark", False)),
            reply=prompting.reply_mode(pr),
            examples=prompting.render_examples(
                examples, str(pr.get("example") or ""), str(pr.get("examples_separator") or "")
            ),
            example_passages=tuple(e.passage for e in examples),
            stop_strings={
                str(k): tuple(str(x) for x in v) for k, v in (pr.get("stop_strings") or {}).items()
            },
        )

    @property
    def list_mode(self) -> bool:
        """One prompt asks for all of a chunk's questions ({num_questions})."""
        return prompting.asks_for_list(self.question)

    @property
    def pair(self) -> bool:
        """One reply holds question and answer (prompt.reply=qa_pair)."""
        return self.reply == "qa_pair"

    @property
    def answers(self) -> bool:
        """Questions get an answer prompt of their own."""
        return self.answer is not None and not self.pair


@dataclass(frozen=True)
class GenSettings:
    """The `generation` group: sampling, lengths (tokens), batching and the engine."""

    max_new_tokens: int  # tokens per reply, at most
    min_new_tokens: int  # tokens per reply, at least
    temperature: float
    top_p: float
    do_sample: bool
    seed: int
    batch_size: int | str  # prompts per generate call, or "auto"
    engine: str  # auto | static | continuous | vllm
    prefill_chunk_size: int  # tokens per prefill step (0: whole prompts)
    gpu_memory_utilization: float = 0.9  # vllm: share of the GPU it may take
    enable_prefix_caching: bool = True  # vllm: reuse the KV of shared prompt prefixes
    vllm_feed: str = "stream"  # vllm: how prompts reach the engine
    # model.backend=openai only (backends/openai.py)
    concurrency: int = 8  # requests in flight at once
    max_retries: int = 4  # further attempts after a 429, a 5xx or a timeout
    request_timeout: float = 120.0  # most seconds one request may take (s)
    retry_backoff: float = 1.0  # first wait before a retry (s); it doubles each attempt

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> GenSettings:
        g = cfg.generation
        bs = g.batch_size
        return cls(
            max_new_tokens=int(g.max_new_tokens),
            min_new_tokens=int(g.min_new_tokens),
            temperature=float(g.temperature),
            top_p=float(g.top_p),
            do_sample=bool(g.do_sample),
            seed=int(g.seed),
            batch_size=bs if bs == "auto" else int(bs),
            engine=str(g.get("engine", "auto")),
            prefill_chunk_size=int(g.get("prefill_chunk_size", 0)),
            gpu_memory_utilization=float(g.get("gpu_memory_utilization", 0.9)),
            enable_prefix_caching=bool(g.get("enable_prefix_caching", True)),
            vllm_feed=str(g.get("vllm_feed", "stream")),
            concurrency=int(g.get("concurrency", 8)),
            max_retries=int(g.get("max_retries", 4)),
            request_timeout=float(g.get("request_timeout", 120)),
            retry_backoff=float(g.get("retry_backoff", 1.0)),
        )


@dataclass(frozen=True)
class ShardSettings:
    """This job's part of the dataset: the slots whose chunk id hashes to `index`."""

    count: int = 1
    index: int = 0

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> ShardSettings:
        return cls(int(_get(cfg, "shard.count", 1)), int(_get(cfg, "shard.index", 0)))


@dataclass(frozen=True)
class Settings:
    """Everything the generate task's stages read, made once at the top."""

    num_rows: int  # rows per split, at most
    corpus: CorpusSettings
    cleaning: cleaning.Settings
    chunking: ChunkSettings
    selection: SelectSettings
    dedup: DedupSettings
    prompt: PromptSettings
    generation: GenSettings
    shard: ShardSettings
    model: str  # model.name_or_path: in every row and its key
    system_role: bool  # the chat template has a system role
    max_seq_length: int  # tokens the model takes: prompt and reply
    judge: judge_spec.JudgeSettings = judge_spec.JudgeSettings()  # the judge stage; off by default

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> Settings:
        return cls(
            num_rows=int(cfg.num_rows),
            corpus=CorpusSettings.from_cfg(cfg),
            cleaning=cleaning.Settings.from_cfg(OmegaConf.select(cfg, "cleaning")),
            chunking=ChunkSettings.from_cfg(cfg),
            selection=SelectSettings.from_cfg(cfg),
            dedup=DedupSettings.from_cfg(cfg),
            prompt=PromptSettings.from_cfg(cfg),
            generation=GenSettings.from_cfg(cfg),
            shard=ShardSettings.from_cfg(cfg),
            model=str(cfg.model.name_or_path),
            system_role=bool(cfg.model.get("system_role", True)),
            max_seq_length=int(cfg.model.max_seq_length),
            judge=judge_spec.JudgeSettings.from_cfg(cfg),
        )

    @property
    def max_prompt(self) -> int:
        """Tokens a prompt may have: what the reply leaves of the model's length."""
        return self.max_seq_length - self.generation.max_new_tokens

    @property
    def chunks_needed(self) -> int:
        """Kept chunks per split that num_rows needs."""
        return math.ceil(self.num_rows / self.prompt.questions_per_chunk)

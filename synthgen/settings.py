"""The generate task's settings, made once from the checked config and handed to each stage.

`Settings.from_cfg(cfg)` runs after `config.check(cfg)`; from there on a stage gets the small
frozen object it uses (datatrove's steps get theirs at construction), never the whole cfg.
No default is written here: a composed config holds every key of the schema (synthgen/schema),
and an old run dir's config is brought up to date by rundir.upgrade_config when it is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from synthgen import schema
from synthgen.corpus import cleaning
from synthgen.gates import judge_spec
from synthgen.generate import prompting


@dataclass(frozen=True)
class CorpusSettings:
    """The `corpus` group: where the files are and what to do with leaks between splits."""

    dir: Path
    files: dict[str, list[str]]  # split -> file patterns (corpus.<split>_files)
    encoding: str  # auto, or a codec name for every text file
    leak: str  # drop | warn | fail: val chunks that repeat a train passage
    prepared: Path | None  # a task=prepare run dir to take the chunks from

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> CorpusSettings:
        from synthgen.rundir import SPLITS

        return cls(
            dir=Path(cfg.corpus.dir).expanduser(),
            files={s: [str(f) for f in cfg.corpus[f"{s}_files"]] for s in SPLITS},
            encoding=str(cfg.corpus.encoding),
            leak=str(cfg.corpus.leak),
            prepared=Path(p).expanduser() if (p := cfg.corpus.prepared) else None,
        )


@dataclass(frozen=True)
class ChunkSettings:
    """The `chunking` group: chunk size and overlap in tokens, kept length in characters, and
    what happens to a chunk outside that length (bounds: drop | fit)."""

    size: int
    overlap: int
    min_chars: int
    max_chars: int
    bounds: str

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> ChunkSettings:
        c = cfg.chunking
        sizes = (int(c.chunk_size), int(c.chunk_overlap), int(c.min_chars), int(c.max_chars))
        return cls(*sizes, bounds=str(c.bounds))


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

    on: bool
    shingle_words: int  # words per shingle
    min_shingles: int  # shorter texts are compared exactly
    chunk_threshold: float  # share of shingles: a chunk that repeats one in its split
    leak_threshold: float | None  # a val chunk that repeats a train one
    question_threshold: float  # a question that repeats one of its split

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> DedupSettings:
        dd = OmegaConf.select(cfg, "dedup")
        if dd is None:  # before the dedup stage: exact question repeats only, no leak check
            d = schema.Dedup()
            return cls(False, d.shingle_words, d.min_shingles, 1.0, None, 1.0)
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
            require_question_mark=bool(pr.require_question_mark),
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


# the `generation` keys and this job's shard (shard.*): the schema's dataclasses themselves
GenSettings = schema.Generation
EngineSettings = (  # the `engine` group's option: one dataclass per engine
    schema.engine.Auto
    | schema.engine.Vllm
    | schema.engine.Continuous
    | schema.engine.Static
    | schema.engine.Dynamic
)
ShardSettings = schema.Shard


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
    engine: EngineSettings  # which engine decodes, and its own keys
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
            cleaning=cleaning.settings(OmegaConf.select(cfg, "cleaning")),
            chunking=ChunkSettings.from_cfg(cfg),
            selection=SelectSettings.from_cfg(cfg),
            dedup=DedupSettings.from_cfg(cfg),
            prompt=PromptSettings.from_cfg(cfg),
            generation=schema.build(GenSettings, cfg.generation),
            engine=schema.build(schema.engine.ENGINES[cfg.engine.name], cfg.engine),
            shard=schema.build(ShardSettings, cfg.shard),
            model=str(cfg.model.name_or_path),
            system_role=bool(cfg.model.system_role),
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

"""The batch job: read -> clean -> chunk -> dedup -> select -> prompt -> generate -> parse -> gate
-> dedup -> write.

`run(cfg)` is what run.py calls; tests call it directly with a composed config.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen import rundir
from synthgen.backends.base import Generated, GenParams, ModelSpec, OutOfMemory
from synthgen.backends.base import encode as encode_chat
from synthgen.config import (
    ConfigError,
    ModelLoadError,
    SynthgenError,
    check,
)
from synthgen.dataset import (
    chunking,
    cleaning,
    dedup,
    faults,
    filters,
    prompting,
    reading,
    selection,
    writing,
)
from synthgen.dataset.generation import Job, Stats, drive
from synthgen.records import Chunk, Row, Skipped, Slot, short_hash
from synthgen.rundir import SPLITS, now, runlock, versions
from synthgen.rundir.state import RunState, check_resume, sibling_state
from synthgen.scale import sharding
from synthgen.tasks import TASKS, resolve_run_dir, run  # noqa: F401 (moved; kept importable)

log = logging.getLogger(__name__)


# --- corpus: read, chunk, select ------------------------------------------------------------


@dataclass
class SplitCorpus:
    """One split after reading, cleaning, chunking, dedup and selection, with its counts."""

    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, dict[str, Any]] = field(default_factory=dict)  # non-UTF-8 files
    cleaning: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> counts per rule
    docs: int = 0
    chunks: list[Chunk] = field(default_factory=list)  # every chunk, in file order
    copies: list[dedup.Match] = field(default_factory=list)  # repeats of an earlier chunk
    leaked: list[dedup.Match] = field(default_factory=list)  # val chunks dropped as leaks
    kept: list[Chunk] = field(default_factory=list)  # inside the bounds with a keyword
    rejected: Counter[str] = field(default_factory=Counter)
    used: list[Chunk] = field(default_factory=list)  # the first kept chunks num_rows needs

    def corpus_chunks(self) -> list[Chunk]:
        """The split's retrieval corpus (<split>_corpus.json): copies and dropped leaks out."""
        out = {m.chunk.id for m in [*self.copies, *self.leaked]}
        return [c for c in self.chunks if c.id not in out]

    def counts(self) -> dict[str, Any]:
        return {
            "files_read": len(self.files) - len(self.skipped),
            "files_skipped": [{"file": s.source, "reason": s.reason} for s in self.skipped],
            "file_notes": self.notes,
            "encodings": self.encodings,
            "cleaning": self.cleaning,
            "docs": self.docs,
            "chunks_total": len(self.chunks),
            "chunks_kept": len(self.kept),
            "chunks_rejected": dict(sorted(self.rejected.items())),
            "chunks_used": len(self.used),
            "duplicate_chunks": [m.record() for m in self.copies],
        }


def load_corpus(
    cfg: DictConfig, seconds: Counter[str], leak_report: dict[str, Any] | None = None
) -> dict[str, SplitCorpus]:
    """Read, clean, chunk, dedup, check for leaks, select. `leak_report` gets the leak check."""
    directory = Path(cfg.corpus.dir).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"corpus.dir: folder {str(directory)!r} not found")
    per_chunk = cfg.prompt.questions_per_chunk
    need = math.ceil(cfg.num_rows / per_chunk)
    out: dict[str, SplitCorpus] = {}
    files = {
        s: reading.resolve_files(directory, list(cfg.corpus[f"{s}_files"]), f"corpus.{s}_files")
        for s in SPLITS
    }  # every list is checked before any file is read
    both = sorted(set(files["train"]) & set(files["val"]))
    if both:  # a chunk in both splits would leak val into train, and share its row keys
        name = both[0].relative_to(directory).as_posix()
        raise ConfigError(
            f"corpus.val_files: {name!r} is also in corpus.train_files; a file belongs to one split"
        )
    encoding = str(OmegaConf.select(cfg, "corpus.encoding", default="auto"))
    clean = cleaning.Settings.from_cfg(OmegaConf.select(cfg, "cleaning"))
    dd = OmegaConf.select(cfg, "dedup")
    k = int(dd.shingle_words) if dd is not None else 5
    min_sh = int(dd.min_shingles) if dd is not None else 8
    for split in SPLITS:
        sc = SplitCorpus(files=[p.relative_to(directory).as_posix() for p in files[split]])
        t = time.perf_counter()
        got = reading.read_corpus(directory, files[split], encoding, clean)
        sc.skipped, sc.notes, sc.encodings, sc.cleaning = (
            got.skipped,
            got.notes,
            got.encodings,
            got.cleaning,
        )
        sc.docs = len(got.docs)
        seconds["read"] += time.perf_counter() - t
        t = time.perf_counter()
        sc.chunks = chunking.chunk_docs(
            got.docs, cfg.chunking.chunk_size, cfg.chunking.chunk_overlap
        )
        faults.point("chunk")
        if dd is not None:  # the same passage twice in one split is generated once
            sc.copies = dedup.copies(sc.chunks, k, float(dd.chunk_threshold), min_sh)
        seconds["chunk"] += time.perf_counter() - t
        out[split] = sc

    t = time.perf_counter()
    action = str(OmegaConf.select(cfg, "corpus.leak", default="warn"))
    copy_ids = {s: {m.chunk.id for m in out[s].copies} for s in SPLITS}
    pairs: list[dedup.Match] = []
    if dd is not None:
        pairs = dedup.leaks(
            [c for c in out["train"].chunks if c.id not in copy_ids["train"]],
            [c for c in out["val"].chunks if c.id not in copy_ids["val"]],
            k,
            float(dd.leak_threshold),
            min_sh,
        )
    seconds["dedup"] += time.perf_counter() - t
    if pairs:
        first = pairs[0]
        what = (
            f"{len(pairs)} val chunk(s) repeat a train passage (val {first.chunk.source!r} "
            f"chunk {first.chunk.id} ~ train {first.of.source!r} chunk {first.of.id}, "
            f"overlap {first.similarity:.2f}"
            + (f"; and {len(pairs) - 1} more" if len(pairs) > 1 else "")
            + ")"
        )
        if action == "fail":
            raise ConfigError(
                f"corpus.leak: {what}; fix the file lists, or set corpus.leak=drop to leave "
                "the val copies out (warn: keep them and report)"
            )
        log.warning("leak between splits: %s; corpus.leak=%s", what, action)
        if action == "drop":
            out["val"].leaked = pairs
    if leak_report is not None:
        leak_report.update(
            action=action,
            threshold=float(dd.leak_threshold) if dd is not None else None,
            pairs=[m.record("val", "train") for m in pairs],
            dropped=len(out["val"].leaked),
        )

    for split in SPLITS:
        sc = out[split]
        t = time.perf_counter()
        gone = {m.chunk.id for m in sc.leaked}
        sc.rejected = Counter()
        if sc.copies:
            sc.rejected["duplicate"] = len(sc.copies)
        if gone:
            sc.rejected["leak"] = len(gone)
        candidates = [c for c in sc.chunks if c.id not in copy_ids[split] and c.id not in gone]
        sc.kept, rejected = selection.select(
            candidates,
            cfg.chunking.min_chars,
            cfg.chunking.max_chars,
            list(cfg.keywords.words),
            cfg.keywords.match,
        )
        sc.rejected.update(rejected)
        sc.used = sc.kept[:need]
        seconds["select"] += time.perf_counter() - t
    return out


def make_slots(cfg: DictConfig, corpus: dict[str, SplitCorpus]) -> dict[str, list[Slot]]:
    """Every (chunk, question index) to fill, at most num_rows per split, in dataset order."""
    k = cfg.prompt.questions_per_chunk
    slots = {}
    for split, sc in corpus.items():
        s = [
            Slot(split, c, i, cfg.prompt.name, cfg.model.name_or_path)
            for c in sc.used
            for i in range(k)
        ]
        slots[split] = s[: cfg.num_rows]
    return slots


# --- generation -----------------------------------------------------------------------------


class Generator:
    """Turns slots into rows through one backend, writing every result as it lands."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        encode: Any,
        state: RunState,
        *,
        gates: filters.Gates | None = None,
        accept_any: bool = False,
        params_for: Any = None,
    ) -> None:
        """gates: the quality gates (default: conf/filters as composed). accept_any and
        params_for are for benchmarks only (benchmarks/workload.py):

        - accept_any: a question or answer the parser or the dedup would reject is kept as
          generated (its raw text, or "<empty>"), and counted in `overridden`. Random weights
          write the same garbage for every chunk; this keeps the workload's shape (every
          question gets its answer call) as a real model that passes the gates would.
        - params_for(stage, slot) -> GenParams | None: a prompt's own settings (each row's
          output length forced to a drawn value).
        """
        self.cfg, self.run_dir, self.encode = cfg, run_dir, encode
        self.pr = cfg.prompt
        self.list_mode = prompting.asks_for_list(self.pr.question)
        self.pair = prompting.reply_mode(self.pr) == "qa_pair"  # one reply: question and answer
        self.answers = self.pr.get("answer") is not None and not self.pair  # an answer stage
        self.accept_any, self.params_for = accept_any, params_for
        self.overridden: Counter[str] = Counter()  # accept_any: "stage:reason" kept anyway
        self.max_prompt = cfg.model.max_seq_length - cfg.generation.max_new_tokens  # tokens
        self.rows_out = {s: writing.JsonlAppender(run_dir / f"{s}.jsonl") for s in SPLITS}
        self.rejected_out = writing.JsonlAppender(run_dir / "rejected.jsonl")
        self.questions_out = writing.JsonlAppender(run_dir / "questions.jsonl")
        # every question accepted so far, answered or still waiting: none may come twice
        threshold = float(OmegaConf.select(cfg, "dedup.question_threshold", default=1.0))
        self.seen = {s: dedup.QuestionSet(threshold) for s in SPLITS}
        for r in [*state.questions, *(r for rows in state.rows.values() for r in rows)]:
            self.seen[r["split"]].add(r["question"])
        # quality gates (conf/filters); earlier rows take part in the near-duplicate check
        self.gates = gates if gates is not None else filters.Gates(cfg, cfg.prompt)
        for r in (r for rows in state.rows.values() for r in rows):
            self.gates.accept(r["answer"], r["split"], r["chunk_id"])
        self.rejects: Counter[str] = Counter()  # "stage:reason" -> count
        self.progress: Any = None
        self.first_row_at: float | None = None  # perf_counter when the first row hit the disk

    def files(self) -> list[writing.JsonlAppender]:
        return [*self.rows_out.values(), self.rejected_out, self.questions_out]

    def sync(self) -> None:
        """After each batch: what it produced is on disk before the next batch starts."""
        for f in self.files():
            f.sync()

    def close(self) -> None:
        for f in self.files():
            f.close()

    def _msgs(self, user: str) -> list[dict[str, str]]:
        return prompting.messages(
            self.pr.get("system"), user, self.cfg.model.get("system_role", True)
        )

    def reject(
        self,
        slot: Slot,
        stage: str,
        reason: str,
        raw: str = "",
        question: str = "",
        drop: filters.Drop | None = None,
        **extra: Any,
    ) -> None:
        self.rejects[f"{stage}:{reason}"] += 1
        rec = {
            "key": slot.key,
            "split": slot.split,
            "chunk_id": slot.chunk.id,
            "source": slot.chunk.source,
            "q_index": slot.q_index,
            "stage": stage,
            "reason": reason,
            "question": question,
            "raw": raw,
            **extra,
        }
        if drop is not None:  # a quality gate's: its score and threshold, and which gate set
            rec.update(drop.record(), filters=self.gates.name)
        self.rejected_out.write([rec])
        self._tick()

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update(1)

    def question_job(self, slots: list[Slot], previous: list[str]) -> Job | None:
        """One prompt for `slots` (one slot, or all of a chunk's slots in list mode)."""
        chunk = slots[0].chunk
        user = prompting.question_prompt(
            self.pr.question,
            chunk.text,
            self.pr.get("followup"),
            previous,
            num_questions=len(slots),
        )
        ids = self.encode(self._msgs(user), "question")
        if len(ids) > self.max_prompt:
            for s in slots:
                self.reject(s, "question", "prompt_too_long", raw=f"{len(ids)} tokens")
            return None
        return Job(
            "question",
            ids,
            {"slots": slots, "previous": previous},
            self._params("question", slots[0]),
        )

    def _params(self, stage: str, slot: Slot) -> GenParams | None:
        return self.params_for(stage, slot) if self.params_for is not None else None

    def question_chain(self, slots: list[Slot], previous: list[str]) -> Job | None:
        """The job for a chunk's first open question; the rest follow it one by one.

        If even the first prompt is too long, so are the later ones (they only grow).
        """
        j = self.question_job(slots[:1], previous)
        if j is None:
            for s in slots[1:]:
                self.reject(s, "question", "prompt_too_long")
            return None
        j.payload["next"] = slots[1:]
        return j

    def answer_job(self, slot: Slot, question: str, q_tokens: int) -> Job | None:
        ids = self.encode(
            self._msgs(prompting.answer_prompt(self.pr.answer, slot.chunk.text, question)),
            "answer",
        )
        if len(ids) > self.max_prompt:
            self.reject(
                slot, "answer", "prompt_too_long", raw=f"{len(ids)} tokens", question=question
            )
            return None
        return Job(
            "answer",
            ids,
            {"slot": slot, "question": question, "q_tokens": q_tokens},
            self._params("answer", slot),
        )

    def gated(self, slot: Slot, question: str, raw: str) -> bool:
        """A question a quality gate drops is rejected here and never answered."""
        drop = self.gates.question(question, slot.chunk.text)
        if drop is None or self.kept_anyway("question", drop.reason):
            return False
        self.reject(slot, "question", drop.reason, raw=raw, question=question, drop=drop)
        return True

    def answer_gated(self, slot: Slot, question: str, answer: str, raw: str) -> bool:
        """An answer a quality gate drops is rejected; a kept one joins the near-duplicate check."""
        drop = self.gates.answer(answer, slot.chunk.text, question, slot.split, slot.chunk.id)
        if drop is not None and not self.kept_anyway("answer", drop.reason):
            self.reject(slot, "answer", drop.reason, raw=raw, question=question, drop=drop)
            return True
        self.gates.accept(answer, slot.split, slot.chunk.id)
        return False

    def accept_question(
        self, slot: Slot, question: str, out_tokens: int, raw: str, answer: str | None = None
    ) -> Job | None:
        """Dedup within the split, persist, and enqueue the answer (or write the row now).

        Without an answer stage (questions-only, or qa_pair with the answer in hand) the row
        is written at once and questions.jsonl is not needed.
        """
        twin = self.seen[slot.split].match(question)
        # the same question again, exactly or all but a word
        if twin is not None and not self.kept_anyway("question", "duplicate"):
            self.reject(
                slot,
                "question",
                "duplicate",
                raw=raw,
                question=question,
                duplicate_of=twin[0],
                similarity=round(twin[1], 3),
            )
            return None
        self.seen[slot.split].add(question)
        if not self.answers:
            if answer is not None and self.answer_gated(slot, question, answer, raw):
                return None
            tokens = {"question": out_tokens} if answer is None else {"qa_pair": out_tokens}
            self.write_row(slot, question, answer, tokens)
            return None
        self.questions_out.write(
            [
                {
                    "key": slot.key,
                    "split": slot.split,
                    "chunk_id": slot.chunk.id,
                    "q_index": slot.q_index,
                    "question": question,
                    "tokens": out_tokens,
                }
            ]
        )
        faults.point("question")  # the question is on disk, its answer not yet asked
        return self.answer_job(slot, question, out_tokens)

    def kept_anyway(self, stage: str, reason: str) -> bool:
        """accept_any (benchmarks): count the reject that would have been, and go on."""
        if self.accept_any:
            self.overridden[f"{stage}:{reason}"] += 1
        return self.accept_any

    def write_row(
        self, slot: Slot, question: str, answer: str | None, tokens: dict[str, int]
    ) -> None:
        row = Row(
            id=short_hash(slot.key),
            split=slot.split,
            chunk_id=slot.chunk.id,
            source=slot.chunk.source,
            doc=slot.chunk.text,
            question=question,
            answer=answer,
            prompt=slot.prompt,
            model=slot.model,
            q_index=slot.q_index,
            tokens=tokens,
        )
        self.rows_out[slot.split].write([row.to_dict()])
        faults.point("row")
        self.first_row_at = self.first_row_at or time.perf_counter()
        self._tick()

    def parsed_question(self, slot: Slot, out: Generated) -> tuple[str | None, str | None]:
        """(question, answer) of a one-question reply; (None, None) after recording the reject."""
        if self.pair:
            q, a, reason, stage = prompting.parse_qa_pair(out.text, self.pr.require_question_mark)
            if reason is not None and self.kept_anyway(stage, reason):
                raw = out.text.strip() or "<empty>"
                q, a = q or raw, raw
            elif reason is not None:
                self.reject(slot, stage, reason, raw=out.text, question=q or "")
                return None, None
            return q, a
        q, reason = prompting.parse_question(out.text, self.pr.require_question_mark)
        if q is None and self.kept_anyway("question", reason or "empty"):
            q = " ".join(out.text.split()) or "<empty>"
        if q is None:
            self.reject(slot, "question", reason or "empty", raw=out.text)
        return q, None

    def on_result(self, job: Job, out: Generated) -> list[Job]:
        new: list[Job] = []
        if job.stage == "question":
            slots: list[Slot] = job.payload["slots"]
            if self.list_mode:
                parsed = prompting.parse_question_list(
                    out.text, len(slots), self.pr.require_question_mark
                )
                for slot, q in zip(slots, parsed, strict=True):
                    if q is None and self.kept_anyway("question", "missing_from_list"):
                        q = f"{' '.join(out.text.split()) or '<empty>'} #{slot.q_index}"
                    if q is None:
                        self.reject(slot, "question", "missing_from_list", raw=out.text)
                    elif self.gated(slot, q, out.text):
                        continue
                    elif (j := self.accept_question(slot, q, out.tokens, out.text)) is not None:
                        new.append(j)
                return new
            slot = slots[0]
            q, a = self.parsed_question(slot, out)
            previous = list(job.payload["previous"])
            # a gated question is not shown to the chunk's next prompt: an echo would be asked
            # for again
            if q is not None and not self.gated(slot, q, out.text):
                previous.append(q)
                if (j := self.accept_question(slot, q, out.tokens, out.text, a)) is not None:
                    new.append(j)
            nxt = job.payload.get("next")
            # the chunk's next question, told which ones were asked already
            if nxt and (jq := self.question_chain(nxt, previous)) is not None:
                new.append(jq)
            return new
        slot, question = job.payload["slot"], job.payload["question"]
        a, reason = prompting.parse_answer(out.text)
        if a is None and self.kept_anyway("answer", reason or "empty"):
            a = out.text.strip() or "<empty>"
        if a is None:
            self.reject(slot, "answer", reason or "empty", raw=out.text, question=question)
            return new
        if self.answer_gated(slot, question, a, out.text):
            return new
        self.write_row(
            slot, question, a, {"question": job.payload["q_tokens"], "answer": out.tokens}
        )
        return new

    def initial_jobs(self, slots: list[Slot], state: RunState, done: set[str]) -> list[Job]:
        """Jobs for what is not done: answers for persisted questions, then the questions."""
        jobs: list[Job] = []
        by_key = {s.key: s for s in slots}
        answered = set(done)
        asked: dict[str, list[str]] = {}  # chunk id -> questions already accepted
        for q in state.questions:
            asked.setdefault(q["chunk_id"], []).append(q["question"])
            slot = by_key.get(q["key"])
            if slot is None or q["key"] in answered or not self.answers:
                continue
            answered.add(q["key"])
            if (j := self.answer_job(slot, q["question"], q.get("tokens", 0))) is not None:
                jobs.append(j)
        todo: dict[str, list[Slot]] = {}
        for s in slots:
            if s.key not in answered:
                todo.setdefault(s.chunk.id, []).append(s)
        for chunk_id, chunk_slots in todo.items():
            previous = asked.get(chunk_id, [])
            if self.list_mode:
                j = self.question_job(chunk_slots, previous)
            else:  # one prompt per question, each told the questions before it
                j = self.question_chain(chunk_slots, previous)
            if j is not None:
                jobs.append(j)
        return jobs


# --- the generate task ------------------------------------------------------------------------


def generate(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Build (or resume) the dataset in run_dir, holding the run dir's lock throughout."""
    check(cfg)
    if cfg.dry_run:
        return _generate(cfg, run_dir)
    with runlock.held(run_dir):  # one writer per run dir (a second run stops here at once)
        for tmp in run_dir.glob("*.tmp*"):  # half-written by a run that was killed
            tmp.unlink()
        return _generate(cfg, run_dir)


def _generate(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    started, t_start = now(), time.perf_counter()
    seconds: Counter[str] = Counter()
    if not cfg.dry_run:  # a model that cannot come fails before the corpus is read
        prepare_model(cfg)
    leak: dict[str, Any] = {}
    corpus = load_corpus(cfg, seconds, leak)
    slots = make_slots(cfg, corpus)
    slots_total = {s: len(v) for s, v in slots.items()}
    count, index = sharding.shard_count(cfg)
    slots = sharding.keep(slots, count, index)  # this job's part (all of it when count=1)
    n_slots = sum(len(s) for s in slots.values())

    if cfg.dry_run:
        return dry_run(cfg, corpus, slots, run_dir, leak)

    run_dir.mkdir(parents=True, exist_ok=True)
    state = RunState.load(run_dir, repair=False)
    check_resume(cfg, run_dir, state)
    RunState.repair(run_dir)  # cut a half-written last line before appending
    others, sibling_dirs = sibling_state(cfg, run_dir)
    rundir.clear_done(run_dir)  # back only when this session finishes
    rundir.save_config(run_dir, cfg)  # atomic: a sibling shard never reads half a file

    own = state.done_keys()
    known = RunState.union([state, others])  # other shards' rows count as done here too
    done = known.done_keys()
    todo = sum(1 for ss in slots.values() for s in ss if s.key not in done)
    elsewhere = sum(1 for ss in slots.values() for s in ss if s.key in done and s.key not in own)
    log.info("%d slots, %d done already, %d to generate", n_slots, n_slots - todo, todo)

    stats = Stats()
    t = time.perf_counter()
    if todo:
        gates = filters.Gates(cfg, cfg.prompt)
        gates.prepare()  # the embedding gate's model, if on: a bad one fails before the LLM loads
        backend = load_backend(cfg)
        seconds["load_model"] += time.perf_counter() - t
        backend.set_seed(cfg.generation.seed)
        spec = backend.spec
        gen = Generator(
            cfg,
            run_dir,
            lambda m, stage: encode_chat(backend.tokenizer, m, spec, stage),
            known,
            gates=gates,
        )
        params = stage_params(cfg, spec)
        from tqdm import tqdm

        try:
            with tqdm(total=todo, unit="row", desc="generate", dynamic_ncols=True) as bar:
                gen.progress = bar
                size = _batch_size(cfg, backend)
                for split in SPLITS:
                    jobs = gen.initial_jobs(slots[split], known, done)
                    # a batch size halved by OOM stays halved for the next split
                    try:
                        drive(
                            backend,
                            jobs,
                            gen.on_result,
                            params,
                            size,
                            bar,
                            stats,
                            gen.sync,
                        )
                    except OutOfMemory:
                        raise SynthgenError(
                            "generation.batch_size: out of memory even at batch size 1; rows so "
                            "far are kept: lower generation.max_new_tokens, set "
                            "model.load_in_4bit=true or use a smaller model"
                        ) from None
                    size = stats.batch_size or size
        finally:
            gen.close()
            backend.close()
        seconds["generate"] += stats.seconds
        rejects = gen.rejects
        first_row = round(gen.first_row_at - t_start, 3) if gen.first_row_at else None
        engine = {
            "name": getattr(backend, "engine", None),
            "requested": cfg.generation.engine,
            **getattr(backend, "choices", {}),  # why this engine, load_in_4bit chosen and why
            "feed": stats.feed,
            "notes": getattr(backend, "notes", []),
        }
    else:
        rejects, first_row, engine = Counter(), None, {}

    t = time.perf_counter()
    for name in writing.JSONL_FILES:
        (run_dir / name).touch()  # present even when nothing was generated here (an empty shard)
    state = RunState.load(run_dir, repair=False)
    wanted = {sl.key for ss in slots.values() for sl in ss}
    # rows of a larger num_rows in an earlier session stay in the JSONL, not in the dataset;
    # a key in the JSONL twice (two writers in one dir, before the lock existed) goes in once
    repeated = {s: len(state.rows[s]) - len(unique_rows(state.rows[s])) for s in SPLITS}
    rows = {
        s: order_rows([r for r in unique_rows(state.rows[s]) if Row(**r).key in wanted], corpus[s])
        for s in SPLITS
    }
    corpus_json = {s: {c.id: c.text for c in corpus[s].corpus_chunks()} for s in SPLITS}
    files = writing.write_outputs(run_dir, rows, corpus_json)
    seconds["write"] += time.perf_counter() - t

    summary = make_summary(
        cfg, run_dir, corpus, slots, state, rows, stats, rejects, seconds, engine
    )
    summary["this_session"].update(started=started, first_row_seconds=first_row)
    summary["generation"] = totals(run_dir, summary["this_session"])
    summary["shard"] = {
        "count": count,
        "index": index,
        "slots_total": slots_total,  # slots of the whole dataset, before sharding
        "done_elsewhere": elsewhere,  # this shard's slots already done in a sibling job dir
        "siblings": [str(d) for d in sibling_dirs],
    }
    summary["host"] = sharding.host()
    summary["leak"] = leak
    if any(repeated.values()):
        summary["jsonl_repeated_rows"] = repeated  # lines whose key came before: not in the dataset
    summary.update(
        status="complete",
        started=started,
        finished=now(),
        files=sorted(
            [
                *files,
                "config.yaml",
                "summary.json",
                *writing.JSONL_FILES,
                rundir.DONE,
            ]
        ),
    )
    summary["seconds"]["total"] = round(time.perf_counter() - t_start, 3)
    writing.write_json(run_dir / "summary.json", summary)
    faults.point("summary")
    writing.write_json(run_dir / rundir.DONE, {"finished": summary["finished"]})  # last
    faults.point("done")
    log.info("rows: train %d, val %d -> %s", len(rows["train"]), len(rows["val"]), run_dir)
    return summary


def totals(run_dir: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Generation figures over every session of the run dir (a resumed run has several)."""
    sessions: list[dict[str, Any]] = []
    old = run_dir / "summary.json"
    if old.exists():
        sessions = (
            json.loads(old.read_text(encoding="utf-8")).get("generation", {}).get("sessions", [])
        )
    sessions = [*sessions, session]
    tokens = sum(x["output_tokens"] for x in sessions)
    secs = sum(x["generate_seconds"] for x in sessions)
    return {
        "output_tokens": tokens,
        "generate_seconds": round(secs, 3),
        "tokens_per_second": round(tokens / secs, 1) if secs else 0.0,
        "sessions": sessions,
    }


def load_model_part(name_or_path: str, load: Any) -> Any:
    """Call `load()`; a missing, gated or unreachable model becomes one clear line.

    Nothing is generated before this, so failing here loses no work.
    """
    try:
        return load()
    except (SynthgenError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:
        while e.__cause__ is not None and type(e).__name__ == "InstantiationException":
            e = e.__cause__  # hydra wraps the constructor's error
        if isinstance(e, SynthgenError):  # already one line naming its key (synthgen/models.py)
            raise e from None
        first = " ".join(str(e).split())[:300]
        if isinstance(e, ValueError) and first.startswith(("model.", "generation.")):
            raise ConfigError(first) from None  # a backend's own check, already "key: why"
        hint = " (offline? run with the hub reachable once, or point to a local folder)"
        hint = hint if isinstance(e, OSError) else ""
        raise ModelLoadError(
            f"model.name_or_path: cannot load {name_or_path!r}{hint}: {type(e).__name__}: {first}"
        ) from None


def prepare_model(cfg: DictConfig) -> None:
    """The backend's `prepare(spec)`, where it has one: find or fetch what the model needs."""
    from hydra.utils import get_class

    prepare = getattr(get_class(cfg.model._target_), "prepare", None)
    if prepare is not None:
        spec = ModelSpec.from_kwargs(OmegaConf.to_container(cfg.model, resolve=True))
        load_model_part(spec.name_or_path, lambda: prepare(spec))


def load_backend(cfg: DictConfig) -> Any:
    """The backend named by model._target_ (hydra instantiate), engine settings passed along."""
    from hydra.utils import instantiate

    return load_model_part(
        cfg.model.name_or_path,
        lambda: instantiate(
            cfg.model,
            engine=cfg.generation.engine,
            prefill_chunk_size=cfg.generation.prefill_chunk_size,
            vllm=vllm_options(cfg),
        ),
    )


def stage_params(cfg: DictConfig, spec: ModelSpec) -> dict[str, GenParams]:
    """Generation settings per stage: `generation.*`, with the model's stop strings and token
    cap for the stage (a base model's: it never stops on its own). A list prompt
    ({num_questions}) wants several questions from one reply, so what is meant to end one
    question (a "?", a short cap) does not apply to it."""
    keys = ("temperature", "top_p", "do_sample", "seed")
    base = {k: cfg.generation[k] for k in keys}
    out = {}
    pair = prompting.reply_mode(cfg.prompt) == "qa_pair"  # a question reply holds its answer
    for stage in ("question", "answer"):
        one = stage == "answer" or not (pair or prompting.asks_for_list(cfg.prompt.question))
        cap = int(cfg.generation.max_new_tokens)
        if one and spec.max_new_tokens.get(stage):
            cap = min(cap, int(spec.max_new_tokens[stage]))
        out[stage] = GenParams(
            **base,
            max_new_tokens=cap,
            min_new_tokens=min(int(cfg.generation.min_new_tokens), cap),
            stop_strings=list(spec.stop_strings.get(stage) or []) if one else [],
        )
    return out


def vllm_options(cfg: DictConfig) -> dict[str, Any]:
    """The generation.* settings only the vllm engine reads."""
    g = cfg.generation
    return {
        "gpu_memory_utilization": float(g.get("gpu_memory_utilization", 0.9)),
        "enable_prefix_caching": bool(g.get("enable_prefix_caching", True)),
        "feed": str(g.get("vllm_feed", "stream")),
        "seed": int(g.seed),
    }


def _batch_size(cfg: DictConfig, backend: Any) -> int:
    if hasattr(backend, "reserve_new"):  # the continuous engine sizes its KV slots with it
        backend.reserve_new = int(cfg.generation.max_new_tokens)
    bs = cfg.generation.batch_size
    if bs == "auto":
        auto = getattr(backend, "auto_batch_size", None)
        longest = cfg.model.max_seq_length - cfg.generation.max_new_tokens
        return auto(cfg.generation.max_new_tokens, min(longest, 1024)) if auto else 8
    return int(bs)


def unique_rows(rows: list[dict]) -> list[dict]:
    """Each row key once, the first line with it kept."""
    seen: set[str] = set()
    out = []
    for r in rows:
        key = Row(**r).key
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def order_rows(rows: list[dict], sc: SplitCorpus) -> list[dict]:
    """Dataset order: chunk order in the corpus, then question index (not finishing order)."""
    pos = {c.id: i for i, c in enumerate(sc.chunks)}
    return sorted(rows, key=lambda r: (pos.get(r["chunk_id"], len(pos)), r["q_index"], r["id"]))


def make_summary(
    cfg: DictConfig,
    run_dir: Path,
    corpus: dict[str, SplitCorpus],
    slots: dict[str, list[Slot]],
    state: RunState,
    rows: dict[str, list[dict]],
    stats: Stats,
    rejects: Counter[str],
    seconds: Counter[str],
    engine: dict[str, Any],
) -> dict[str, Any]:
    """Counts per stage and split, over the whole run dir (earlier resumed sessions included)."""
    all_rejects: dict[str, dict[str, Counter[str]]] = {
        s: {"question": Counter(), "answer": Counter()} for s in SPLITS
    }
    once: set[str] = set()
    for r in state.rejected:
        if r["key"] not in once:  # a key rejected twice (two writers, before the lock) counts once
            once.add(r["key"])
            all_rejects[r["split"]][r["stage"]][r["reason"]] += 1
    splits = {}
    for s in SPLITS:
        rq, ra = all_rejects[s]["question"], all_rejects[s]["answer"]
        splits[s] = {
            **corpus[s].counts(),
            "slots": len(slots[s]),
            "rows": len(rows[s]),
            "duplicates": rq.get("duplicate", 0),
            "rejected_questions": dict(sorted(rq.items())),
            "rejected_answers": dict(sorted(ra.items())),
        }
    return {
        "run_dir": str(run_dir),
        "task": "generate",
        "prompt": cfg.prompt.name,
        "model": cfg.model.name_or_path,
        "splits": splits,
        "rows": {s: len(rows[s]) for s in SPLITS},
        # quality-gate rejects over the run dir, per "stage:reason" (also in splits.*.rejected_*)
        "filters": {"name": filters.name(cfg), "rejected": filters.counts(state.rejected)},
        "this_session": {
            "prompts": stats.prompts,
            "rejects": dict(sorted(rejects.items())),
            "output_tokens": stats.output_tokens,
            "prompt_tokens": stats.prompt_tokens,
            "prompt_tokens_cached": stats.cached_tokens,  # prefix reuse: not prefilled again
            "unfinished_outputs": stats.unfinished,
            "generate_seconds": round(stats.seconds, 3),
            "tokens_per_second": round(stats.tokens_per_second, 1),
            "batches": stats.batches,
            "batch_size": stats.batch_size,
            "oom_retries": stats.oom_retries,
            "engine": engine,
        },
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "versions": versions(),
    }


# --- dry run ------------------------------------------------------------------------------------


def dry_run(
    cfg: DictConfig,
    corpus: dict[str, SplitCorpus],
    slots: dict[str, list[Slot]],
    run_dir: Path,
    leak: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per stage and what resume would skip, then the first prompts as the model will
    see them. The counts need no model, so they are printed first: a model that cannot load
    here (offline, not installed) costs only the preview, said in one line."""
    lines = ["dry run: nothing is generated, no weights are loaded", ""]
    for s in SPLITS:
        c = corpus[s].counts()
        lines.append(
            f"[{s}] files {c['files_read']} read, {len(c['files_skipped'])} skipped; "
            f"{c['docs']} docs; chunks {c['chunks_total']} total, {c['chunks_kept']} kept, "
            f"rejected {c['chunks_rejected'] or '{}'}; {c['chunks_used']} used -> "
            f"{len(slots[s])} question slots"
        )
        for sk in c["files_skipped"]:
            lines.append(f"    skipped {sk['file']}: {sk['reason']}")
        for f, note in c["file_notes"].items():
            lines.append(f"    note {f}: {note}")
        for f, counts in c["cleaning"].items():
            done = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("furniture",))
            lines.append(f"    cleaned {f}: {done}")
            for h in counts.get("furniture", []):
                lines.append(f"      header/footer: {h!r}")
        for m in c["duplicate_chunks"]:
            lines.append(
                f"    copy {m['chunk_source']} chunk {m['chunk_id']} = {m['copy_of_source']} "
                f"chunk {m['copy_of_id']} (similarity {m['similarity']}): generated once"
            )
    for p in (leak or {}).get("pairs", []):
        lines.append(
            f"leak: val {p['val_source']} chunk {p['val_id']} ~ train {p['train_source']} "
            f"chunk {p['train_id']} (overlap {p['similarity']}); corpus.leak={leak['action']}"
        )
    list_mode = prompting.asks_for_list(cfg.prompt.question)
    n_q = sum(len({x.chunk.id for x in ss}) if list_mode else len(ss) for ss in slots.values())
    pair = prompting.reply_mode(cfg.prompt) == "qa_pair"
    answers = cfg.prompt.get("answer") is not None and not pair
    n_a = sum(len(ss) for ss in slots.values()) if answers else 0
    count, index = sharding.shard_count(cfg)
    if count > 1:
        lines.append(f"shard {index} of {count}: the slots above are this shard's part")
    how = (
        f"up to {n_a} answer"
        if answers
        else "no answer prompts (prompt.reply=qa_pair: each reply holds its answer)"
        if pair
        else "no answer prompts (prompt.answer=null: questions only)"
    )
    lines.append(f"prompts to run: {n_q} question + {how}")
    resume, todo = resume_report(cfg, run_dir, slots)
    lines.append(resume)
    print("\n".join(lines), file=sys.stdout, flush=True)  # before anything loads

    preview, why = prompt_preview(cfg, slots, list_mode, answers)
    print(preview if preview else f"\nno prompt preview: {why}", file=sys.stdout, flush=True)
    return {
        "status": "dry_run",
        "leak": leak or {},
        "splits": {s: corpus[s].counts() for s in SPLITS},
        "slots": {s: len(slots[s]) for s in SPLITS},
        "prompts": {"question": n_q, "answer": n_a},
        "to_generate": todo,
        "preview": why is None,
    }


def resume_report(
    cfg: DictConfig, run_dir: Path, slots: dict[str, list[Slot]]
) -> tuple[str, int | None]:
    """One line on what a real run in `run_dir` would skip (or why it would refuse), and the
    number of slots it would generate (None if refused)."""
    n = sum(len(ss) for ss in slots.values())
    try:
        state = RunState.load(run_dir, repair=False) if run_dir.is_dir() else RunState()
        check_resume(cfg, run_dir, state)
        others, dirs = sibling_state(cfg, run_dir)
    except SynthgenError as e:
        return f"resume: a real run would stop here: {e}", None
    state.rows = {s: state.rows.get(s, []) for s in SPLITS}
    own = state.done_keys()
    done = RunState.union([state, others]).done_keys()
    keys = [x.key for ss in slots.values() for x in ss]
    todo = sum(k not in done for k in keys)
    if todo == n:
        return f"resume: no slot done yet in the run dir: all {n} to generate", todo
    elsewhere = sum(k in done and k not in own for k in keys)
    where = f" ({elsewhere} of them in {len(dirs)} sibling shard dirs)" if elsewhere else ""
    return (
        f"resume: {n - todo} of {n} slots already done in {run_dir}{where}, {todo} to generate",
        todo,
    )


def prompt_preview(
    cfg: DictConfig, slots: dict[str, list[Slot]], list_mode: bool, answers: bool = True
) -> tuple[str | None, str | None]:
    """The first question and answer prompts, rendered by the model's tokenizer, or (None,
    why) when the tokenizer cannot load here."""
    from synthgen.backends.base import load_tokenizer, render

    first = next((ss[0] for ss in (slots["train"], slots["val"]) if ss), None)
    if first is None:
        return None, "no slot to fill, so no prompt"
    spec = ModelSpec.from_kwargs(OmegaConf.to_container(cfg.model, resolve=True))
    try:
        tok = load_model_part(spec.name_or_path, lambda: load_tokenizer(spec))
    except SynthgenError as e:
        return None, str(e)
    msgs = lambda u: prompting.messages(cfg.prompt.get("system"), u, spec.system_role)  # noqa: E731
    k = cfg.prompt.questions_per_chunk if list_mode else 1
    q = prompting.question_prompt(cfg.prompt.question, first.chunk.text, num_questions=k)
    shown = [("question", q)]
    if answers:  # questions-only and qa_pair runs have no answer prompt
        a = prompting.answer_prompt(cfg.prompt.answer, first.chunk.text, "<the parsed question>")
        shown.append(("answer", a))
    out: list[str] = []
    params = stage_params(cfg, spec)
    for stage, user in shown:
        text = render(tok, msgs(user), spec, stage)
        n_tok = len(tok(text, add_special_tokens=False)["input_ids"])
        p = params[stage]
        ends = f", reply ends at {p.stop_strings!r}" if p.stop_strings else ""
        ends += f", at most {p.max_new_tokens} new tokens"
        out += [
            "",
            f"--- first {stage} prompt ({first.split} {first.chunk.source}, chunk "
            f"{first.chunk.id}, {n_tok} tokens{ends}) ---",
            text,
        ]
    return "\n".join(out), None

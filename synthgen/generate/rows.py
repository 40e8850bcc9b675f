"""Slots in, rows out: the prompts of each slot, the parse and gates of each reply, and every
result (row, rejected generation, accepted question) appended to the run dir as it lands.

`RowMaker` makes the jobs that `feed.drive` runs and turns their results into records;
it never touches the model itself.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from synthgen import faults
from synthgen.backends.base import Generated, Prompt
from synthgen.corpus import dedup
from synthgen.gates import filters, signals
from synthgen.generate import prompting
from synthgen.generate.feed import Job
from synthgen.records import Rejected, Row, Slot, short_hash
from synthgen.rundir import QUESTIONS, REJECTED, SPLITS, rows_file, writing
from synthgen.rundir.state import RunState
from synthgen.settings import Settings

# (messages, stage) -> the prompt the backend takes (BaseBackend.encode): token ids, or for an
# endpoint the messages themselves
Encode = Callable[[list[dict[str, str]], str], Prompt]


class RejectPolicy(Protocol):
    """Whether a reject (a parser's, the dedup's or a quality gate's) stands. A policy that
    overrules one keeps the generated text instead (its raw text, or "<empty>")."""

    def stands(self, stage: str, reason: str) -> bool: ...


class Gated:
    """The product's policy: every reject stands, as the parsers and the gates decide."""

    def stands(self, stage: str, reason: str) -> bool:
        return True


@dataclass
class QuestionAsk:
    """A question job's payload: the slots one prompt fills (one, or a chunk's list)."""

    slots: list[Slot]
    previous: list[str]  # the chunk's questions asked so far (the followup shows them)
    next: list[Slot] = field(default_factory=list)  # the chunk's slots asked one by one after


@dataclass
class AnswerAsk:
    """An answer job's payload: the slot, its accepted question, that question's tokens and
    its signals (its reply's logprob, its chunk's ranks; questions.jsonl keeps them)."""

    slot: Slot
    question: str
    q_tokens: int
    signals: dict[str, Any] = field(default_factory=dict)  # the question's (signals.py)


class RowMaker:
    """Turns slots into rows through the jobs it makes, writing every result as it lands."""

    def __init__(
        self,
        st: Settings,
        run_dir: Path,
        encode: Encode,
        state: RunState,
        gates: filters.Gates,
        *,
        policy: RejectPolicy | None = None,
        scorer: signals.Scorer | None = None,
    ) -> None:
        """state: what counts as done and asked (this dir's and sibling shards' records).
        gates: the quality gates; earlier rows take part in their near-duplicate check.
        policy: whether each reject stands; None: `Gated`, every one does (a benchmark's
        keeps everything: benchmarks/forcing.py).
        scorer: ranks each parsed question's own chunk (signals.py); None: no rank signals.
        """
        self.st, self.pr, self.encode = st, st.prompt, encode
        self.scorer = scorer
        self.policy: RejectPolicy = policy or Gated()
        self.rows_out = {s: writing.JsonlAppender(run_dir / rows_file(s)) for s in SPLITS}
        self.rejected_out = writing.JsonlAppender(run_dir / REJECTED)
        self.questions_out = writing.JsonlAppender(run_dir / QUESTIONS)
        self.written = RunState()  # what this session appended, as the files hold it
        # every question accepted so far, answered or still waiting: none may come twice
        self.seen = {s: dedup.QuestionSet(st.dedup.question_threshold) for s in SPLITS}
        for r in [*state.questions, *(r for rows in state.rows.values() for r in rows)]:
            self.seen[r["split"]].add(r["question"])
        self.gates = gates
        for r in (r for rows in state.rows.values() for r in rows):
            self.gates.accept(r["answer"], r["split"], r["chunk_id"])
        self.rejects: Counter[str] = Counter()  # "stage:reason" -> count
        self.progress: Any = None
        self.first_row_at: float | None = None  # perf_counter when the first row hit the disk

    # --- files ---------------------------------------------------------------------------------

    def files(self) -> list[writing.JsonlAppender]:
        return [*self.rows_out.values(), self.rejected_out, self.questions_out]

    def sync(self) -> None:
        """After each batch: what it produced is on disk before the next batch starts."""
        for f in self.files():
            f.sync()

    def close(self) -> None:
        for f in self.files():
            f.close()

    def reject(
        self,
        slot: Slot,
        stage: str,
        reason: str,
        raw: str = "",
        question: str = "",
        drop: filters.Drop | None = None,
        sig: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        self.rejects[f"{stage}:{reason}"] += 1
        if drop is not None:  # a quality gate's: its score and threshold, and which gate set
            extra.update(drop.record(), filters=self.gates.name)
        rec = Rejected.of_slot(
            slot, stage, reason, question=question, raw=raw, extra=extra, signals=sig or {}
        )
        self.rejected_out.write([rec.to_dict()])
        self.written.rejected.append(rec.to_dict())
        self._tick()

    def write_row(
        self,
        slot: Slot,
        question: str,
        answer: str | None,
        tokens: dict[str, int],
        sig: dict[str, Any] | None = None,
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
            key=slot.key,
            signals=sig or {},
        )
        self.rows_out[slot.split].write([row.to_dict()])
        self.written.rows[slot.split].append(row.to_dict())
        faults.point("row")
        self.first_row_at = self.first_row_at or time.perf_counter()
        self._tick()

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update(1)

    # --- jobs ------------------------------------------------------------------------------------

    def _msgs(self, user: str) -> list[dict[str, str]]:
        return prompting.messages(self.pr.system, user, self.st.system_role)

    def question_job(self, slots: list[Slot], previous: list[str]) -> Job | None:
        """One prompt for `slots` (one slot, or all of a chunk's slots in list mode)."""
        chunk = slots[0].chunk
        user = prompting.question_prompt(
            self.pr.question,
            chunk.text,
            self.pr.followup,
            previous,
            num_questions=len(slots),
            examples=self.pr.examples,
        )
        ids = self.encode(self._msgs(user), "question")
        if len(ids) > self.st.max_prompt:
            for s in slots:
                self.reject(s, "question", "prompt_too_long", raw=f"{len(ids)} tokens")
            return None
        ask = QuestionAsk(slots, previous)
        return Job("question", ids, ask)

    def question_chain(self, slots: list[Slot], previous: list[str]) -> Job | None:
        """The job for a chunk's first open question; the rest follow it one by one.

        If even the first prompt is too long, so are the later ones (they only grow).
        """
        j = self.question_job(slots[:1], previous)
        if j is None:
            for s in slots[1:]:
                self.reject(s, "question", "prompt_too_long")
            return None
        j.payload.next = slots[1:]
        return j

    def answer_job(
        self, slot: Slot, question: str, q_tokens: int, sig: dict[str, Any] | None = None
    ) -> Job | None:
        assert self.pr.answer is not None  # only made when the prompt has an answer stage
        user = prompting.answer_prompt(self.pr.answer, slot.chunk.text, question, self.pr.examples)
        ids = self.encode(self._msgs(user), "answer")
        if len(ids) > self.st.max_prompt:
            self.reject(
                slot,
                "answer",
                "prompt_too_long",
                raw=f"{len(ids)} tokens",
                question=question,
                sig=sig,
            )
            return None
        ask = AnswerAsk(slot, question, q_tokens, dict(sig or {}))
        return Job("answer", ids, ask)

    def initial_jobs(self, slots: list[Slot], state: RunState, done: set[str]) -> list[Job]:
        """Jobs for what is not done: answers for persisted questions, then the questions."""
        jobs: list[Job] = []
        by_key = {s.key: s for s in slots}
        answered = set(done)
        asked: dict[str, list[str]] = {}  # chunk id -> questions already accepted
        for q in state.questions:
            asked.setdefault(q["chunk_id"], []).append(q["question"])
            slot = by_key.get(q["key"])
            if slot is None or q["key"] in answered or not self.pr.answers:
                continue
            answered.add(q["key"])
            j = self.answer_job(slot, q["question"], q.get("tokens", 0), q.get("signals"))
            if j is not None:
                jobs.append(j)
        todo: dict[str, list[Slot]] = {}
        for s in slots:
            if s.key not in answered:
                todo.setdefault(s.chunk.id, []).append(s)
        for chunk_id, chunk_slots in todo.items():
            previous = asked.get(chunk_id, [])
            if self.pr.list_mode:
                j = self.question_job(chunk_slots, previous)
            else:  # one prompt per question, each told the questions before it
                j = self.question_chain(chunk_slots, previous)
            if j is not None:
                jobs.append(j)
        return jobs

    # --- results ---------------------------------------------------------------------------------

    def on_result(self, job: Job, out: Generated) -> list[Job]:
        """feed.drive's callback: the records of one reply, and the jobs it opens."""
        if out.failed is not None:  # an endpoint request that failed for good (backends/openai)
            return self.request_failed(job, out)
        if isinstance(job.payload, AnswerAsk):
            self.on_answer(job.payload, out)
            return []
        if self.pr.list_mode:
            return self.on_question_list(job.payload, out)
        return self.on_question(job.payload, out)

    def request_failed(self, job: Job, out: Generated) -> list[Job]:
        """Reject the job's slots as `request_failed` with the status; a chunk's next question
        is still asked (one failed request loses its own slot only)."""
        why = {"status": out.status, "error": out.failed, "attempts": out.attempts}
        ask = job.payload
        if isinstance(ask, AnswerAsk):
            self.reject(ask.slot, "answer", "request_failed", question=ask.question, **why)
            return []
        for slot in ask.slots:
            self.reject(slot, "question", "request_failed", **why)
        jq = self.question_chain(ask.next, list(ask.previous)) if ask.next else None
        return [jq] if jq is not None else []

    def on_question_list(self, ask: QuestionAsk, out: Generated) -> list[Job]:
        new: list[Job] = []
        parsed = prompting.parse_question_list(
            out.text, len(ask.slots), self.pr.require_question_mark
        )
        for slot, q in zip(ask.slots, parsed, strict=True):
            if q is None and self.kept_anyway("question", "missing_from_list"):
                q = f"{' '.join(out.text.split()) or '<empty>'} #{slot.q_index}"
            if q is None:
                self.reject(slot, "question", "missing_from_list", raw=out.text, sig=_sig(out))
                continue
            sig = self.signals(slot, q, out)
            if self.gated(slot, q, out.text, sig):
                continue
            elif (j := self.accept_question(slot, q, out.tokens, out.text, sig=sig)) is not None:
                new.append(j)
        return new

    def on_question(self, ask: QuestionAsk, out: Generated) -> list[Job]:
        new: list[Job] = []
        slot = ask.slots[0]
        q, a = self.parsed_question(slot, out)
        previous = list(ask.previous)
        # a gated question is not shown to the chunk's next prompt: an echo would be asked for
        # again
        sig = self.signals(slot, q, out) if q is not None else {}
        if q is not None and not self.gated(slot, q, out.text, sig):
            previous.append(q)
            if (j := self.accept_question(slot, q, out.tokens, out.text, a, sig)) is not None:
                new.append(j)
        # the chunk's next question, told which ones were asked already
        if ask.next and (jq := self.question_chain(ask.next, previous)) is not None:
            new.append(jq)
        return new

    def on_answer(self, ask: AnswerAsk, out: Generated) -> None:
        slot, question = ask.slot, ask.question
        sig = {**ask.signals, "answer_logprob": _sig(out)["logprob"]}
        a, reason = prompting.parse_answer(out.text)
        if a is None and self.kept_anyway("answer", reason or "empty"):
            a = out.text.strip() or "<empty>"
        if a is None:
            self.reject(slot, "answer", reason or "empty", raw=out.text, question=question, sig=sig)
            return
        if self.answer_gated(slot, question, a, out.text, sig):
            return
        tokens = {"question": ask.q_tokens, "answer": out.tokens}
        self.write_row(slot, question, a, tokens, sig)

    def parsed_question(self, slot: Slot, out: Generated) -> tuple[str | None, str | None]:
        """(question, answer) of a one-question reply; (None, None) after recording the reject."""
        if self.pr.pair:
            q, a, reason, stage = prompting.parse_qa_pair(out.text, self.pr.require_question_mark)
            if reason is not None and self.kept_anyway(stage, reason):
                raw = out.text.strip() or "<empty>"
                q, a = q or raw, raw
            elif reason is not None:
                self.reject(slot, stage, reason, raw=out.text, question=q or "", sig=_sig(out))
                return None, None
            return q, a
        q, reason = prompting.parse_question(out.text, self.pr.require_question_mark)
        if q is None and self.kept_anyway("question", reason or "empty"):
            q = " ".join(out.text.split()) or "<empty>"
        if q is None:
            self.reject(slot, "question", reason or "empty", raw=out.text, sig=_sig(out))
        return q, None

    def signals(self, slot: Slot, question: str, out: Generated) -> dict[str, Any]:
        """The question's signals: the reply's log-probability, its own chunk's ranks."""
        sig = _sig(out)
        if self.scorer is not None:
            sig.update(self.scorer.question(slot.split, slot.chunk.id, question))
        return sig

    def gated(self, slot: Slot, question: str, raw: str, sig: dict[str, Any]) -> bool:
        """A question a quality gate drops (on its text, then on its signals) is rejected
        here and never answered."""
        drop = self.gates.question(question, slot.chunk.text) or self.gates.signals(sig)
        if drop is None or self.kept_anyway("question", drop.reason):
            return False
        self.reject(slot, "question", drop.reason, raw=raw, question=question, drop=drop, sig=sig)
        return True

    def answer_gated(
        self, slot: Slot, question: str, answer: str, raw: str, sig: dict[str, Any] | None = None
    ) -> bool:
        """An answer a quality gate drops is rejected; a kept one joins the near-duplicate check."""
        drop = self.gates.answer(answer, slot.chunk.text, question, slot.split, slot.chunk.id)
        if drop is not None and not self.kept_anyway("answer", drop.reason):
            self.reject(slot, "answer", drop.reason, raw=raw, question=question, drop=drop, sig=sig)
            return True
        self.gates.accept(answer, slot.split, slot.chunk.id)
        return False

    def accept_question(
        self,
        slot: Slot,
        question: str,
        out_tokens: int,
        raw: str,
        answer: str | None = None,
        sig: dict[str, Any] | None = None,
    ) -> Job | None:
        """Dedup within the split, persist, and enqueue the answer (or write the row now).

        Without an answer stage (questions-only, or qa_pair with the answer in hand) the row
        is written at once and questions.jsonl is not needed. sig: the question's signals,
        which questions.jsonl and its answer job (AnswerAsk.signals) carry to the row.
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
                sig=sig,
            )
            return None
        self.seen[slot.split].add(question)
        if not self.pr.answers:
            if answer is not None and self.answer_gated(slot, question, answer, raw, sig):
                return None
            tokens = {"question": out_tokens} if answer is None else {"qa_pair": out_tokens}
            self.write_row(slot, question, answer, tokens, sig)
            return None
        rec = {
            "key": slot.key,
            "split": slot.split,
            "chunk_id": slot.chunk.id,
            "q_index": slot.q_index,
            "question": question,
            "tokens": out_tokens,
            "signals": sig or {},
        }
        self.questions_out.write([rec])
        self.written.questions.append(rec)
        faults.point("question")  # the question is on disk, its answer not yet asked
        return self.answer_job(slot, question, out_tokens, sig)

    def kept_anyway(self, stage: str, reason: str) -> bool:
        """The policy overrules this reject: the text goes on as if it had passed."""
        return not self.policy.stands(stage, reason)


def _sig(out: Generated) -> dict[str, Any]:
    """What a reply says about itself before parsing: the generator's mean log-probability."""
    return signals.of_reply(out.logprob)

"""The judge stage: a model reads each finished row with its chunk and says yes or no to a few
checks (conf/judge/default.yaml `items`: the question stands alone, its intent is clear, the
chunk answers it, the chunk supports the answer), after NeMo Curator's answerability judgement.

Self-contained pieces, called by the generate task's finish and by task=filter:

    js = JudgeSettings.from_cfg(cfg)                 # judge_spec: off unless judge=default
    verdicts = judge.run(backend, st, rows, run_dir)  # one generation per row not judged yet
    kept, dropped = judge.apply(rows, verdicts, js)   # dropped: rejected.jsonl records
    judge.counts(verdicts, dropped)                   # for summary.json

Every verdict is appended to `run_dir/judged.jsonl` as it lands; a rerun judges only the rows
that have no verdict there made with the same judge settings on the same row text (a crash
loses the batch in flight at most). A reply that does not parse has no verdict (`unparsed`),
is counted, and its row is kept or dropped as `judge.on_unparsed` says: never silently.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from synthgen import faults
from synthgen.backends.base import BaseBackend, BaseSpec, Generated, GenParams
from synthgen.errors import OutOfMemory, SynthgenError
from synthgen.gates.judge_spec import (
    STAGE,
    JudgeSettings,
    judge_prompt,
    parse_verdict,
    stage_value,
)
from synthgen.generate import llm, prompting
from synthgen.generate.feed import Feed, Job, Stats, drive
from synthgen.records import Rejected, key_of, short_hash
from synthgen.rundir import JUDGED, SPLITS, writing
from synthgen.rundir.finish import apply_in_order
from synthgen.settings import Settings

log = logging.getLogger(__name__)


def judge_params(st: Settings, spec: BaseSpec, js: JudgeSettings) -> GenParams:
    """The judge's generation settings: greedy, its own token cap (at most
    generation.max_new_tokens and the model's judge cap), the model's judge stop strings."""
    g = st.generation
    cap = min(js.max_new_tokens, g.max_new_tokens)
    if model_cap := stage_value(spec.max_new_tokens):
        cap = min(cap, int(model_cap))
    return GenParams(
        max_new_tokens=cap,
        min_new_tokens=0,
        temperature=g.temperature,
        top_p=g.top_p,
        do_sample=False,
        seed=g.seed,
        stop_strings=list(stage_value(spec.stop_strings) or []),
    )


# --- judged.jsonl -------------------------------------------------------------------------------


def row_fingerprint(row: dict[str, Any], js: JudgeSettings) -> str:
    """The judge settings and the row text a verdict was made on."""
    return short_hash(js.fingerprint, row["doc"], row["question"], str(row.get("answer")))


def load(run_dir: Path, rows: list[dict[str, Any]], js: JudgeSettings) -> dict[str, dict]:
    """The verdict records of judged.jsonl that still hold for these rows (same settings, same
    row text); the last line of a key wins. A half-written last line (a killed run) is skipped."""
    path = Path(run_dir) / JUDGED
    if not path.exists():
        return {}
    want = {key_of(r): row_fingerprint(r, js) for r in rows}
    out: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and want.get(rec.get("key")) == rec.get("fp"):
            out[rec["key"]] = rec
    return out


def _repair(path: Path) -> None:
    """Cut a half-written last line (a killed run) so the next record starts a line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)


def record(
    row: dict[str, Any],
    js: JudgeSettings,
    raw: str,
    verdict: dict[str, bool] | None,
    error: str | None = None,
) -> dict[str, Any]:
    """One line of judged.jsonl. `unparsed`: no verdict (the reply did not parse, or `error`:
    prompt_too_long, request_failed)."""
    rec = {
        "key": key_of(row),
        "split": row["split"],
        "chunk_id": row["chunk_id"],
        "verdict": verdict,
        "raw": raw,
        "unparsed": verdict is None,
        "judge": js.name,
        "fp": row_fingerprint(row, js),
    }
    if error is not None:
        rec["error"] = error
    return rec


# --- running it ----------------------------------------------------------------------------------

Loader = Callable[[], BaseBackend]


def pending(rows: list[dict[str, Any]], run_dir: Path, js: JudgeSettings) -> list[dict[str, Any]]:
    """The rows judged.jsonl has no valid verdict for (what `run` would generate for): a caller
    with none need not load a model."""
    if not js.enabled:
        return []
    done = load(run_dir, rows, js)
    return [r for r in rows if key_of(r) not in done]


def run(
    backend: BaseBackend | Loader,
    st: Settings,
    rows: list[dict[str, Any]],
    run_dir: Path,
    js: JudgeSettings | None = None,
    stats: Stats | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Judge every row that has no verdict yet; {row key: its judged.jsonl record} for all rows.

    backend: a loaded backend (the caller closes it), or a function that loads one: called only
    when some row needs judging, and the backend it returns is closed here. js: the judge
    settings, by default st.judge. stats: a feed.Stats to add the judge's prompts,
    tokens and seconds to (they count in its "answer" queue: see below).

    Generation goes through feed.drive as the rows do (batches, or streamed; OOM halves
    the batch). The driver knows two queues, question and answer; judge jobs go in the answer
    queue, with the judge's own GenParams, and are encoded with stage "judge" (its cue).
    request_failed (an endpoint that gave up) is returned but not written: a rerun asks again.
    """
    js = js if js is not None else st.judge
    if not js.enabled:
        return {}
    run_dir = Path(run_dir)
    out = load(run_dir, rows, js)
    todo = [r for r in rows if key_of(r) not in out]
    if not todo:
        return out
    own = callable(backend) and not hasattr(backend, "generate")
    be: BaseBackend = backend() if own else backend  # type: ignore[operator,assignment]
    sink = _Sink(run_dir / JUDGED, out, len(todo), progress)
    stats = stats if stats is not None else Stats()
    try:
        if own:
            be.set_seed(st.generation.seed)
        _generate(be, st, js, todo, sink, stats)
    finally:
        sink.close()
        if own:
            be.close()
    log.info("judge: %d rows judged, %d without a verdict", len(todo), _no_verdict(out, todo))
    return out


class _Sink:
    """Where run()'s verdicts go as they land: its result map, judged.jsonl (so a crash loses
    the batch in flight at most) and the progress bar; one place that closes them."""

    def __init__(self, path: Path, out: dict[str, dict], total: int, progress: bool) -> None:
        _repair(path)
        self.out = out
        self.file = writing.JsonlAppender(path)
        self.bar = (
            tqdm(total=total, unit="row", desc=STAGE, dynamic_ncols=True) if progress else None
        )

    def put(self, rec: dict[str, Any], persist: bool = True) -> None:
        self.out[rec["key"]] = rec
        if persist:
            self.file.write([rec])
            faults.point(STAGE)  # a verdict is on disk
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.file.close()


def _generate(
    be: BaseBackend,
    st: Settings,
    js: JudgeSettings,
    todo: list[dict[str, Any]],
    sink: _Sink,
    stats: Stats,
) -> None:
    """One verdict per row of `todo` into `sink`: a prompt over st.max_prompt is recorded as
    prompt_too_long without a generation; the rest go through feed.drive."""
    params = judge_params(st, be.spec, js)
    jobs: list[Job] = []
    for r in todo:
        user = judge_prompt(js, r["doc"], r["question"], r.get("answer"))
        ids = be.encode(prompting.messages(None, user, st.system_role), STAGE)
        if len(ids) > st.max_prompt:
            sink.put(record(r, js, f"{len(ids)} tokens", None, "prompt_too_long"))
            continue
        jobs.append(Job("answer", ids, r))

    def on_result(job: Job, gen: Generated) -> list[Job]:
        r = job.payload
        if gen.failed is not None:
            why = f"{gen.status}: {gen.failed}" if gen.status else gen.failed
            sink.put(record(r, js, why, None, "request_failed"), persist=False)
        else:
            sink.put(record(r, js, gen.text, parse_verdict(gen.text, js.names)))
        return []

    try:
        size = llm.batch_size(st, be)
        drive(be, jobs, Feed(on_result, params, size, sink.bar, stats, sink.file.sync))
    except OutOfMemory:
        raise SynthgenError(
            "judge: out of memory even at batch size 1; the verdicts so far are kept in "
            f"{JUDGED}: lower judge.max_new_tokens or use a smaller model"
        ) from None


def _no_verdict(out: dict[str, dict], rows: list[dict[str, Any]]) -> int:
    return sum(out.get(key_of(r), {}).get("verdict") is None for r in rows)


# --- applying the verdicts -----------------------------------------------------------------------


def apply(
    rows: list[dict[str, Any]], verdicts: Mapping[str, dict[str, Any]], js: JudgeSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept rows, rejected.jsonl records of the dropped ones), rows in their order.

    A kept row is a copy with `judge: {item: true|false, ..., "unparsed": false}`; one without a
    verdict, kept by on_unparsed=keep, has `{item: null, ..., "unparsed": true}`. A row with a
    "no" on a required item is dropped with reason `judge_<first such item>` (items' order); one
    without a verdict, under on_unparsed=drop, with `judge_unparsed` (`judge_prompt_too_long`,
    `judge_request_failed`, or `judge_not_judged` for a row `verdicts` lacks). The judge off:
    the rows as they are.
    """
    if not js.enabled:
        return list(rows), []
    return apply_in_order(rows, lambda row: _decide(row, verdicts.get(key_of(row)), js))


def _decide(row: dict[str, Any], rec: dict[str, Any] | None, js: JudgeSettings) -> dict | Rejected:
    """One row under its judged.jsonl record: the row with its verdict, or why it goes."""
    verdict = rec.get("verdict") if rec else None
    if verdict is None:
        reason = "judge_" + ((rec or {}).get("error") or ("unparsed" if rec else "not_judged"))
        if js.on_unparsed == "keep":
            return {**row, "judge": {**dict.fromkeys(js.names), "unparsed": True}}
        return _reject(row, reason, rec, js)
    failed = [n for n in js.names if n in js.require and not verdict.get(n, False)]
    if failed:
        return _reject(row, f"judge_{failed[0]}", rec, js, failed)
    return {**row, "judge": {**{n: verdict.get(n) for n in js.names}, "unparsed": False}}


def judge_splits(
    backend: BaseBackend | Loader,
    st: Settings,
    rows: dict[str, list[dict[str, Any]]],
    run_dir: Path,
    js: JudgeSettings | None = None,
    stats: Stats | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], dict[str, Any]]:
    """`run` over every split's rows, then `apply` to each split: (kept rows per split, the
    judge's rejected.jsonl records, summary.json's `judge` counts). What a generate run's
    finish and task=filter both do with a judge on."""
    js = js if js is not None else st.judge
    flat = [r for s in SPLITS for r in rows[s]]
    verdicts = run(backend, st, flat, run_dir, js, stats)
    kept, drops = {}, []
    for s in SPLITS:
        kept[s], d = apply(rows[s], verdicts, js)
        drops += d
    return kept, drops, {"name": js.name, **counts(verdicts, drops)}


def _reject(
    row: dict[str, Any],
    reason: str,
    rec: dict[str, Any] | None,
    js: JudgeSettings,
    failed: list[str] | None = None,
) -> Rejected:
    extra: dict[str, Any] = {"verdict": (rec or {}).get("verdict"), "judge": js.name}
    if failed:
        extra["failed"] = failed  # every required item that was no
    raw = (rec or {}).get("raw", "")
    return Rejected.of_row(row, STAGE, reason, raw=raw, extra=extra)


def counts(verdicts: Mapping[str, dict[str, Any]], dropped: list[dict[str, Any]]) -> dict[str, Any]:
    """For summary.json: rows judged, how many had no verdict (unparsed replies, and errors by
    kind), the yes count of each item, and the judge's drops per reason."""
    recs = list(verdicts.values())
    errors = Counter(r["error"] for r in recs if r.get("error"))
    yes: Counter[str] = Counter()
    for r in recs:
        for n, v in (r.get("verdict") or {}).items():
            yes[n] += bool(v)
    return {
        "judged": len(recs),
        "parsed": sum(r.get("verdict") is not None for r in recs),
        "unparsed": sum(r.get("verdict") is None and not r.get("error") for r in recs),
        "errors": dict(sorted(errors.items())),
        "yes": dict(yes),
        "dropped": dict(
            sorted(Counter(d["reason"] for d in dropped if d["stage"] == STAGE).items())
        ),
    }

"""The judge stage: a model reads each finished row with its chunk and says yes or no to a few
checks (conf/judge/default.yaml `items`: the question stands alone, its intent is clear, the
chunk answers it, the chunk supports the answer), after NeMo Curator's answerability judgement.

Self-contained pieces, called by the generate task's finish and by task=filter:

    js = JudgeSettings.from_cfg(cfg)                 # off unless judge=default (or enabled)
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
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from synthgen.backends.base import BaseBackend, Generated, GenParams, ModelSpec
from synthgen.dataset import faults, prompting, writing
from synthgen.dataset.generation import Job, Stats, drive
from synthgen.errors import ConfigError, OutOfMemory, SynthgenError
from synthgen.records import Rejected, key_of, short_hash
from synthgen.rundir import JUDGED, SPLITS

if TYPE_CHECKING:
    from synthgen.settings import Settings  # settings imports this module

log = logging.getLogger(__name__)

STAGE = "judge"  # the model config's per-stage key (model.cues.judge, ...) and the reject stage
FALLBACK_STAGE = "answer"  # whose stop strings and token cap a model without a judge entry uses
ON_UNPARSED = ("keep", "drop")
PLACEHOLDERS = ("context", "question", "answer", "checks")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class JudgeSettings:
    """The `judge` group; the default (and a config written before it existed) is off."""

    enabled: bool = False
    name: str = "none"
    prompt: str = ""  # template with {context}, {question}, {answer}, and {checks}
    items: tuple[tuple[str, str], ...] = ()  # (name, its yes/no question), in reply order
    require: tuple[str, ...] = ()  # items that must be yes for a row to be kept
    on_unparsed: str = "keep"  # keep | drop: a row the judge gave no verdict for
    max_new_tokens: int = 48  # most new tokens of a verdict reply (tokens)

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> JudgeSettings:
        """From a checked config (`check(cfg)`); off where `judge` is missing or disabled."""
        j = OmegaConf.select(cfg, "judge")
        if j is None or not j.get("enabled", False):
            return cls(name=str(j.get("name", "none")) if j is not None else "none")
        return cls(
            enabled=True,
            name=str(j.get("name", "judge")),
            prompt=str(j.prompt),
            items=tuple((str(k), str(v)) for k, v in j["items"].items()),
            require=tuple(str(x) for x in j.require),
            on_unparsed=str(j.on_unparsed),
            max_new_tokens=int(j.max_new_tokens),
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.items)

    @property
    def fingerprint(self) -> str:
        """What decides a reply (not what is done with it: require, on_unparsed): a verdict in
        judged.jsonl made under another prompt, items or cap is judged again."""
        return short_hash(self.prompt, json.dumps(self.items), str(self.max_new_tokens), n=12)


def check(cfg: DictConfig) -> None:
    """judge.*: one-line ConfigError naming the key. A config without `judge` is off."""
    j = OmegaConf.select(cfg, "judge")
    if j is None:
        return

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    enabled = j.get("enabled", False)
    need(isinstance(enabled, bool), f"judge.enabled: must be true or false, got {enabled!r}")
    if not enabled:
        return
    model = j.get("model")
    need(
        model is None,
        f"judge.model: must be null (the run's own model judges; no other is supported yet), "
        f"got {model!r}",
    )
    items = j.get("items")
    need(
        OmegaConf.is_dict(items) and len(items) > 0,
        "judge.items: must map each item name to its yes/no question",
    )
    for name, text in items.items():
        need(
            isinstance(name, str) and bool(_NAME.match(name)) and name != "unparsed",
            f"judge.items: {name!r} is not a usable name (lowercase letters, digits and _, "
            "starting with a letter; not 'unparsed')",
        )
        need(
            isinstance(text, str) and bool(text.strip()),
            f"judge.items.{name}: must be the item's yes/no question, got {text!r}",
        )
    prompt = j.get("prompt")
    need(isinstance(prompt, str), f"judge.prompt: must be a template string, got {prompt!r}")
    for p in ("context", "question", "answer"):
        need("{" + p + "}" in prompt, f"judge.prompt: the template must contain {{{p}}}")
    if "{checks}" not in prompt:
        missing = [n for n in items if n not in prompt]
        need(
            not missing,
            f"judge.prompt: item {missing[0] if missing else ''!r} is never named in it "
            "(add {checks}, or the item to the examples)",
        )
    require = j.get("require")
    need(
        OmegaConf.is_list(require),
        f"judge.require: must be a list of item names, got {require!r}",
    )
    for r in require:
        need(r in items, f"judge.require: unknown item {r!r} (items: {', '.join(items)})")
    on = j.get("on_unparsed")
    need(on in ON_UNPARSED, f"judge.on_unparsed: must be keep or drop, got {on!r}")
    cap = j.get("max_new_tokens")
    need(
        isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1,
        f"judge.max_new_tokens: must be an integer >= 1, got {cap!r}",
    )


# --- the prompt ----------------------------------------------------------------------------------


def judge_prompt(js: JudgeSettings, context: str, question: str, answer: str | None) -> str:
    """The judge's prompt for one row: the template with its placeholders filled in one pass
    (a "{question}" inside the chunk stays as it is). A questions-only row (answer None)
    shows "(none)" as its answer."""
    values = {
        "context": context,
        "question": question,
        "answer": "(none)" if answer is None else answer,
        "checks": "\n".join(f"- {n}: {q}" for n, q in js.items),
    }
    pattern = re.compile("|".join(re.escape("{" + n + "}") for n in PLACEHOLDERS))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], js.prompt)


def stage_value(per_stage: Mapping[str, Any], stage: str = STAGE) -> Any:
    """A model's per-stage setting (model.stop_strings, model.max_new_tokens) for the judge:
    its `judge` entry, else its `answer` entry (a verdict, like an answer, follows a chunk and
    ends with a line or a blank line), else None. The one place for that fallback.

    model.cues is not looked up here: a judge prompt ends on its own cue line ("Verdict:"), and
    the answer's cue ("Answer:") would make a base model write an answer; a model without
    model.cues.judge gets no cue (BaseBackend.encode with stage "judge")."""
    if stage in per_stage:
        return per_stage[stage]
    return per_stage.get(FALLBACK_STAGE)


def judge_params(st: Settings, spec: ModelSpec, js: JudgeSettings) -> GenParams:
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


# --- parsing a reply -----------------------------------------------------------------------------

_YES = {"yes": True, "y": True, "true": True, "no": False, "n": False, "false": False}
_WORD = r"(yes|no|true|false)\b"
_DECOR = r"[*_`\"' \t]*"  # bold, italics, code, quotes around a name or a word (one line)


def _item_pattern(name: str) -> re.Pattern[str]:
    """`name: yes` at a line's start, in any case, as `Stands alone`, `stands-alone` or
    `**stands_alone**`, after a bullet or a number, with `:`, `=`, `-` or `->` before the word."""
    spelled = r"[\s_-]?".join(re.escape(part) for part in name.split("_"))
    return re.compile(
        r"^[^\S\n]*(?:[-*+•>#]+|\d+[.)])?" + _DECOR + spelled + _DECOR
        + r"(?:\([^)\n]*\))?[^\S\n]*(?:[:=]|->|-|–|—)" + _DECOR + _WORD,
        re.IGNORECASE | re.MULTILINE,
    )  # fmt: skip


def _key(k: Any) -> str:
    return re.sub(r"[\s-]+", "_", str(k).strip().lower())


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return _YES.get(v.strip().strip(".!").lower())
    return None


def _from_json(raw: str, items: tuple[str, ...]) -> dict[str, bool] | None:
    """The first JSON object in the reply that holds every item (or whose one nested object
    does), values true/false or "yes"/"no"."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", raw):
        try:
            obj, _ = dec.raw_decode(raw, m.start())
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        for cand in [obj, *(v for v in obj.values() if isinstance(v, dict))]:
            found = {_key(k): _as_bool(v) for k, v in cand.items()}
            if all(found.get(n) is not None for n in items):
                return {n: bool(found[n]) for n in items}
    return None


def _bare(raw: str, items: tuple[str, ...]) -> dict[str, bool] | None:
    """A reply of nothing but one yes/no word per item, in the items' order ("Yes, yes, no,
    yes.", "1. yes\\n2. no\\n..."); anything else in it and it is no verdict."""
    text = re.sub(r"(?m)^[^\S\n]*(?:\d+[.)]|[-*+•])", " ", raw)
    words = re.findall(r"(?i)\b(?:yes|no)\b", text)
    leftover = re.sub(r"(?i)\b(?:yes|no)\b|[\s.,;:!*_`\"'|/]", "", text)
    if leftover or len(words) != len(items):
        return None
    return {n: w.lower() == "yes" for n, w in zip(items, words, strict=True)}


def parse_verdict(raw: str, items: tuple[str, ...] | list[str]) -> dict[str, bool] | None:
    """{item: True for yes / False for no} from a judge reply, or None when any item is missing.

    Read, in this order: `item: yes` lines (any order and case, bold, bullets or numbers; an
    item given twice counts its first line: a base model runs on into an example of its own);
    a JSON object; a reply of exactly len(items) yes/no words, taken in the items' order.
    """
    items = tuple(items)
    raw = raw or ""
    found: dict[str, bool] = {}
    for name in items:
        m = _item_pattern(name).search(raw)
        if m is not None:
            found[name] = _YES[m.group(1).lower()]
    if len(found) == len(items):
        return found
    if (js := _from_json(raw, items)) is not None:
        return js
    return _bare(raw, items) if not found else None


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
    settings, by default st.judge. stats: a generation.Stats to add the judge's prompts,
    tokens and seconds to (they count in its "answer" queue: see below).

    Generation goes through generation.drive as the rows do (batches, or streamed; OOM halves
    the batch). The driver knows two queues, question and answer; judge jobs go in the answer
    queue, with the judge's own GenParams, and are encoded with stage "judge" (its cue).
    request_failed (an endpoint that gave up) is returned but not written: a rerun asks again.
    """
    from synthgen.dataset import llm  # it imports settings, which imports this module

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
    path = run_dir / JUDGED
    _repair(path)
    out_file = writing.JsonlAppender(path)
    stats = stats if stats is not None else Stats()

    def put(rec: dict[str, Any], persist: bool = True) -> None:
        out[rec["key"]] = rec
        if persist:
            out_file.write([rec])
            faults.point(STAGE)  # a verdict is on disk
        if bar is not None:
            bar.update(1)

    bar = tqdm(total=len(todo), unit="row", desc=STAGE, dynamic_ncols=True) if progress else None
    try:
        if own:
            be.set_seed(st.generation.seed)
        params = judge_params(st, be.spec, js)
        jobs: list[Job] = []
        for r in todo:
            user = judge_prompt(js, r["doc"], r["question"], r.get("answer"))
            ids = be.encode(prompting.messages(None, user, st.system_role), STAGE)
            if len(ids) > st.max_prompt:
                put(record(r, js, f"{len(ids)} tokens", None, "prompt_too_long"))
                continue
            jobs.append(Job("answer", ids, r))

        def on_result(job: Job, gen: Generated) -> list[Job]:
            r = job.payload
            if gen.failed is not None:
                why = f"{gen.status}: {gen.failed}" if gen.status else gen.failed
                put(record(r, js, why, None, "request_failed"), persist=False)
            else:
                put(record(r, js, gen.text, parse_verdict(gen.text, js.names)))
            return []

        try:
            drive(be, jobs, on_result, params, llm.batch_size(st, be), bar, stats, out_file.sync)
        except OutOfMemory:
            raise SynthgenError(
                "judge: out of memory even at batch size 1; the verdicts so far are kept in "
                f"{JUDGED}: lower judge.max_new_tokens or use a smaller model"
            ) from None
    finally:
        if bar is not None:
            bar.close()
        out_file.close()
        if own:
            be.close()
    log.info("judge: %d rows judged, %d without a verdict", len(todo), _no_verdict(out, todo))
    return out


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
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for row in rows:
        rec = verdicts.get(key_of(row))
        verdict = rec.get("verdict") if rec else None
        if verdict is None:
            reason = "judge_" + ((rec or {}).get("error") or ("unparsed" if rec else "not_judged"))
            if js.on_unparsed == "keep":
                kept.append({**row, "judge": {**dict.fromkeys(js.names), "unparsed": True}})
            else:
                dropped.append(_reject(row, reason, rec, js))
            continue
        failed = [n for n in js.names if n in js.require and not verdict.get(n, False)]
        if failed:
            dropped.append(_reject(row, f"judge_{failed[0]}", rec, js, failed))
        else:
            kept.append(
                {**row, "judge": {**{n: verdict.get(n) for n in js.names}, "unparsed": False}}
            )
    return kept, dropped


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
) -> dict[str, Any]:
    extra: dict[str, Any] = {"verdict": (rec or {}).get("verdict"), "judge": js.name}
    if failed:
        extra["failed"] = failed  # every required item that was no
    raw = (rec or {}).get("raw", "")
    return Rejected.of_row(row, STAGE, reason, raw=raw, extra=extra).to_dict()


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

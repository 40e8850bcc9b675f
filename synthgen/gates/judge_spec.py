"""What the judge stage asks and how its reply reads: the `judge` group (JudgeSettings and its
check), the prompt for one row, a model's per-stage setting for the judge, and parsing a reply
into a verdict.

No model and no files here: settings.py and config.py read the group through this module,
below the stage that runs it (judge.py loads a model through llm.py, which needs settings.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.checks import integer, need
from synthgen.records import short_hash
from synthgen.schema import Judge  # judge.*'s defaults

STAGE = "judge"  # the model config's per-stage key (model.cues.judge, ...) and the reject stage
FALLBACK_STAGE = "answer"  # whose stop strings and token cap a model without a judge entry uses
ON_UNPARSED = ("keep", "drop")
PLACEHOLDERS = ("context", "question", "answer", "checks")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class JudgeSettings:
    """The `judge` group; the default (and a config written before it existed) is off. The
    defaults are the schema's (synthgen/schema/judge.py)."""

    enabled: bool = Judge.enabled
    name: str = Judge.name
    prompt: str = ""  # template with {context}, {question}, {answer}, and {checks}
    items: tuple[tuple[str, str], ...] = ()  # (name, its yes/no question), in reply order
    require: tuple[str, ...] = Judge.require  # items that must be yes for a row to be kept
    on_unparsed: str = Judge.on_unparsed  # keep | drop: a row the judge gave no verdict for
    max_new_tokens: int = Judge.max_new_tokens  # most new tokens of a verdict reply (tokens)

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> JudgeSettings:
        """From a checked config (`check(cfg)`); off where `judge` is missing or disabled."""
        j = OmegaConf.select(cfg, "judge")
        if j is None:  # a config from before the judge stage
            return cls()
        if not j.enabled:
            return cls(name=str(j.name))
        return cls(
            enabled=True,
            name=str(j.name),
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

    enabled = j.enabled
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
    integer(cfg, "judge.max_new_tokens", 1)


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

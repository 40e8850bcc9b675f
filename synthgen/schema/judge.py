"""The `judge` group: a model's yes/no verdict on every finished row. Each field: its one default
(off: judge=none) and its help. Its checks are judge_spec.check's (they run only when enabled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthgen.schema.fields import key


@dataclass(frozen=True)
class Judge:
    """The `judge` group (synthgen/gates/judge.py); off unless judge=default."""

    name: str = key("none", "recorded in summary.json and in every judge reject")
    enabled: bool = key(False, "false: no row is judged, none is dropped or annotated by a judge")
    model: str | None = key(
        None,
        "null = the run's own model (the `model` group, its prompt format, cues and stop "
        "strings); no other value yet",
    )
    max_new_tokens: int = key(
        48,
        "most new tokens of one verdict reply (tokens); four lines take ~20; also capped by "
        "generation.max_new_tokens and model.max_new_tokens.judge where set",
    )
    on_unparsed: str = key(
        "keep",
        "a row whose reply gives no yes/no for every item (or whose prompt is too long, or whose "
        "request failed): keep = keep it, marked judge.unparsed=true; drop = reject it as "
        "judge_unparsed; counted either way",
    )
    require: tuple[str, ...] = key(
        (),
        "items that must be yes for a row to be kept (names from `items`); [] = judge and "
        "annotate only, drop nothing",
    )
    items: Any = key(
        None,
        "name -> its yes/no question, in the order the reply should give them; the names are "
        "what the reply must write (lowercase, `name: yes`) and the keys of each row's `judge`",
    )
    prompt: str | None = key(
        None,
        "the verdict prompt: {checks} = the items, one '- name: question' line each; {context} "
        "= the chunk; {question}, {answer} = the row's",
    )

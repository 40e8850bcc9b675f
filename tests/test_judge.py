"""The judge stage (synthgen/dataset/judge.py): parsing verdicts, its config checks, its prompt
and generation settings."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from synthgen.backends.base import GenParams, ModelSpec
from synthgen.config import ConfigError, check
from synthgen.dataset import judge
from synthgen.dataset.judge import JudgeSettings, parse_verdict
from synthgen.settings import Settings
from tests.conftest import compose

ITEMS = ("stands_alone", "clear_intent", "answerable", "supported")


# --- parse_verdict -------------------------------------------------------------------------------

YYNY = {"stands_alone": True, "clear_intent": True, "answerable": False, "supported": True}


@pytest.mark.parametrize(
    "raw",
    [
        "stands_alone: yes\nclear_intent: yes\nanswerable: no\nsupported: yes",
        # any order and case, the name with a space or a hyphen
        "Supported: YES\nAnswerable: No\nclear-intent: Yes\nStands alone: yes",
        # bullets, numbers, bold, other separators, a reason after the word
        "- **stands_alone**: yes\n* **clear_intent:** yes\n3. answerable = no, the chunk does "
        "not say\n> supported -> Yes.",
        "Verdict:\n  stands_alone: yes\n  clear_intent: yes\n  answerable (the chunk): no\n"
        "  supported: yes\n",
        # a base model that runs on into an example of its own: the first line of each counts
        "stands_alone: yes\nclear_intent: yes\nanswerable: no\nsupported: yes\n\nPassage: x\n"
        "stands_alone: no\nclear_intent: no\nanswerable: yes\nsupported: no",
        # JSON, fenced or not, booleans or words, nested one level
        '```json\n{"stands_alone": true, "clear_intent": "yes", "answerable": false, '
        '"supported": "Yes"}\n```',
        'Here is my verdict: {"verdict": {"Stands alone": "yes", "clear intent": true, '
        '"answerable": "no", "supported": true}}',
        # a bare sequence of four yes/no words, in the items' order
        "yes, yes, no, yes",
        "Yes\nYes\nNo\nYes.",
        "1. yes\n2. yes\n3. no\n4. yes",
    ],
)
def test_replies_that_parse(raw: str) -> None:
    assert parse_verdict(raw, ITEMS) == YYNY


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "The film is about a hero who walks away from explosions.",
        # an item missing
        "stands_alone: yes\nclear_intent: yes\nanswerable: no",
        # a word that is neither yes nor no
        "stands_alone: maybe\nclear_intent: yes\nanswerable: no\nsupported: yes",
        # named items mixed with a bare word: not a bare sequence either
        "stands_alone: yes\nyes\nno\nyes",
        # bare words: too few, too many, or with other text
        "yes yes no",
        "yes yes no yes yes",
        "yes, yes, no, yes, because the passage says so",
        # JSON that lacks an item, or holds something else
        '{"stands_alone": true, "clear_intent": true, "answerable": false}',
        '{"stands_alone": true, "clear_intent": 3, "answerable": false, "supported": true}',
        "[yes, yes, no, yes",
        # an item named in prose, not as a line of its own
        "I think stands_alone: yes and the rest too",
    ],
)
def test_replies_that_do_not_parse(raw: str) -> None:
    assert parse_verdict(raw, ITEMS) is None


def test_items_other_than_the_default_four() -> None:
    assert parse_verdict("short: no\nfactual: yes\n", ["short", "factual"]) == {
        "short": False,
        "factual": True,
    }
    assert parse_verdict("no yes", ["short", "factual"]) == {"short": False, "factual": True}


# --- config --------------------------------------------------------------------------------------


def test_the_judge_is_off_by_default_and_on_with_judge_default() -> None:
    cfg = compose()
    check(cfg)
    assert cfg.judge.enabled is False
    assert JudgeSettings.from_cfg(cfg) == JudgeSettings(name="none")
    assert Settings.from_cfg(cfg).judge.enabled is False
    on = compose(["judge=default"])
    check(on)
    js = Settings.from_cfg(on).judge
    assert js.enabled and js.names == ITEMS and js.require == ITEMS and js.on_unparsed == "keep"
    # a config saved before the judge existed: off
    old = OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "judge"})
    assert JudgeSettings.from_cfg(old).enabled is False


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("judge.enabled=maybe", "judge.enabled"),
        ("judge.model=Qwen/Qwen2.5-7B-Instruct", "judge.model"),
        ("judge.require=[stands_alone,nope]", "judge.require"),
        ("judge.require=stands_alone", "judge.require"),
        ("judge.on_unparsed=ignore", "judge.on_unparsed"),
        ("judge.max_new_tokens=0", "judge.max_new_tokens"),
        ("judge.max_new_tokens=true", "judge.max_new_tokens"),
        ("judge.prompt='{context} {question} only'", "judge.prompt"),
        ("judge.items=null", "judge.items"),
        ("+judge.items.Bad-Name=Is it?", "judge.items"),
        ("+judge.items.unparsed=Is it?", "judge.items"),
        ("judge.items.supported=''", "judge.items.supported"),
        ("+model.cues.verdict=x", "model.cues"),
    ],
)
def test_bad_judge_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(compose(["judge=default", override]))
    msg = str(e.value)
    assert msg.startswith(key + ":") and "\n" not in msg, msg


def test_a_prompt_without_checks_must_name_every_item() -> None:
    base = "{context} {question} {answer} stands_alone clear_intent answerable"
    with pytest.raises(ConfigError, match="^judge.prompt: item 'supported'"):
        check(compose(["judge=default", f"judge.prompt='{base}'"]))
    check(compose(["judge=default", f"judge.prompt='{base} supported'"]))


def test_a_disabled_judge_is_not_checked_further() -> None:
    check(compose(["judge=default", "judge.enabled=false", "judge.on_unparsed=ignore"]))


# --- prompt and generation settings --------------------------------------------------------------


def test_the_prompt_shows_the_row_and_the_checks() -> None:
    js = Settings.from_cfg(compose(["judge=default"])).judge
    text = judge.judge_prompt(js, "A chunk about {question} marks.", "Why?", "Because.")
    assert text.endswith("Passage: A chunk about {question} marks.\nQuestion: Why?\n"
                         "Answer: Because.\nVerdict:")  # fmt: skip
    for name, question in js.items:
        assert f"- {name}: {question}" in text
    assert "Answer: (none)" in judge.judge_prompt(js, "c", "q", None)  # a questions-only row


def test_a_model_without_judge_entries_takes_the_answer_stages() -> None:
    st = Settings.from_cfg(compose(["judge=default", "generation.max_new_tokens=40"]))
    spec = ModelSpec(
        "m", stop_strings={"answer": [".\n"]}, max_new_tokens={"question": 8, "answer": 30}
    )
    p = judge.judge_params(st, spec, st.judge)
    assert p.stop_strings == [".\n"] and p.max_new_tokens == 30 and p.do_sample is False
    spec.stop_strings["judge"] = ["\n\n"]
    spec.max_new_tokens["judge"] = 100
    p = judge.judge_params(st, spec, st.judge)  # its own entries win; the lowest cap holds
    assert p.stop_strings == ["\n\n"] and p.max_new_tokens == 40
    assert judge.judge_params(st, ModelSpec("m"), st.judge) == GenParams(
        max_new_tokens=40, temperature=0.7, top_p=0.9, do_sample=False, seed=0
    )

"""The judge stage (synthgen/gates/judge.py, judge_spec.py): parsing verdicts, its config
checks, keeping and dropping rows, judged.jsonl and resume (fake backend), and real models'
replies (the tiny random-weight model, the default Gemma 3 270M base model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from synthgen.backends.base import GenParams, ModelSpec
from synthgen.config import check
from synthgen.errors import ConfigError
from synthgen.gates import judge, judge_spec
from synthgen.gates.judge_spec import JudgeSettings, parse_verdict
from synthgen.generate import llm
from synthgen.rundir import JUDGED
from synthgen.settings import Settings
from tests.conftest import compose
from tests.helpers.fake_backend import Script

ITEMS = ("stands_alone", "clear_intent", "answerable", "supported")
# the fake's judge replies (fake.judge="markers"): all yes, but a "no" for stands_alone where
# the row's question says "vague", a reply that does not parse where it says "garbage"
FAKE = "model._target_=tests.helpers.fake_backend.Backend"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


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
    text = judge_spec.judge_prompt(js, "A chunk about {question} marks.", "Why?", "Because.")
    assert text.endswith("Passage: A chunk about {question} marks.\nQuestion: Why?\n"
                         "Answer: Because.\nVerdict:")  # fmt: skip
    for name, question in js.items:
        assert f"- {name}: {question}" in text
    assert "Answer: (none)" in judge_spec.judge_prompt(js, "c", "q", None)  # a questions-only row


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


def test_the_default_model_has_a_judge_cue_and_stops() -> None:
    cfg = compose(["judge=default"])
    assert cfg.model.cues.judge == "\n" and "\n\n" in cfg.model.stop_strings.judge


# --- apply and counts ----------------------------------------------------------------------------


def row(i: int, question: str = "", doc: str = "", split: str = "train") -> dict:
    return {
        "id": f"id{i}",
        "split": split,
        "chunk_id": f"c{i}",
        "source": "a.txt",
        "doc": doc or f"Chunk {i}: the long take in the film of {i}.",
        "question": question or f"What is the long take in film {i}?",
        "answer": f"A shot that runs long, in film {i}.",
        "prompt": "notebook",
        "model": "m",
        "q_index": 0,
        "tokens": {"question": 5, "answer": 7},
        "key": f"c{i}:0:notebook:m",
    }


def verdict_of(r: dict, js: JudgeSettings, verdict: dict | None, error: str | None = None):
    return judge.record(r, js, "raw reply", verdict, error)


def test_apply_keeps_yes_rows_and_drops_a_no_on_a_required_item() -> None:
    js = JudgeSettings.from_cfg(compose(["judge=default", "judge.require=[answerable,supported]"]))
    rows = [row(i) for i in range(4)]
    yes = dict.fromkeys(ITEMS, True)
    verdicts = {
        r["key"]: verdict_of(r, js, v)
        for r, v in zip(
            rows,
            [
                yes,
                {**yes, "stands_alone": False},  # not required: kept, marked
                {**yes, "supported": False, "answerable": False},  # first failed in items order
                {**yes, "supported": False},
            ],
            strict=True,
        )
    }
    kept, dropped = judge.apply(rows, verdicts, js)
    assert [r["id"] for r in kept] == ["id0", "id1"]
    assert kept[0]["judge"] == {**yes, "unparsed": False}
    assert kept[1]["judge"]["stands_alone"] is False
    assert "judge" not in rows[0]  # the input rows are not changed
    assert [(d["key"], d["stage"], d["reason"]) for d in dropped] == [
        (rows[2]["key"], "judge", "judge_answerable"),
        (rows[3]["key"], "judge", "judge_supported"),
    ]
    d = dropped[0]
    assert d["failed"] == ["answerable", "supported"] and d["verdict"]["answerable"] is False
    assert d["raw"] == "raw reply" and d["question"] == rows[2]["question"]
    assert d["split"] == "train" and d["chunk_id"] == "c2" and d["judge"] == "default"
    c = judge.counts(verdicts, dropped)
    assert c == {
        "judged": 4,
        "parsed": 4,
        "unparsed": 0,
        "errors": {},
        "yes": {"stands_alone": 3, "clear_intent": 4, "answerable": 3, "supported": 2},
        "dropped": {"judge_answerable": 1, "judge_supported": 1},
    }


@pytest.mark.parametrize("on_unparsed", ["keep", "drop"])
def test_rows_without_a_verdict_follow_on_unparsed_and_are_counted(on_unparsed: str) -> None:
    js = JudgeSettings.from_cfg(compose(["judge=default", f"judge.on_unparsed={on_unparsed}"]))
    rows = [row(i) for i in range(4)]
    verdicts = {
        rows[0]["key"]: verdict_of(rows[0], js, dict.fromkeys(ITEMS, True)),
        rows[1]["key"]: verdict_of(rows[1], js, None),  # the reply did not parse
        rows[2]["key"]: verdict_of(rows[2], js, None, "prompt_too_long"),
        # rows[3]: no record at all
    }
    kept, dropped = judge.apply(rows, verdicts, js)
    if on_unparsed == "keep":
        assert len(kept) == 4 and dropped == []
        assert kept[1]["judge"] == {**dict.fromkeys(ITEMS), "unparsed": True}
        assert kept[3]["judge"]["unparsed"] is True
    else:
        assert [r["id"] for r in kept] == ["id0"]
        assert [d["reason"] for d in dropped] == [
            "judge_unparsed",
            "judge_prompt_too_long",
            "judge_not_judged",
        ]
        assert dropped[0]["verdict"] is None and dropped[0]["raw"] == "raw reply"
    c = judge.counts(verdicts, dropped)
    assert (c["judged"], c["parsed"], c["unparsed"]) == (3, 1, 1)
    assert c["errors"] == {"prompt_too_long": 1}
    assert sum(c["dropped"].values()) == (0 if on_unparsed == "keep" else 3)


def test_a_judge_that_is_off_changes_nothing(tmp_path: Path) -> None:
    rows = [row(0)]
    js = JudgeSettings()
    assert judge.apply(rows, {}, js) == (rows, [])
    st = Settings.from_cfg(compose())
    assert judge.run(lambda: pytest.fail("no model is loaded"), st, rows, tmp_path) == {}
    assert not (tmp_path / JUDGED).exists()


# --- run: the fake backend -----------------------------------------------------------------------


def judge_setup(*over: str) -> tuple[Settings, object]:
    cfg = compose([FAKE, "judge=default", "generation.batch_size=2", *over])
    check(cfg)
    st = Settings.from_cfg(cfg)
    return st, llm.load_backend(cfg, st)


FAKE_ROWS = [
    row(0),
    row(1, "What does it say about the vague thing?"),
    row(2, "garbage question?"),
    row(3, split="val"),
    row(4),
]


@pytest.mark.parametrize("stream", [False, True])
def test_run_writes_each_verdict_and_a_rerun_judges_nothing_again(
    tmp_path: Path, fake: Script, stream: bool
) -> None:
    fake.stream = stream  # fed as the vllm engine is (feed.drive)
    st, backend = judge_setup()
    verdicts = judge.run(backend, st, FAKE_ROWS, tmp_path, progress=False)
    assert len(fake.judged) == 5
    lines = jsonl(tmp_path / JUDGED)
    assert sorted(r["key"] for r in lines) == sorted(r["key"] for r in FAKE_ROWS)
    by_key = {r["key"]: r for r in lines}
    assert verdicts == by_key
    rec = by_key[FAKE_ROWS[1]["key"]]
    assert set(rec) == {"key", "split", "chunk_id", "verdict", "raw", "unparsed", "judge", "fp"}
    assert rec["verdict"]["stands_alone"] is False and rec["unparsed"] is False
    assert rec["raw"].startswith("stands_alone: no")
    bad = by_key[FAKE_ROWS[2]["key"]]
    assert bad["verdict"] is None and bad["unparsed"] is True and "film is good" in bad["raw"]
    assert by_key[FAKE_ROWS[3]["key"]]["split"] == "val"

    kept, dropped = judge.apply(FAKE_ROWS, verdicts, st.judge)
    assert [r["id"] for r in kept] == ["id0", "id2", "id3", "id4"]  # the unparsed one kept
    assert [d["reason"] for d in dropped] == ["judge_stands_alone"]
    assert judge.counts(verdicts, dropped)["unparsed"] == 1

    # a rerun: every row has its verdict; the model is not even loaded
    again = judge.run(lambda: pytest.fail("loaded"), st, FAKE_ROWS, tmp_path, progress=False)
    assert again == verdicts and len(fake.judged) == 5
    # a new row: only it is judged
    judge.run(backend, st, [*FAKE_ROWS, row(5)], tmp_path, progress=False)
    assert len(fake.judged) == 6 and len(jsonl(tmp_path / JUDGED)) == 6


def test_a_crash_loses_at_most_the_batch_in_flight(tmp_path: Path, fake: Script) -> None:
    st, backend = judge_setup()
    fake.crash_after = 2  # the 3rd batch of 2 raises
    with pytest.raises(RuntimeError, match="fake crash"):
        judge.run(backend, st, FAKE_ROWS, tmp_path, progress=False)
    assert len(jsonl(tmp_path / JUDGED)) == 4  # two batches of two, on disk
    # a killed process leaves half a line: cut before the next verdict is appended
    with open(tmp_path / JUDGED, "a", encoding="utf-8") as f:
        f.write('{"key": "c4:0:notebook:m", "verd')
    fake.crash_after = None
    loads: list[int] = []

    def loader():
        loads.append(1)
        return backend

    verdicts = judge.run(loader, st, FAKE_ROWS, tmp_path, progress=False)
    assert loads == [1] and len(verdicts) == 5
    assert len(fake.judged) == 5  # 4 before the crash, the 5th now
    assert len(jsonl(tmp_path / JUDGED)) == 5  # every line whole


def test_verdicts_made_otherwise_are_judged_again(tmp_path: Path, fake: Script) -> None:
    st, backend = judge_setup()
    judge.run(backend, st, FAKE_ROWS[:2], tmp_path, progress=False)
    # require and on_unparsed decide only what is kept: the verdicts stand
    st2, _ = judge_setup("judge.require=[]", "judge.on_unparsed=drop")
    judge.run(backend, st2, FAKE_ROWS[:2], tmp_path, progress=False)
    assert len(fake.judged) == 2
    # another prompt or another row text: judged again
    st3, _ = judge_setup(
        "judge.prompt='Judge {checks} {context} Question: {question} Answer: {answer} Verdict:'"
    )
    judge.run(backend, st3, FAKE_ROWS[:2], tmp_path, progress=False)
    assert len(fake.judged) == 4
    changed = {**FAKE_ROWS[0], "answer": "Another answer."}
    v = judge.run(backend, st3, [changed, FAKE_ROWS[1]], tmp_path, progress=False)
    assert len(fake.judged) == 5 and len(v) == 2


def test_a_prompt_too_long_is_recorded_not_generated(tmp_path: Path, fake: Script) -> None:
    st, backend = judge_setup("model.max_seq_length=2000", "generation.max_new_tokens=32")
    long_row = row(9, doc="A chunk about the long take. " * 80)  # > 2000 characters = tokens
    verdicts = judge.run(backend, st, [row(0), long_row], tmp_path, progress=False)
    assert len(fake.judged) == 1
    rec = verdicts[long_row["key"]]
    assert rec["error"] == "prompt_too_long" and rec["unparsed"] and rec["raw"].endswith("tokens")
    assert judge.counts(verdicts, [])["errors"] == {"prompt_too_long": 1}
    judge.run(backend, st, [row(0), long_row], tmp_path, progress=False)  # not tried again
    assert len(fake.judged) == 1


# --- run: real models ----------------------------------------------------------------------------


def test_the_tiny_random_model_is_counted_unparsed_not_a_crash(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Random weights write garbage: every reply is a verdict or counted as unparsed."""
    cfg = compose(
        [
            "model=qwen25_05b",  # the tiny model is a chat model (tests/test_cli.py)
            f"model.name_or_path={tiny_model}",
            "judge=default",
            "generation.batch_size=2",
        ]
    )
    check(cfg)
    st = Settings.from_cfg(cfg)
    rows = [row(i) for i in range(3)]
    verdicts = judge.run(lambda: llm.load_backend(cfg, st), st, rows, tmp_path, progress=False)
    assert len(jsonl(tmp_path / JUDGED)) == 3
    c = judge.counts(verdicts, [])
    print("tiny model:", c, [r["raw"][:60] for r in verdicts.values()])
    assert c["judged"] == 3 and c["parsed"] + c["unparsed"] == 3 and c["errors"] == {}
    for rec in verdicts.values():
        assert rec["unparsed"] == (rec["verdict"] is None)
    kept, dropped = judge.apply(rows, verdicts, st.judge)
    assert len(kept) + len(dropped) == 3


# three rows a reader would keep and one to drop (a question that points at "the passage" and an
# answer the chunk does not hold), on chunks of the sample corpus (data/movies/80s action heroes)
P1 = (
    "No decade in the history of the movies produced a more recognizable type of hero than the "
    "1980s. He was enormous, usually shirtless, carrying a weapon that seemed too big for any "
    "human arm, and he rarely said more than a sentence at a time. When he did speak, it was "
    "often a pun delivered over the body of a defeated enemy. He walked away from explosions "
    "without looking back."
)
P2 = (
    "The first thing to say about the action stars of the era is that their bodies were the main "
    "special effect. Several of them came from competitive bodybuilding or martial arts rather "
    "than from drama school, and the films were constructed to display their physiques as often "
    "as possible. Shirts were torn away early and rarely recovered."
)
P3 = (
    "This emphasis on the body changed the kind of acting that was required. The best action "
    "stars understood that they were not being asked to deliver subtle psychological portraits. "
    "They needed presence, timing and a sense of humor about themselves."
)
HAND_ROWS = [
    (
        P2,
        "Where did several 1980s action stars come from before they acted in films?",
        "From competitive bodybuilding or martial arts, rather than from drama school.",
    ),
    (
        P1,
        "What did the typical 1980s action hero often deliver over the body of a defeated enemy?",
        "A pun.",
    ),
    (
        P3,
        "What did 1980s action stars need instead of subtle psychological acting?",
        "Presence, timing and a sense of humor about themselves.",
    ),
    (P1, "What does the passage say about it?", "The hero won an Academy Award in 1985."),
]


@pytest.mark.slow
def test_the_default_model_judges_hand_written_rows(gemma: Path, tmp_path: Path) -> None:
    """Gemma 3 270M base on 3 good rows and 1 bad one. What it says is printed (run with -s),
    not asserted: only that every reply is a verdict or counted as unparsed."""
    cfg = compose(["judge=default"])
    check(cfg)
    st = Settings.from_cfg(cfg)
    rows = [
        {**row(i), "doc": doc, "question": q, "answer": a}
        for i, (doc, q, a) in enumerate(HAND_ROWS)
    ]
    verdicts = judge.run(lambda: llm.load_backend(cfg, st), st, rows, tmp_path, progress=False)
    for r in rows:
        rec = verdicts[r["key"]]
        print(f"\n{r['question']!r} -> {rec['verdict']} (raw {rec['raw']!r})")
        assert rec["unparsed"] == (rec["verdict"] is None)
        assert rec["verdict"] is None or set(rec["verdict"]) == set(ITEMS)
    kept, dropped = judge.apply(rows, verdicts, st.judge)
    c = judge.counts(verdicts, dropped)
    print("counts:", c)
    assert c["judged"] == 4 and c["parsed"] + c["unparsed"] == 4
    assert len(kept) + len(dropped) == 4


# --- the judge stage in a run: pipeline finish and task=filter -----------------------------------


HALF = [FAKE, "prompt=notebook"]  # with fake.judge = "half": about half the replies unparsed


@pytest.mark.slow
def test_a_run_judges_its_rows_and_a_rerun_asks_nothing_again(tmp_path: Path, fake: Script) -> None:
    from synthgen.generate import pipeline

    fake.judge = "half"
    d = tmp_path / "run"
    over = [*HALF, "judge=default", "judge.on_unparsed=drop", "num_rows=8"]
    s = pipeline.run(compose(over), d)
    judged = jsonl(d / "judged.jsonl")
    made = [r for sp in ("train", "val") for r in jsonl(d / f"{sp}.jsonl")]
    assert len(judged) == len(made) == len(fake.judged) > 0
    kept = [r for sp in ("train", "val") for r in json.loads((d / f"{sp}.json").read_text())]
    rejected = jsonl(d / "rejected.jsonl")
    drops = [r for r in rejected if r["stage"] == "judge"]
    assert kept and drops and len(kept) + len(drops) == len(made)
    assert all(r["judge"] == {**dict.fromkeys(ITEMS, True), "unparsed": False} for r in kept)
    assert all(r["reason"] == "judge_unparsed" and r["raw"] for r in drops)
    assert s["judge"]["unparsed"] == len(drops) and s["judge"]["dropped"] == {
        "judge_unparsed": len(drops)
    }
    for sp in ("train", "val"):  # every slot is a row or a reject, the judge's included
        c = s["splits"][sp]
        assert c["slots"] == c["rows"] + sum(c["rejected_questions"].values()) + sum(
            c["rejected_answers"].values()
        )
    fake.judged.clear()
    again = pipeline.run(compose(over), d)  # every row judged already: no prompt, same files
    assert fake.judged == [] and again["rows"] == s["rows"]
    assert jsonl(d / "rejected.jsonl") == rejected


def test_task_filter_judges_a_finished_run_with_its_model(tmp_path: Path, fake: Script) -> None:
    from synthgen.generate import pipeline

    fake.judge = "half"
    src = tmp_path / "src"
    pipeline.run(compose([*HALF, "num_rows=8"]), src)  # no judge here
    assert not (src / "judged.jsonl").exists() and fake.judged == []
    out = tmp_path / "out"
    s = pipeline.run(compose(["task=filter", f"filter.data={src}", "judge=default"]), out)
    rows = [r for sp in ("train", "val") for r in json.loads((out / f"{sp}.json").read_text())]
    assert len(rows) == sum(s["rows"].values()) and fake.judged
    unparsed = [r for r in rows if r["judge"]["unparsed"]]  # on_unparsed=keep: kept, marked
    assert unparsed and s["judge"]["unparsed"] == len(unparsed)
    assert all(r["judge"]["stands_alone"] is None for r in unparsed)

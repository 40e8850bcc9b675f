"""The pipeline in-process with the fake backend: slots, dedup, resume, follow-ups, list mode."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from synthgen.corpus.load import load_corpus, make_slots
from synthgen.errors import ConfigError, SynthgenError
from synthgen.gates import filters
from synthgen.generate import llm, pipeline
from synthgen.generate.feed import Feed, drive
from synthgen.generate.rows import RowMaker
from synthgen.records import Row
from synthgen.rundir.state import RunState
from synthgen.settings import Settings
from tests.conftest import compose
from tests.helpers import fake_backend
from tests.helpers.fake_backend import Script

FAKE = "model._target_=tests.helpers.fake_backend.Backend"


def rows(run_dir: Path, split: str = "train") -> list[dict]:
    return [json.loads(x) for x in (run_dir / f"{split}.jsonl").read_text().splitlines() if x]


def test_rows_follow_num_rows_and_carry_their_source(tmp_path: Path) -> None:
    s = pipeline.run(compose([FAKE, "num_rows=5"]), tmp_path)
    got = rows(tmp_path)
    assert len(got) == 5 and s["rows"]["train"] == 5
    assert all(r["source"] and r["chunk_id"] and r["doc"] for r in got)
    assert all(r["question"].startswith("What is #0") for r in got)  # "Question:" label stripped
    assert all(r["answer"].startswith("it is about") for r in got)
    ids = json.loads((tmp_path / "train_corpus.json").read_text())
    assert all(r["chunk_id"] in ids and ids[r["chunk_id"]] == r["doc"] for r in got)


def test_several_questions_per_chunk_are_told_the_earlier_ones(tmp_path: Path) -> None:
    pipeline.run(compose([FAKE, "num_rows=6", "prompt.questions_per_chunk=3"]), tmp_path)
    got = rows(tmp_path)
    assert len(got) == 6 and len({r["chunk_id"] for r in got}) == 2
    # the q-th question's prompt listed q earlier questions (the fake writes how many it saw)
    assert sorted((r["q_index"], r["question"][:10]) for r in got)[::2] == [
        (0, "What is #0"),
        (1, "What is #1"),
        (2, "What is #2"),
    ]


def test_list_mode_asks_once_per_chunk(tmp_path: Path) -> None:
    question = "Write {num_questions} questions about this.\n-----------\n{context}\n-----------"
    overrides = [
        FAKE,
        "num_rows=4",
        "prompt.questions_per_chunk=2",
        f"prompt.question='{question}'",
    ]
    pipeline.run(compose(overrides), tmp_path)
    # the fake returns one question, so the second slot of each chunk is missing from the list
    rej = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rej} == {"missing_from_list"}
    assert len(rows(tmp_path)) == 2


def test_duplicates_are_dropped_counted_and_not_answered(tmp_path: Path, fake: Script) -> None:
    fake.questions = "same"
    s = pipeline.run(compose([FAKE, "num_rows=4"]), tmp_path)
    assert s["rows"] == {"train": 1, "val": 1}
    assert s["splits"]["train"]["duplicates"] == 3
    assert s["this_session"]["prompts"]["answer"] == 2  # duplicates cost no answer


def test_crash_keeps_finished_rows_and_resume_generates_nothing_twice(
    tmp_path: Path, fake: Script
) -> None:
    cfg = compose([FAKE, "num_rows=12", "generation.batch_size=4"])
    fake.crash_after = 3  # questions, answers, questions, then the crash
    with pytest.raises(RuntimeError, match="fake crash"):
        pipeline.run(cfg, tmp_path)
    first = rows(tmp_path)
    pending = (tmp_path / "questions.jsonl").read_text().splitlines()
    assert len(first) == 4 and len(pending) == 8  # 4 answered, 4 questions awaiting answers
    fake.crash_after = None
    fake.calls = []
    s = pipeline.run(cfg, tmp_path)
    again = rows(tmp_path)
    assert len(again) == 12 and len({r["id"] for r in again}) == 12
    assert again[:4] == first  # untouched
    # resumed: train's 4 pending answers, 4 new questions and their answers, then val
    n_val = s["splits"]["val"]["slots"]
    assert s["this_session"]["prompts"] == {"question": 4 + n_val, "answer": 8 + n_val}
    # a third run has nothing left to do
    fake.calls = []
    pipeline.run(cfg, tmp_path)
    assert fake.calls == []


def test_resume_with_changed_prompt_is_refused(tmp_path: Path) -> None:
    pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)
    with pytest.raises(ConfigError, match=r"^resume: .*prompt\.question"):
        pipeline.run(compose([FAKE, "num_rows=2", "prompt.question='Q: {context}'"]), tmp_path)
    with pytest.raises(ConfigError, match="^resume: .* already holds"):
        pipeline.run(compose([FAKE, "num_rows=2", "resume=false"]), tmp_path)
    # more rows into the same dir is a resume, not a conflict
    s = pipeline.run(compose([FAKE, "num_rows=3"]), tmp_path)
    assert s["rows"]["train"] == 3 and s["this_session"]["prompts"]["question"] == 2


def test_a_run_dir_saved_before_chunking_bounds_resumes_as_bounds_drop(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    for choice, d in (("notebook", tmp_path / "notebook"), ("small", tmp_path / "small")):
        pipeline.run(compose([FAKE, "num_rows=2", f"chunking={choice}", "chunking.bounds=drop"]), d)
        old = OmegaConf.load(d / "config.yaml")
        del old.chunking["bounds"]  # a config.yaml as synthgen wrote it before the key
        OmegaConf.save(old, d / "config.yaml")
    # the notebook's chunking is bounds=drop: the old dir resumes
    s = pipeline.run(compose([FAKE, "num_rows=3"]), tmp_path / "notebook")
    assert s["rows"]["train"] == 3 and s["this_session"]["prompts"]["question"] == 2
    # chunking=small now fits its chunks: other rows, so its old dir is refused
    with pytest.raises(ConfigError, match=r"^resume: .*chunking\.bounds: 'drop' -> 'fit'"):
        pipeline.run(compose([FAKE, "num_rows=3", "chunking=small"]), tmp_path / "small")


def test_oom_is_recorded_in_the_summary(tmp_path: Path, fake: Script) -> None:
    fake.oom_above = 2
    s = pipeline.run(compose([FAKE, "num_rows=6", "generation.batch_size=8"]), tmp_path)
    assert s["rows"]["train"] == 6
    assert s["this_session"]["oom_retries"] == [{"from": 8, "to": 4}, {"from": 4, "to": 2}]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["this_session"]["oom_retries"] == s["this_session"]["oom_retries"]


def test_counts_add_up(tmp_path: Path) -> None:
    s = pipeline.run(compose([FAKE, "num_rows=500"]), tmp_path)
    for split in ("train", "val"):
        c = s["splits"][split]
        assert c["chunks_total"] == c["chunks_kept"] + sum(c["chunks_rejected"].values())
        assert c["chunks_used"] == c["chunks_kept"]  # 500 rows wants every kept chunk
        rejected = sum(c["rejected_questions"].values()) + sum(c["rejected_answers"].values())
        assert c["slots"] == c["rows"] + rejected


def test_resume_dedups_against_questions_still_waiting_for_answers(
    tmp_path: Path, fake: Script
) -> None:
    fake.questions = "same"
    cfg = compose([FAKE, "num_rows=3", "generation.batch_size=1"])
    fake.crash_after = 1  # the first question is accepted, then the crash
    with pytest.raises(RuntimeError):
        pipeline.run(cfg, tmp_path)
    assert len((tmp_path / "questions.jsonl").read_text().splitlines()) == 1
    fake.crash_after = None
    s = pipeline.run(cfg, tmp_path)
    assert s["rows"]["train"] == 1  # the waiting question was answered; its twins are duplicates
    assert s["splits"]["train"]["duplicates"] == 2


def test_a_file_in_both_splits_is_refused(tmp_path: Path) -> None:
    overrides = [
        FAKE,
        "corpus.train_files=[film_critics.txt]",
        "corpus.val_files=[film_critics.txt]",
    ]
    with pytest.raises(
        ConfigError, match="^corpus.val_files: 'film_critics.txt' is also in corpus.train_files"
    ):
        pipeline.run(compose(overrides), tmp_path)


def test_lowering_num_rows_on_resume_keeps_the_dataset_to_the_cap(tmp_path: Path) -> None:
    pipeline.run(compose([FAKE, "num_rows=4"]), tmp_path)
    s = pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)
    assert s["rows"] == {"train": 2, "val": 2}
    assert len(json.loads((tmp_path / "train.json").read_text())) == 2
    assert len(rows(tmp_path)) == 4  # the JSONL keeps every finished row: nothing is lost
    c = s["splits"]["train"]
    assert c["slots"] == c["rows"] + sum(c["rejected_questions"].values()) + sum(
        c["rejected_answers"].values()
    )


def test_oom_at_batch_one_is_one_line_and_keeps_rows(tmp_path: Path, fake: Script) -> None:
    from synthgen.errors import SynthgenError

    fake.oom_above = 0
    with pytest.raises(
        SynthgenError, match="^generation.batch_size: out of memory even at batch size 1"
    ):
        pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)


def test_corrupt_jsonl_in_the_middle_stops_with_one_line(tmp_path: Path) -> None:
    from synthgen.errors import SynthgenError

    pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(["{broken", *lines]) + "\n")
    with pytest.raises(SynthgenError, match="^resume: .*train.jsonl: corrupt line"):
        pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)


def test_a_plain_format_model_gets_each_stage_cue_and_stop_strings(
    tmp_path: Path, fake: Script
) -> None:
    """The default model (gemma3_270m, a base model) has no chat template: the prompt text as
    it is, then the stage's cue; its stop strings go with each stage's batches."""
    cfg = compose([FAKE, "num_rows=2"])
    assert cfg.model.prompt_format == "plain"
    pipeline.run(cfg, tmp_path)
    seen = fake.seen
    questions = [(t, st) for t, st in seen if "Also, question is given below" not in t]
    answers = [(t, st) for t, st in seen if "Also, question is given below" in t]
    assert questions and answers
    for text, stops in questions:
        assert text.startswith("Context information is below.")  # no template, no roles
        assert text.endswith("AGAIN, you should write only one question.\n\nQuestion:")
        assert stops == list(cfg.model.stop_strings.question)
    for text, stops in answers:
        assert text.endswith(
            "according to the context' because the context will not revealed to others.\n\nAnswer:"
        )
        assert stops == list(cfg.model.stop_strings.answer)


def test_a_base_model_reply_is_capped_per_stage() -> None:
    from synthgen.backends.base import ModelSpec

    cfg = compose(["generation.max_new_tokens=100", "generation.min_new_tokens=60"])
    spec = ModelSpec.from_kwargs(dict(cfg.model))
    p = llm.stage_params(Settings.from_cfg(cfg), spec)
    assert p["question"].max_new_tokens == cfg.model.max_new_tokens.question == 48
    assert p["question"].min_new_tokens == 48  # never above its cap
    assert p["answer"].max_new_tokens == 100  # generation.max_new_tokens is the lower one
    chat = compose(["model=qwen25_05b"])
    q = llm.stage_params(Settings.from_cfg(chat), ModelSpec.from_kwargs(dict(chat.model)))[
        "question"
    ]
    assert q.max_new_tokens == chat.generation.max_new_tokens and q.stop_strings == []


def test_a_list_prompt_gets_no_question_stop_strings(tmp_path: Path, fake: Script) -> None:
    pipeline.run(compose([FAKE, "num_rows=2", "prompt=multi_question"]), tmp_path)
    stops = {tuple(st) for t, st in fake.seen if "different quiz questions" in t}
    assert stops == {()}


def test_a_chat_model_gets_its_template_and_no_cue(tmp_path: Path, fake: Script) -> None:
    pipeline.run(compose([FAKE, "num_rows=1", "model=qwen25_05b"]), tmp_path)
    text, stops = fake.seen[0]
    assert text.startswith("<user>Context information is below.")
    assert text.endswith("<assistant>") and stops == []


def test_streamed_feeding_writes_as_it_goes_and_resumes(tmp_path: Path, fake: Script) -> None:
    """The vllm engine's way of feeding (feed.drive -> run_stream), crash and resume."""
    fake.stream = True
    cfg = compose([FAKE, "num_rows=12", "generation.batch_size=4"])
    fake.crash_after = 5  # five engine steps (ten results), then the crash
    with pytest.raises(RuntimeError, match="fake crash"):
        pipeline.run(cfg, tmp_path)
    first = rows(tmp_path)
    assert first  # rows reached the disk before the crash
    fake.crash_after = None
    s = pipeline.run(cfg, tmp_path)
    again = rows(tmp_path)
    assert again[: len(first)] == first
    assert len(again) == 12 and len({r["id"] for r in again}) == 12  # nothing twice
    assert s["this_session"]["engine"]["feed"] == "stream"
    assert s["this_session"]["batch_size"] == 4  # requests in flight
    assert s["this_session"]["most_in_flight"] == 4
    assert s["this_session"]["kv_cache_tokens"] == 0  # the fake reports no KV cache


# --- quality gates (conf/filters) ---------------------------------------------------------------


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def test_gated_rejects_are_recorded_counted_and_never_answered(
    tmp_path: Path, fake: Script
) -> None:
    from synthgen.gates import filters

    # echoes and meta references among the questions, refusals among the answers, by chunk
    fake.questions, fake.answers = "gated", "refusals"
    s = pipeline.run(compose([FAKE, "num_rows=40"]), tmp_path)
    rej = jsonl(tmp_path / "rejected.jsonl")
    gated = [r for r in rej if r["reason"] in filters.REASONS]
    reasons = {(r["stage"], r["reason"]) for r in gated}
    assert {("question", "prompt_echo"), ("question", "meta_reference")} <= reasons
    assert ("answer", "refusal") in reasons
    for r in gated:  # each with its gate's score and threshold, and which gate set
        assert r["filters"] == "default" and {"score", "threshold"} <= set(r)
        assert r["raw"] and r["question"]
    echo = next(r for r in gated if r["reason"] == "prompt_echo")
    assert echo["score"] > echo["threshold"] == 0.5
    # summary.json: per split and reason, and all gate rejects per stage:reason
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["filters"] == {"name": "default", "rejected": filters.counts(rej)}
    for split in ("train", "val"):
        c = saved["splits"][split]
        want = Counter(r["reason"] for r in rej if r["split"] == split and r["stage"] == "question")
        assert c["rejected_questions"] == dict(want)
        assert c["slots"] == c["rows"] + len([r for r in rej if r["split"] == split])
    # a gated question costs no answer prompt
    n_questions = sum(1 for r in rej if r["stage"] == "question")
    n_slots = sum(c["slots"] for c in saved["splits"].values())
    assert s["this_session"]["prompts"]["answer"] == n_slots - n_questions
    # no accepted row is an echo, a meta reference or a refusal
    rows_ = rows(tmp_path) + rows(tmp_path, "val")
    assert rows_ and not any(
        "should be diverse" in r["question"] or "passage" in r["question"] for r in rows_
    )
    assert not any("I cannot" in r["answer"] for r in rows_)
    # without gates the same outputs are rows, but for the echo repeated word for word
    none = pipeline.run(compose([FAKE, "num_rows=40", "filters=none"]), tmp_path / "none")
    assert {r["reason"] for r in jsonl(tmp_path / "none" / "rejected.jsonl")} == {"duplicate"}
    assert sum(none["rows"].values()) > sum(s["rows"].values())
    assert none["filters"] == {"name": "none", "rejected": {}}


def test_a_gated_question_is_not_shown_to_the_chunks_next_prompt(
    tmp_path: Path, fake: Script
) -> None:
    """In a chain of follow-ups, a dropped question is not 'already asked': every slot is
    still asked, and the next prompt lists only the accepted questions."""
    # the fake echoes the prompt for a quarter of the chunks, whatever is listed
    fake.questions, fake.answers = "gated", "refusals"
    pipeline.run(compose([FAKE, "num_rows=60", "prompt.questions_per_chunk=3"]), tmp_path)
    rej = jsonl(tmp_path / "rejected.jsonl")
    echoed = Counter(r["chunk_id"] for r in rej if r["reason"] == "prompt_echo")
    assert echoed and set(echoed.values()) == {3}  # all three asked, none listed, all echoed
    got = rows(tmp_path) + rows(tmp_path, "val")
    assert {r["question"][:10] for r in got} == {"What is #0", "What is #1", "What is #2"}


def test_resume_after_gated_rejects_asks_nothing_twice(tmp_path: Path, fake: Script) -> None:
    fake.questions, fake.answers = "gated", "refusals"
    cfg = compose([FAKE, "num_rows=12", "generation.batch_size=4"])
    fake.crash_after = 3
    with pytest.raises(RuntimeError, match="fake crash"):
        pipeline.run(cfg, tmp_path)
    before = jsonl(tmp_path / "rejected.jsonl")
    assert before
    fake.crash_after = None
    s = pipeline.run(cfg, tmp_path)
    rej = jsonl(tmp_path / "rejected.jsonl")
    assert rej[: len(before)] == before
    keys = [r["key"] for r in rej] + [
        Row(**r).key for sp in ("train", "val") for r in rows(tmp_path, sp)
    ]
    assert len(keys) == len(set(keys)) == sum(c["slots"] for c in s["splits"].values())
    fake.calls = []
    pipeline.run(cfg, tmp_path)
    assert fake.calls == []  # a rejected slot is done


def test_the_same_answer_for_many_chunks_is_kept_once(tmp_path: Path, fake: Script) -> None:
    fake.answers, fake.answer_text = (
        "same",
        ("The film shows how the director and the actors worked together on the set for months."),
    )
    over = [FAKE, "num_rows=6", "filters.grounding.enabled=false"]
    s = pipeline.run(compose(over), tmp_path)
    assert s["rows"] == {"train": 1, "val": 1}
    rej = jsonl(tmp_path / "rejected.jsonl")
    assert [r["reason"] for r in rej] == ["near_duplicate_answer"] * 10
    first = {sp: rows(tmp_path, sp)[0]["chunk_id"] for sp in ("train", "val")}
    assert all(r["detail"] == f"chunk {first[r['split']]}" and r["score"] == 1.0 for r in rej)
    # resumed with more rows: the earlier row still counts
    s = pipeline.run(compose([*over[:1], "num_rows=8", *over[2:]]), tmp_path)
    assert s["rows"] == {"train": 1, "val": 1}


def test_resume_with_other_gates_is_refused(tmp_path: Path) -> None:
    pipeline.run(compose([FAKE, "num_rows=2"]), tmp_path)
    with pytest.raises(ConfigError, match=r"^resume: .* \(filters\."):
        pipeline.run(compose([FAKE, "num_rows=2", "filters=strict"]), tmp_path)


@pytest.mark.slow
def test_an_embedding_gate_that_cannot_load_stops_before_the_model(
    tmp_path: Path, fake: Script
) -> None:
    over = [
        FAKE,
        "num_rows=2",
        "filters.grounding.embedding=true",
        "filters.grounding.embedder=nobody/no-such-embedder",
    ]  # offline: cannot load (a ModelLoadError: the hub id is not cached)
    with pytest.raises(SynthgenError, match=r"^filters.grounding.embedder: cannot load"):
        pipeline.run(compose(over), tmp_path)
    assert fake.calls == []  # nothing generated


def test_questions_only_writes_rows_without_answers_and_resumes(
    tmp_path: Path, fake: Script
) -> None:
    """prompt=questions_only (prompt.answer: null): one call per row, "answer": null."""
    cfg = compose([FAKE, "prompt=questions_only", "num_rows=6", "generation.batch_size=2"])
    fake.crash_after = 2  # two batches of questions, then the crash
    with pytest.raises(RuntimeError, match="fake crash"):
        pipeline.run(cfg, tmp_path)
    assert len(rows(tmp_path)) == 4
    fake.crash_after = None
    s = pipeline.run(cfg, tmp_path)
    got = rows(tmp_path)
    assert len(got) == 6 and len({r["id"] for r in got}) == 6
    assert all(r["answer"] is None and r["question"].startswith("What is") for r in got)
    assert all(set(r["tokens"]) == {"question"} for r in got)
    assert s["this_session"]["prompts"]["answer"] == 0
    assert (tmp_path / "questions.jsonl").read_text() == ""  # no answer waits for anything
    data = json.loads((tmp_path / "train.json").read_text())
    assert [r["answer"] for r in data] == [None] * 6
    queries = json.loads((tmp_path / "train_queries.json").read_text())
    assert sorted(queries.values()) == sorted(r["question"] for r in got)
    lidx = json.loads((tmp_path / "train_dataset.json").read_text())
    assert set(lidx["relevant_docs"]) == set(queries)
    import pandas as pd

    sheet = pd.read_excel(tmp_path / "dataset.xlsx", sheet_name="train")
    assert sheet["answer"].isna().all() and len(sheet) == 6


def test_qa_pair_splits_the_reply_and_rejects_what_does_not_split(
    tmp_path: Path, fake: Script
) -> None:
    fake.questions = "broken_pairs"
    s = pipeline.run(compose([FAKE, "prompt=qa_pair", "num_rows=6"]), tmp_path)
    got = rows(tmp_path)
    assert s["this_session"]["prompts"]["answer"] == 0  # one call per row
    assert len(got) == 3  # every 2nd reply had no answer part
    for r in got:
        assert r["question"].startswith("What is #0 in") and r["question"].endswith("?")
        assert r["answer"].startswith("it is ") and set(r["tokens"]) == {"qa_pair"}
    rej = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    train_rej = [r for r in rej if r["split"] == "train"]
    assert len(train_rej) == 3
    assert {(r["stage"], r["reason"]) for r in train_rej} == {("question", "not_a_pair")}
    assert all(r["raw"].startswith("**Question:**") for r in train_rej)
    assert s["splits"]["train"]["rejected_questions"] == {"not_a_pair": 3}


def test_accept_any_keeps_what_the_gates_would_drop_and_counts_it(
    tmp_path: Path, fake: Script
) -> None:
    """The benchmarks' mode (random weights write the same text for every chunk)."""
    from benchmarks.forcing import AcceptAll, Forced
    from synthgen.backends.base import GenParams

    fake.questions = "same"
    cfg = compose([FAKE, "num_rows=4"])
    backend = fake_backend.Backend(name_or_path="fake")
    state = RunState.load(tmp_path, repair=False)
    seen: list[tuple[str, int | None]] = []

    def params_for(stage: str, slot) -> GenParams:
        seen.append((stage, slot.q_index))
        return GenParams(max_new_tokens=5, min_new_tokens=5)

    policy = AcceptAll()
    gen = Forced(
        RowMaker(
            Settings.from_cfg(cfg),
            tmp_path,
            backend.encode,
            state,
            filters.Gates(cfg, cfg.prompt),
            policy=policy,
        ),
        params_for,
    )
    slots = make_slots(Settings.from_cfg(cfg), load_corpus(Settings.from_cfg(cfg), Counter()))
    jobs = gen.initial_jobs(slots["train"], state, set())
    assert all(j.params == GenParams(max_new_tokens=5, min_new_tokens=5) for j in jobs)
    drive(backend, jobs, Feed(gen.on_result, GenParams(), 8))
    gen.close()
    assert len(rows(tmp_path)) == 4  # nothing dropped as a duplicate
    assert policy.overridden == {"question:duplicate": 3}
    assert [st for st, _ in seen].count("answer") == 4


def help_corpus(d: Path) -> list[str]:
    """The plain-text help of two Python modules: 1,024 tokens of it are ~4,000 characters."""
    import pydoc

    d.mkdir()
    for name in ("json", "textwrap"):
        text = pydoc.render_doc(name, renderer=pydoc.plaintext)
        (d / f"{name}.txt").write_text(text, encoding="utf-8")
    return [
        f"corpus.dir={d}",
        "corpus.train_files=[json.txt]",
        "corpus.val_files=[textwrap.txt]",
        "keywords=none",
        "num_rows=2",
    ]


TOO_LONG = re.compile(
    r"^warning: (\d+) of (\d+) (train|val) chunks \(\d+%\) are too long "
    r"\(chunking\.max_chars=2000 characters\); raise it or use chunking\.bounds=fit$",
    re.M,
)


def test_bounds_that_drop_most_chunks_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    corpus = help_corpus(tmp_path / "docs")
    dry = pipeline.run(compose([FAKE, *corpus, "dry_run=true"]), tmp_path / "dry")
    out = capsys.readouterr().out
    said = TOO_LONG.findall(out)
    assert {s[2] for s in said} == {"train", "val"} and dry["warnings"] == [
        ln for ln in out.splitlines() if ln.startswith("warning: ")
    ]
    n, total, _ = said[0]
    assert int(n) > int(total) / 2
    assert f"rejected {{'too_long': {n}}}" in out  # the counts line above it
    s = pipeline.run(compose([FAKE, *corpus]), tmp_path / "drop")
    saved = json.loads((tmp_path / "drop" / "summary.json").read_text())
    assert saved["warnings"] == s["warnings"] == dry["warnings"]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [f"warning: {m}" for m in logged if "chunks" in m] == s["warnings"]  # the run log


def test_bounds_fit_keeps_the_chunks_drop_would_lose(tmp_path: Path) -> None:
    corpus = help_corpus(tmp_path / "docs")
    s = pipeline.run(
        compose([FAKE, *corpus, "chunking.bounds=fit", "filters=none"]), tmp_path / "fit"
    )
    assert s["warnings"] == [] and s["rows"] == {"train": 2, "val": 2}
    for split in ("train", "val"):
        c = s["splits"][split]
        assert c["chunks_kept"] == c["chunks_total"] > 2 and c["chunks_rejected"] == {}
        texts = json.loads((tmp_path / "fit" / f"{split}_corpus.json").read_text())
        assert len(texts) == c["chunks_total"] and all(1000 < len(t) < 2000 for t in texts.values())
        assert all(
            r["source"] == f"{'json' if split == 'train' else 'textwrap'}.txt"
            for r in rows(tmp_path / "fit", split)
        )


def test_keywords_that_match_few_chunks_say_so(tmp_path: Path) -> None:
    corpus = help_corpus(tmp_path / "docs")
    cfg = [FAKE, *corpus, "chunking.bounds=fit", "keywords.words=[cinematography]"]
    s = pipeline.run(compose(cfg), tmp_path / "kw")
    assert s["warnings"] and all("use keywords=none" in w for w in s["warnings"])


def test_a_questions_logprob_goes_with_its_answer_job(tmp_path: Path) -> None:
    """Generated.logprob reaches the row-maker: the answer's own in on_answer's reply, the
    question's carried by its answer job in its signals (AnswerAsk.signals) to the row."""
    from synthgen.backends.base import Generated
    from synthgen.generate.rows import AnswerAsk

    cfg = compose([FAKE, "num_rows=2", "filters=none"])  # no gate in the way
    backend = fake_backend.Backend(name_or_path="fake")
    state = RunState.load(tmp_path, repair=False)
    st = Settings.from_cfg(cfg)
    gen = RowMaker(
        st,
        tmp_path,
        backend.encode,
        state,
        filters.Gates(cfg, cfg.prompt),
    )
    slots = make_slots(st, load_corpus(st, Counter()))
    job = gen.initial_jobs(slots["train"], state, set())[0]
    reply = Generated("Question: What is the long take?", 7, True, logprob=-0.75)
    (answer,) = [j for j in gen.on_result(job, reply) if j.stage == "answer"]
    assert isinstance(answer.payload, AnswerAsk) and answer.payload.signals["logprob"] == -0.75
    assert gen.answer_job(answer.payload.slot, "Why?", 3).payload.signals == {}
    gen.on_result(answer, Generated("It is a shot without a cut.", 8, True, logprob=-0.5))
    (row,) = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert row["signals"]["logprob"] == -0.75 and row["signals"]["answer_logprob"] == -0.5
    gen.close()

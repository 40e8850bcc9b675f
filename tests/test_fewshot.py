"""prompt=fewshot: worked examples before the chunk, loaded inline or from JSONL, checked before
any model loads, and refused when an example's passage is in the corpus (it would leak)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthgen.config import check
from synthgen.errors import ConfigError
from synthgen.generate import pipeline, prompting
from synthgen.settings import Settings
from tests.conftest import FAKE_BACKEND, REPO, compose

EX = [
    {"passage": "Bees dance to show where flowers are.", "question": "Why do bees dance?",
     "answer": "To show the hive where flowers are."},
    {"passage": "Iron rusts when water and air reach it.", "question": "What makes iron rust?",
     "answer": "Water and air."},
]  # fmt: skip


def test_the_default_model_asks_with_worked_examples_and_other_models_do_not() -> None:
    cfg = compose()
    assert cfg.prompt.name == "fewshot" and len(cfg.prompt.examples) >= 3
    assert compose(["prompt=notebook"]).prompt.name == "notebook"  # the command line wins
    assert compose(["model=qwen25_05b"]).prompt.name == "notebook"  # chat models keep theirs
    st = Settings.from_cfg(cfg)
    # shipped examples come from domains unlike the film corpus
    assert not any("film" in p.lower() or "movie" in p.lower() for p in st.prompt.example_passages)


def test_the_examples_come_before_the_chunk_and_the_answer_prompt_extends_the_question() -> None:
    st = Settings.from_cfg(compose())
    pr = st.prompt
    q = prompting.question_prompt(pr.question, "CHUNK TEXT", examples=pr.examples)
    a = prompting.answer_prompt(pr.answer, "CHUNK TEXT", "Why?", pr.examples)
    for p in st.prompt.example_passages:
        assert q.index(p) < q.index("CHUNK TEXT")
    assert q.rstrip().endswith("Passage: CHUNK TEXT")
    assert a.startswith(q)  # a shared prefix: prefix reuse prefills only the question
    assert a.endswith("Question: Why?")
    assert "{" not in q.replace("{examples}", "")  # no placeholder left over


def test_examples_load_from_jsonl_and_bad_ones_stop_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ex.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EX))
    got = prompting.load_examples(str(path))
    assert [e.question for e in got] == ["Why do bees dance?", "What makes iron rust?"]
    cfg = compose([f"prompt.examples={path}"])
    check(cfg)
    assert "Bees dance" in Settings.from_cfg(cfg).prompt.examples
    bad = {
        "missing": (str(tmp_path / "nope.jsonl"), "not found"),
        "json": ("{bad\n", "line 1 is not JSON"),
        "question": (json.dumps({"passage": "x y z"}) + "\n", "question: must be a non-empty"),
        "key": (json.dumps({**EX[0], "tags": 1}) + "\n", "unknown key(s) tags"),
    }
    for name, (text, msg) in bad.items():
        f = tmp_path / f"{name}.jsonl"
        if name != "missing":
            f.write_text(text)
            text = str(f)
        with pytest.raises(ConfigError, match=r"prompt\.examples") as e:
            check(compose([f"prompt.examples={text}"]))
        assert msg in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "overrides, msg",
    [
        (["prompt=notebook", "+prompt.examples=[{passage: a b c, question: q?}]",
          "+prompt.example='{passage} {question}'"], "prompt.question: prompt.examples is set"),
        (["prompt.examples=null"], "has {examples} but prompt.examples is empty"),
        (["prompt.example='Q: {question}'"], "prompt.example: the template of one example"),
        (["prompt.examples=[{passage: a b c, question: q?}]"], "answer: prompt.example shows"),
    ],
)  # fmt: skip
def test_inconsistent_example_settings_stop_before_a_model_loads(
    overrides: list[str], msg: str
) -> None:
    with pytest.raises(ConfigError, match=msg):
        check(compose(overrides))


def test_an_example_passage_found_in_the_corpus_is_refused(tmp_path: Path) -> None:
    """An example taken from the corpus would be a row's own question shown in its prompt."""
    text = (REPO / "data/movies/film_critics.txt").read_text(encoding="utf-8")
    passage = " ".join(text.split()[40:90])  # fifty words from the middle of a corpus file
    ex = tmp_path / "ex.jsonl"
    ex.write_text(json.dumps({**EX[0], "passage": passage}) + "\n")
    with pytest.raises(ConfigError, match=r"prompt\.examples\[0\]: its passage occurs") as e:
        pipeline.run(
            compose([FAKE_BACKEND, "prompt=fewshot", f"prompt.examples={ex}", "num_rows=1"]),
            tmp_path / "run",
        )
    assert "film_critics.txt" in str(e.value)
    assert not (tmp_path / "run" / "train.jsonl").exists()  # nothing generated
    # the same with the dedup off: the folded text itself is looked for
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({**EX[0], "passage": " ".join(text.split()[40:46])}) + "\n")
    with pytest.raises(ConfigError, match="its passage occurs"):
        pipeline.run(
            compose([FAKE_BACKEND, "prompt=fewshot", f"prompt.examples={short}", "num_rows=1"]),
            tmp_path / "run2",
        )


@pytest.mark.slow
def test_the_dry_run_shows_the_examples(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pipeline.run(compose([FAKE_BACKEND, "prompt=fewshot", "dry_run=true"]), tmp_path / "d")
    out = capsys.readouterr().out
    assert "prompt.examples: 4 worked examples before every chunk" in out
    assert "Roasting tomatoes slowly" in out  # the preview shows them in the prompt


def test_the_prompts_own_stop_strings_join_the_models() -> None:
    from synthgen.backends.base import ModelSpec
    from synthgen.generate.llm import stage_params

    cfg = compose()
    spec = ModelSpec.from_kwargs(dict(cfg.model))
    got = stage_params(Settings.from_cfg(cfg), spec)
    assert got["answer"].stop_strings == [*cfg.model.stop_strings.answer, ". "]
    assert got["question"].stop_strings == list(cfg.model.stop_strings.question)
    notebook = stage_params(Settings.from_cfg(compose(["prompt=notebook"])), spec)
    assert notebook["answer"].stop_strings == list(cfg.model.stop_strings.answer)
    with pytest.raises(ConfigError, match=r"prompt\.stop_strings: unknown stage 'judge'"):
        check(compose(["+prompt.stop_strings.judge=[x]"]))

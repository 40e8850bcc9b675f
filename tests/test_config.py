"""Every config file composes, and bad values stop the run with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthgen.config import check
from synthgen.errors import ConfigError
from synthgen.rundir.identity import row_config, row_config_diff
from tests.conftest import REPO, compose

GROUPS = sorted(p.name for p in (REPO / "conf").iterdir() if p.is_dir() and p.name != "hydra")


def all_options() -> list[tuple[str, str]]:
    return [
        (group, p.relative_to(REPO / "conf" / group).with_suffix("").as_posix())
        for group in GROUPS
        for p in sorted((REPO / "conf" / group).rglob("*.yaml"))
    ]


@pytest.mark.parametrize(("group", "option"), all_options())
def test_every_config_file_composes(group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"])
    assert cfg[group] is not None
    # every key documented: each line with a key in the file carries a comment
    text = (REPO / "conf" / group / f"{option}.yaml").read_text()
    for line in text.splitlines():
        stripped = line.strip()
        top_key = line and not line.startswith((" ", "-", "#")) and ":" in line
        if top_key and not stripped.endswith("|-") and not stripped.endswith("|"):
            assert "#" in line, f"{group}/{option}.yaml: key without a comment: {line!r}"


def test_default_config_is_valid() -> None:
    check(compose())


def test_all_group_dirs_are_covered() -> None:
    assert {"corpus", "chunking", "keywords", "prompt", "model"} <= set(GROUPS)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("chunking.min_chars=2000", "chunking.min_chars"),
        ("chunking.min_chars=3000", "chunking.min_chars"),
        ("num_rows=0", "num_rows"),
        ("generation.batch_size=0", "generation.batch_size"),
        ("generation.batch_size=big", "generation.batch_size"),
        ("generation.max_new_tokens=0", "generation.max_new_tokens"),
        ("generation.top_p=1.5", "generation.top_p"),
        ("model.backend=nope", "model.backend"),
        ("model.dtype=int3", "model.dtype"),
        ("model.name_or_path=not a model", "model.name_or_path"),
        ("prompt.question=no placeholder here", "prompt.question"),
        ("prompt.answer='{context} only'", "prompt.answer"),
        ("prompt.questions_per_chunk=0", "prompt.questions_per_chunk"),
        ("keywords.match=fuzzy", "keywords.match"),
        ("chunking.chunk_overlap=2000", "chunking.chunk_overlap"),
        ("chunking.bounds=cut", "chunking.bounds"),
        # the plain prompt format of a base model (the default gemma3_270m)
        ("model.name_or_path=pypi:no-such-model-package", "model.name_or_path"),
        ("model.prompt_format=raw", "model.prompt_format"),
        ("model.chat_template='{{ x }}'", "model.chat_template"),
        ("model.cues.question=[1]", "model.cues.question"),
        ("+model.cues.system=x", "model.cues"),
        ("model.stop_strings.answer=['']", "model.stop_strings.answer"),
        ("model.stop_strings.answer=stop", "model.stop_strings.answer"),
        ("model.max_new_tokens.answer=0", "model.max_new_tokens.answer"),
    ],
)
def test_bad_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(compose([override]))
    msg = str(e.value)
    assert msg.startswith(key + ":"), msg
    assert "\n" not in msg


def test_cues_belong_to_the_plain_format() -> None:
    with pytest.raises(ConfigError, match="^model.cues: only used with model.prompt_format=plain"):
        check(compose(["model=qwen25_05b", "++model.cues={question: 'Q:'}"]))


def test_local_model_folder_without_config_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.name_or_path: .* no config.json"):
        check(compose([f"model.name_or_path={tmp_path}"]))


def test_row_config_diff_names_the_key() -> None:
    a = row_config(compose())
    b = row_config(compose(["prompt.question='Ask about {context}'"]))
    assert row_config_diff(a, a) is None
    assert row_config_diff(a, b).startswith("prompt.question:")
    # batch size and num_rows do not change rows: resuming with other values is fine
    c = row_config(compose(["generation.batch_size=3", "num_rows=7"]))
    assert row_config_diff(a, c) is None


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["prompt=qa_pair", "prompt.reply=both"], "prompt.reply"),
        (["prompt=qa_pair", "prompt.answer='{context} {question}'"], "prompt.answer"),
        (["prompt=qa_pair", "prompt.question='{num_questions} of {context}'"], "prompt.question"),
    ],
)
def test_bad_reply_settings_name_their_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}:"):
        check(compose(overrides))


def test_questions_only_is_a_null_answer() -> None:
    check(compose(["prompt.answer=null"]))
    assert compose(["prompt=questions_only"]).prompt.answer is None

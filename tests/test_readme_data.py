"""The commands of the data sections of docs/corpus.md (encoding, cleaning, leak check) compose,
pass the config checks and read the sample corpus as they say."""

from __future__ import annotations

import shlex
from collections import Counter

import pytest

from synthgen.config import check
from synthgen.corpus.load import load_corpus
from synthgen.settings import Settings
from tests.conftest import compose
from tests.helpers.docs import bash_blocks, section

PAGE = "docs/corpus.md"
SECTIONS = (
    "Text files and their encoding",
    "Cleaning PDF text",
    "Duplicates and the train/val leak check",
)


def commands() -> list[list[str]]:
    out = []
    for title in SECTIONS:
        for block in bash_blocks(section(PAGE, title)):
            for line in block.splitlines():
                args = shlex.split(line)
                assert args[:2] == ["python", "run.py"], line
                out.append(args[2:])
    return out


def test_each_section_has_its_command() -> None:
    assert len(commands()) == 4


@pytest.mark.parametrize("args", commands(), ids=" ".join)
def test_readme_command_composes_and_reads_the_sample(args: list[str]) -> None:
    cfg = compose(args)
    check(cfg)
    corpus = load_corpus(Settings.from_cfg(cfg), Counter(), leak := {})
    assert leak["pairs"] == []  # the sample corpus shares no passage between its splits
    assert all(sc.chunks for sc in corpus.values())
    if cfg.cleaning.apply_to == [] or "cleaning=none" in args:
        assert not any(sc.cleaning for sc in corpus.values())
    else:
        assert corpus["train"].cleaning  # its PDFs are cleaned

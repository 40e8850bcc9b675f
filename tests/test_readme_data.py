"""The commands of the README's data sections (lock, encoding, cleaning, leak check) compose,
pass the config checks and read the sample corpus as they say."""

from __future__ import annotations

import re
import shlex
from collections import Counter

import pytest

from synthgen.config import check
from synthgen.dataset.corpus import load_corpus
from synthgen.settings import Settings
from tests.conftest import REPO, compose

SECTIONS = (
    "## Text files and their encoding",
    "## Cleaning PDF text",
    "## Duplicates and the train/val leak check",
)


def commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = []
    for title in SECTIONS:
        body = text.split(title, 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```bash\n(.+?)\n```", body, re.DOTALL):
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

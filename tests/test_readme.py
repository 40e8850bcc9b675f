"""The README's commands are the ones CI runs: a fresh machine needs nothing else."""

from __future__ import annotations

import re

from tests.conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick, re.DOTALL)


def test_readme_has_a_main_command_and_a_test_command() -> None:
    main, tests = readme_commands()[:2]
    assert main.endswith("python run.py") and "pip install -e ." in main
    assert tests.endswith("python -m pytest") and '".[test]"' in tests
    assert main.startswith("python -m venv") and tests.startswith("python -m venv")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()

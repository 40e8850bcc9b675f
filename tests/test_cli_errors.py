"""The first hour of a new user, through the CLI: a hub model when the hub does not answer,
dry runs that always count, and the --help page.

The hub is unreachable for real here and in CI alike: HF_ENDPOINT points at a local port
that nothing listens on, with online mode on and an empty HF cache of the test's own.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli
from tests.test_models import closed_port

pytestmark = pytest.mark.slow


# two of the sample corpus's text files: no PDF to read, so a CLI run starts in seconds
TEXT_FILES = ["corpus.train_files=[film_critics.txt]", "corpus.val_files=[in_the_dark_together.md]"]


def hub_down(tmp_path: Path) -> dict[str, str]:
    cache = tmp_path / "hf-cache"
    cache.mkdir(exist_ok=True)
    return {
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HUB_CACHE": str(cache),
    }


def test_a_hub_model_without_the_hub_fails_in_seconds_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    t = time.perf_counter()
    p = cli("model=qwen25_05b", check=False, cwd=tmp_path, **hub_down(tmp_path))
    seconds = time.perf_counter() - t
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1, p.stderr  # one line and nothing else: no retry warnings
    line = p.stderr.strip()
    assert line.startswith(
        "error: model.name_or_path: cannot load 'Qwen/Qwen2.5-0.5B-Instruct': the hub"
    )
    assert "unreachable" in line and "HF_HUB_OFFLINE=1" in line and "local model folder" in line
    assert "Retrying" not in p.stdout + p.stderr
    assert seconds < 15  # the retries alone took ~50 s (issue 12)
    assert list((tmp_path / "outputs").iterdir()) == []  # no run dir left behind


def test_a_dry_run_counts_even_when_the_model_cannot_load(tmp_path: Path) -> None:
    p = cli("model=qwen25_05b", "dry_run=true", check=False, cwd=REPO, **hub_down(tmp_path))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "[train] files 11 read, 0 skipped" in out and "[val] files 4 read" in out
    assert "prompts to run: 50 question + up to 50 answer" in out
    assert "resume: no slot done yet in the run dir: all 50 to generate" in out
    assert "no prompt preview: model.name_or_path: cannot load 'Qwen/Qwen2.5-0.5B-Instruct'" in out
    assert out.index("prompts to run") < out.index("no prompt preview")
    assert p.stderr.strip() == ""


def test_a_dry_run_says_what_resume_would_skip(tiny_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    args = [
        "model=qwen25_05b",
        f"model.name_or_path={tiny_model}",
        "generation.max_new_tokens=4",
        "prompt.questions_per_chunk=2",  # one chunk per file: slots are its two questions
        *TEXT_FILES,
        f"hydra.run.dir={run}",
    ]
    cli(*args, "num_rows=1")
    p = cli(*args, "num_rows=2", "dry_run=true")
    assert "resume: 2 of 4 slots already done in" in p.stdout and ", 2 to generate" in p.stdout
    p = cli(*args, "num_rows=2", "dry_run=true", "prompt=critic")
    assert "resume: a real run would stop here: resume:" in p.stdout
    assert "--- first question prompt" in p.stdout  # the preview still comes


def test_a_cached_hub_model_loads_without_the_hub(tiny_model: Path, tmp_path: Path) -> None:
    """The model in the HF cache (as a first run with the hub reachable leaves it), then the
    hub gone: it loads from the cache, asks nothing, warns nothing."""
    env = hub_down(tmp_path)
    repo = Path(env["HF_HUB_CACHE"]) / "models--test-org--tiny-chat"
    commit = "1" * 40
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    run = tmp_path / "r"
    p = cli(
        "model=qwen25_05b",
        "model.name_or_path=test-org/tiny-chat",
        *TEXT_FILES,
        "num_rows=1",
        "generation.max_new_tokens=4",
        f"hydra.run.dir={run}",
        **env,
    )
    assert "loading the cached copy of test-org/tiny-chat" in p.stdout
    assert "Retrying" not in p.stderr and "thrown while requesting" not in p.stderr
    assert (run / "DONE").exists()


def test_help_names_every_task_group_and_option() -> None:
    from synthgen.tasks import TASKS

    p = cli("--help")
    page = p.stdout
    assert page.startswith("synthgen: turn documents")
    for task in TASKS:
        assert f"\n  {task} " in page, task
    groups = sorted(d.name for d in (REPO / "conf").iterdir() if d.is_dir() and d.name != "hydra")
    for group in groups:
        options = sorted(f.stem for f in (REPO / "conf" / group).glob("*.yaml"))
        assert f"\n{group}: {', '.join(options)}\n" in page, group
    launchers = sorted(f.stem for f in (REPO / "conf" / "hydra" / "launcher").glob("*.yaml"))
    assert f"hydra/launcher: {', '.join(launchers)} " in page
    keys = page.split("== The ten most used keys", 1)[1].split("== Examples", 1)[0]
    assert len(re.findall(r"(?m)^  [\w.]+=", keys)) == 10
    examples = page.split("== Examples ==", 1)[1].split("\n\n", 1)[0]
    assert examples.count("\n  python run.py") == 3
    assert len(page.splitlines()) < 80  # a page, not the 245 lines of config

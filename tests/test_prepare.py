"""Read and chunk once per dataset: `task=prepare`, then shard jobs with `corpus.prepared=DIR`.

The prepared folder is made by the command of docs/scaling.md (a subprocess, the real readers on the
sample corpus); the jobs use the fake backend, so the test is about the corpus, not the model:
a run from prepared chunks must make exactly the rows (and every dataset file) of a run that
reads the files, sharded and not.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from synthgen import rundir
from synthgen.corpus.load import load_corpus
from synthgen.errors import ConfigError
from synthgen.generate import pipeline
from synthgen.rundir.discovery import find_runs
from synthgen.rundir.identity import row_config
from synthgen.scale import merge
from synthgen.settings import Settings
from tests.conftest import cli, compose
from tests.helpers.docs import section

# every test takes the folder the docs' task=prepare command makes, run as `python run.py`
pytestmark = pytest.mark.slow
FAKE = "model._target_=tests.helpers.fake_backend.Backend"
ROWS = ["num_rows=7", "prompt.questions_per_chunk=2"]
DATASET_FILES = [*map(rundir.dataset_file, rundir.SPLITS), *map(rundir.corpus_file, rundir.SPLITS)]


def readme_prepare_command() -> list[str]:
    """The `task=prepare` command of docs/scaling.md (section "Scaling out")."""
    text = section("docs/scaling.md", "Scaling out")
    line = next(ln for ln in text.splitlines() if ln.startswith("python run.py task=prepare"))
    return shlex.split(line)[2:]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("big-run") / "prepared"
    args = [a for a in readme_prepare_command() if not a.startswith("hydra.run.dir=")]
    cli(*args, f"hydra.run.dir={d}")
    return d


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset made by one job that reads the files."""
    d = tmp_path_factory.mktemp("one") / "run"
    pipeline.run(compose([FAKE, *ROWS]), d)
    return d


def same_dataset(a: Path, b: Path) -> None:
    for name in DATASET_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = rundir.read_summary(a), rundir.read_summary(b)
    assert sa["splits"] == sb["splits"] and sa["rows"] == sb["rows"] and sa["leak"] == sb["leak"]
    assert sum(sa["rows"].values()) > 0


def test_prepared_folder_loads_as_the_corpus_read_from_the_files(prepared: Path) -> None:
    head = json.loads((prepared / rundir.PREPARED).read_text())
    s = rundir.read_summary(prepared)
    assert s["task"] == "prepare" and s["status"] == "complete"
    assert s["fingerprint"] == head["fingerprint"] and s["seconds"]["read"] > 0
    files = load_corpus(Settings.from_cfg(compose()), Counter())
    seconds: Counter[str] = Counter()
    got = load_corpus(Settings.from_cfg(compose([f"corpus.prepared={prepared}"])), seconds)
    for split in rundir.SPLITS:
        a, b = dataclasses.asdict(files[split]), dataclasses.asdict(got[split])
        assert b.pop("prepared") == {"dir": str(prepared), "fingerprint": head["fingerprint"]}
        a.pop("prepared")
        assert a == b and a["used"]
    assert set(seconds) == {"prepared"}  # no file read, chunked or deduplicated


def test_rows_from_prepared_chunks_are_the_rows_of_a_run_that_reads_the_files(
    prepared: Path, one_run: Path, tmp_path: Path
) -> None:
    out = pipeline.run(compose([FAKE, *ROWS, f"corpus.prepared={prepared}"]), tmp_path / "p")
    same_dataset(one_run, tmp_path / "p")
    assert out["corpus"]["prepared"] == str(prepared)
    assert rundir.read_summary(one_run)["corpus"] == {"prepared": None}
    assert "read" not in out["seconds"] and out["seconds"]["prepared"] >= 0


def test_shards_from_prepared_chunks_merge_into_the_rows_of_one_run(
    prepared: Path, one_run: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    for i in range(2):
        overrides = [*ROWS, f"corpus.prepared={prepared}", "shard.count=2", f"shard.index={i}"]
        d = sweep / ",".join(sorted(overrides)).replace("/", "_")
        (d / rundir.HYDRA).mkdir(parents=True)
        (d / rundir.HYDRA / rundir.OVERRIDES).write_text(json.dumps(overrides))
        cfg = compose([FAKE, *overrides])
        OmegaConf.save(cfg, d / rundir.HYDRA / rundir.CONFIG)
        s = pipeline.run(cfg, d)
        assert s["corpus"]["prepared"] == str(prepared) and sum(s["rows"].values()) > 0
    merge.merge_sweep(sweep)
    same_dataset(one_run, sweep / "merged")


def test_a_prepared_folder_of_another_corpus_config_is_refused_in_one_line(
    prepared: Path, tmp_path: Path
) -> None:
    cfg = compose([FAKE, *ROWS, f"corpus.prepared={prepared}", "chunking.chunk_size=512"])
    with pytest.raises(ConfigError) as e:
        pipeline.run(cfg, tmp_path / "r")
    msg = str(e.value)
    assert msg.startswith("corpus.prepared:") and "\n" not in msg
    assert "chunking.chunk_size: 1024 -> 512" in msg, msg
    assert not list((tmp_path / "r").glob("*.jsonl"))  # nothing generated
    # a dry run says where its chunks come from; a folder that is no prepared corpus: one line
    dry = pipeline.run(compose([*ROWS, "dry_run=true", f"corpus.prepared={prepared}"]), tmp_path)
    assert dry["corpus"]["prepared"] == str(prepared) and dry["slots"]["train"] == 7
    with pytest.raises(ConfigError, match="^corpus.prepared: .* holds no prepared corpus"):
        pipeline.run(compose([*ROWS, "dry_run=true", f"corpus.prepared={tmp_path}"]), tmp_path)


def test_a_folder_prepared_before_chunking_bounds_reads_as_bounds_drop(
    prepared: Path, tmp_path: Path
) -> None:
    from synthgen.corpus.load import fingerprint, verify_prepared

    old = tmp_path / "old"
    old.mkdir()
    for f in prepared.iterdir():
        if f.is_file():
            (old / f.name).write_bytes(f.read_bytes())
    head = json.loads((old / rundir.PREPARED).read_text())
    del head["keys"]["chunking.bounds"]  # the header as synthgen wrote it before the key
    head["fingerprint"] = fingerprint(head["keys"])
    (old / rundir.PREPARED).write_text(json.dumps(head))
    assert verify_prepared(old, Settings.from_cfg(compose([FAKE, "chunking=notebook"])))
    with pytest.raises(ConfigError, match=r"chunking\.bounds: 'drop' -> 'fit'"):
        verify_prepared(old, Settings.from_cfg(compose([FAKE, "chunking.bounds=fit"])))


def test_num_rows_and_where_chunks_come_from_do_not_need_a_new_folder(
    prepared: Path, tmp_path: Path
) -> None:
    cfg = compose([FAKE, "num_rows=3", f"corpus.prepared={prepared}"])
    assert pipeline.run(cfg, tmp_path / "r")["rows"] == {"train": 3, "val": 3}
    assert row_config(cfg) == row_config(compose([FAKE, "num_rows=3"]))  # resume either way


def test_a_prepared_folder_in_a_sweep_is_not_a_run_to_compare(prepared: Path, one_run) -> None:
    assert find_runs([prepared.parent, one_run.parent], missing_ok=True) == [one_run]

"""Scale out: shards of one dataset through Hydra multirun launchers, relaunch, merge.

The end-to-end tests run the "Scaling out" commands of docs/scaling.md (`python run.py -m ...`
in a subprocess, joblib with 2 workers, Ray with 2 simulated GPUs) on the sample corpus with the
tiny real model and greedy decoding, so a sharded run can be compared row for row with one
run. The unit tests at the top use the fake backend and hand-made job dirs.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from synthgen import rundir, tasks
from synthgen.config import check
from synthgen.corpus.load import load_corpus, make_slots
from synthgen.errors import ConfigError
from synthgen.generate import pipeline
from synthgen.records import Row
from synthgen.rundir.identity import row_config
from synthgen.rundir.state import RunState
from synthgen.scale import merge, sharding
from synthgen.settings import Settings
from tests.conftest import REPO, compose
from tests.conftest import cli as conftest_cli

FAKE = "model._target_=tests.helpers.fake_backend.Backend"
SPLITS = ("train", "val")


# --- shards of the slots, config checks -----------------------------------------------------


def test_shards_split_the_slots_of_one_run_exactly() -> None:
    cfg = compose(["num_rows=9", "prompt.questions_per_chunk=2", "chunking=small"])
    corpus = load_corpus(Settings.from_cfg(cfg), Counter())
    slots = make_slots(Settings.from_cfg(cfg), corpus)
    assert sharding.keep(slots, 1, 0) == slots
    for count in (2, 3, 5):
        parts = [sharding.keep(slots, count, i) for i in range(count)]
        for s in SPLITS:
            keys = [x.key for p in parts for x in p[s]]
            assert sorted(keys) == sorted(x.key for x in slots[s])  # each slot in one shard
            for p in parts:  # dataset order kept; a chunk's questions stay together
                assert [x.key for x in p[s]] == [x.key for x in slots[s] if x in p[s]]
                assert len({sharding.shard_of(x.chunk.id, count) for x in p[s]}) <= 1
    ids = [c.id for c in corpus["train"].kept]  # 34 chunks: hashes spread them evenly
    for count in (2, 3):
        per = Counter(sharding.shard_of(i, count) for i in ids)
        assert len(per) == count and min(per.values()) >= len(ids) / count / 2, per


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["shard.count=0"], "shard.count"),
        (["shard.count=2", "shard.index=2"], "shard.index"),
        (["shard.index=-1"], "shard.index"),
        (["shard.count=2", "shard.index=one"], "shard.index"),
    ],
)
def test_bad_shard_values_name_their_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(compose(overrides))
    assert str(e.value).startswith(key + ":") and "\n" not in str(e.value)


def test_shard_keys_do_not_change_rows() -> None:
    """A relaunch with another shard.count must be allowed to resume a job dir."""
    assert row_config(compose()) == row_config(compose(["shard.count=4", "shard.index=3"]))


# --- merge with hand-made job dirs (fake backend) ---------------------------------------------


def job(sweep: Path, overrides: list[str], run: bool = True) -> Path:
    """A job dir as a multirun leaves it: Hydra's .hydra/ record, then the run's files."""
    cfg = compose([FAKE, *overrides])
    d = sweep / ",".join(sorted(overrides))
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    OmegaConf.save(cfg, d / ".hydra" / "config.yaml")
    if run:
        pipeline.run(cfg, d)
    return d


def test_merge_is_one_run_with_each_key_once(tmp_path: Path, fake) -> None:
    one = pipeline.run(compose([FAKE, "num_rows=7"]), tmp_path / "one")
    sweep = tmp_path / "sweep"
    for i in range(3):
        job(sweep, ["num_rows=7", "shard.count=3", f"shard.index={i}"])
    out = merge.merge_sweep(sweep)["merged"][0]
    d = sweep / "merged"
    assert out["status"] == "complete" and (d / rundir.DONE).exists()
    for s in SPLITS:
        assert json.loads((d / f"{s}.json").read_text()) == json.loads(
            (tmp_path / "one" / f"{s}.json").read_text()
        )
        assert out["splits"][s] == one["splits"][s]  # the counts of one run
    assert sum(x["rows"]["train"] for x in out["shards"]) == out["rows"]["train"] == 7
    assert out["generation"]["output_tokens"] == one["generation"]["output_tokens"]
    assert OmegaConf.load(d / "config.yaml").shard == {"count": 1, "index": 0}
    # a tool collecting runs takes the merged dir and the 1-shard run, not the shards
    runs = [p.parent for p in tmp_path.rglob("summary.json") if not rundir.is_shard(p.parent)]
    assert sorted(runs) == sorted([tmp_path / "one", d])


def test_a_question_asked_in_two_shards_is_kept_once(tmp_path: Path, fake) -> None:
    fake.questions = "same"  # every question the same text
    one = pipeline.run(compose([FAKE, "num_rows=6"]), tmp_path / "one")
    sweep = tmp_path / "sweep"
    for i in range(2):
        job(sweep, ["num_rows=6", "shard.count=2", f"shard.index={i}"])
    assert all(
        len(RunState.load(d, False).rows["train"]) == 1 for d in sweep.iterdir() if d.is_dir()
    ), "each shard keeps its own first question"
    out = merge.merge_sweep(sweep)["merged"][0]
    assert out["rows"] == one["rows"] == {"train": 1, "val": 1}
    assert out["splits"]["train"]["duplicates"] == one["splits"]["train"]["duplicates"] == 5
    rejected = RunState.load(sweep / "merged", False).rejected
    assert len({r["key"] for r in rejected}) == len(rejected) == 10


def test_an_answer_given_in_two_shards_is_kept_once(tmp_path: Path, fake) -> None:
    """Shards never see each other's answers: the merge runs the near-duplicate gate again."""
    fake.answers, fake.answer_text = (
        "same",
        ("The film shows how the director and the actors worked on the set for months."),
    )
    over = ["num_rows=6", "filters.grounding.enabled=false"]
    one = pipeline.run(compose([FAKE, *over]), tmp_path / "one")
    sweep = tmp_path / "sweep"
    for i in range(2):
        job(sweep, [*over, "shard.count=2", f"shard.index={i}"])
    shards = [RunState.load(d, False) for d in sweep.iterdir() if d.is_dir()]
    assert sum(len(st.rows["train"]) for st in shards) == 2, "each shard keeps its own first"
    out = merge.merge_sweep(sweep)["merged"][0]
    assert out["rows"] == one["rows"] == {"train": 1, "val": 1}
    for s in SPLITS:
        assert out["splits"][s]["rejected_answers"] == one["splits"][s]["rejected_answers"]
    assert out["filters"] == one["filters"]
    assert out["filters"]["rejected"] == {"answer:near_duplicate_answer": 10}
    rejected = RunState.load(sweep / "merged", False).rejected
    assert len({r["key"] for r in rejected}) == len(rejected) == 10
    assert all({"score", "threshold", "filters"} <= set(r) for r in rejected)


@pytest.mark.slow
def test_merge_names_one_dir_per_swept_setting(tmp_path: Path, fake) -> None:
    sweep = tmp_path / "sweep"
    for rows in (3, 5):
        for i in range(2):
            job(
                sweep,
                [f"num_rows={rows}", "generation.seed=1", "shard.count=2", f"shard.index={i}"],
            )
    out = merge.merge_sweep(sweep)
    assert sorted(Path(m["run_dir"]).relative_to(sweep).as_posix() for m in out["merged"]) == [
        "num_rows=3/merged",
        "num_rows=5/merged",
    ]
    assert json.loads((sweep / "num_rows=5" / "merged" / "summary.json").read_text())["rows"] == {
        "train": 5,
        "val": 5,
    }


@pytest.mark.slow
def test_relaunch_with_other_shard_count_completes_the_set(tmp_path: Path, fake) -> None:
    """Shard 1 of 2 never finished, all 3 of a relaunch did: complete, nothing listed."""
    sweep = tmp_path / "sweep"
    job(sweep, ["num_rows=4", "shard.count=2", "shard.index=0"])
    job(sweep, ["num_rows=4", "shard.count=2", "shard.index=1"], run=False)
    jobs = sharding.job_dirs(sweep)
    assert merge.unfinished(jobs) == ["shard.count=2,shard.index=1 has no DONE"]
    for i in range(3):
        job(sweep, ["num_rows=4", "shard.count=3", f"shard.index={i}"])
    assert merge.unfinished(sharding.job_dirs(sweep)) == []
    assert merge.merge_sweep(sweep)["merged"][0]["rows"] == {"train": 4, "val": 4}


@pytest.mark.slow
def test_callback_merges_finished_datasets_and_leaves_an_older_unfinished_one(
    tmp_path: Path, fake
) -> None:
    sweep = tmp_path / "sweep"
    job(sweep, ["num_rows=2", "shard.count=2", "shard.index=0"])  # an older launch, one shard
    for i in range(2):
        job(sweep, ["num_rows=3", "shard.count=2", f"shard.index={i}"])
    with pytest.raises(ConfigError, match=r"num_rows=2: shard.count=2,shard.index=1 never"):
        merge.merge_sweep(sweep)
    out = merge.merge_sweep(sweep, skip_unfinished=True)
    assert [Path(m["run_dir"]).parent.name for m in out["merged"]] == ["num_rows=3"]
    assert not (sweep / "num_rows=2").exists()


def test_merge_of_an_unsharded_sweep_says_so(tmp_path: Path, fake) -> None:
    job(tmp_path, ["num_rows=2"])
    with pytest.raises(ConfigError, match=r"^merge.sweep: no sharded job dirs"):
        merge.merge_sweep(tmp_path)
    assert merge.merge_sweep(tmp_path, require_shards=False)["merged"] == []


def test_callback_is_last_so_later_callbacks_see_merged_runs() -> None:
    """Hydra calls on_multirun_end in reverse order: the merge must be listed last."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", return_hydra_config=True)
    callbacks = list(cfg.hydra.callbacks)
    assert callbacks[-1] == "merge_shards"
    assert cfg.hydra.callbacks.merge_shards._target_ == "synthgen.scale.merge.MergeShards"


# --- launcher configs ---------------------------------------------------------------------------

LAUNCHERS = {
    "joblib": "hydra_plugins.hydra_joblib_launcher.config:JobLibLauncherConf",
    "ray": "hydra_plugins.hydra_ray_launcher._config:RayLauncherConf",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.config:LocalQueueConf",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.config:SlurmQueueConf",
}


def test_every_launcher_config_is_here() -> None:
    files = sorted(p.stem for p in (REPO / "conf" / "hydra" / "launcher").glob("*.yaml"))
    assert files == sorted(LAUNCHERS)


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
@pytest.mark.filterwarnings("ignore:\\s*'hydra/launcher/:UserWarning")  # sweep.py
def test_launcher_config_composes_with_every_key_commented(name: str) -> None:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    path = REPO / "conf" / "hydra" / "launcher" / f"{name}.yaml"
    for line in path.read_text().splitlines():
        if re.match(r"^\s*[\w.]+:", line):
            assert "#" in line, f"{path.name}: key without a comment: {line!r}"
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose(
            "config", overrides=[f"hydra/launcher={name}"], return_hydra_config=True
        )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    module, _, cls = LAUNCHERS[name].partition(":")
    if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
        pytest.skip(f"{module} not installed (pip install -e '.[scale]')")
    fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
    assert set(launcher) == fields  # every key of the plugin, none it does not know


# --- end to end: the documented commands with the tiny model ----------------------------------

DOC = "docs/scaling.md"  # its "Scaling out" section


def readme_command(start: str) -> list[str]:
    """The arguments of the "Scaling out" command of docs/scaling.md that starts with `start`."""
    from tests.helpers.docs import section

    lines = [ln for ln in section(DOC, "Scaling out").splitlines() if ln.startswith(start)]
    assert lines, f"{DOC} 'Scaling out' has no command starting with {start!r}"
    args = shlex.split(lines[0])
    assert args[:2] == ["python", "run.py"]
    return args[2:]


def with_args(args: list[str], **values: str) -> list[str]:
    """Set key=value in a command line: replaces the key where it is, else appends."""
    out, todo = [], dict(values)
    for a in args:
        k = a.split("=", 1)[0]
        out.append(f"{k}={todo.pop(k)}" if k in todo else a)
    return out + [f"{k}={v}" for k, v in todo.items()]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return conftest_cli(*args, check=check, timeout=300, RAY_DEDUP_LOGS="0")


@pytest.fixture(scope="module")
def conf(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model options `tiny` and `tiny2` (the same weights under another path)."""
    root = tmp_path_factory.mktemp("conf")
    (root / "model").mkdir()
    tiny2 = root / "tiny2-weights"
    shutil.copytree(tiny_model, tiny2)
    base = (REPO / "conf" / "model" / "qwen25_05b.yaml").read_text()
    for name, path in (("tiny", tiny_model), ("tiny2", tiny2)):
        text = re.sub(r"(?m)^name: .*$", f"name: {name}  # test model", base)
        text = re.sub(r"(?m)^name_or_path: .*$", f"name_or_path: {path}  # tiny Llama", text)
        (root / "model" / f"{name}.yaml").write_text(text)
    return root


def small(conf: Path) -> dict[str, str]:
    """Settings that make the documented commands fast here: tiny model, few rows, greedy."""
    return {
        "hydra.searchpath": f"['file://{conf}']",
        "model": "tiny",
        "num_rows": "4",
        "generation.max_new_tokens": "16",
        "generation.batch_size": "1",  # each prompt alone: the same tokens in any shard
        "generation.do_sample": "false",
        "filters": "none",  # the random-weight model writes noise that the gates would drop
    }


def rows_of(d: Path) -> dict[str, list[dict]]:
    return {s: json.loads((d / f"{s}.json").read_text()) for s in SPLITS}


def jsonl_keys(d: Path) -> list[str]:
    """Row keys in the JSONL files of a dir (a cut last line tolerated)."""
    st = RunState.load(d, repair=False)
    return [Row(**r).key for s in SPLITS for r in st.rows[s]]


def shard_dirs(sweep: Path) -> dict[tuple[int, int], Path]:
    return {(j.count, j.index): j.path for j in sharding.job_dirs(sweep)}


@pytest.fixture(scope="module")
def two_shards(conf: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The local 2-shard command of docs/scaling.md, run once."""
    sweep = tmp_path_factory.mktemp("sweeps") / "two-shards"
    args = with_args(
        readme_command("python run.py -m hydra/launcher=joblib"),
        **{"hydra.sweep.dir": str(sweep)},
        **small(conf),
    )
    cli(*args)
    return sweep, args


@pytest.fixture(scope="module")
def one_run(conf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same dataset made by one job (in-process, shard.count=1)."""
    d = tmp_path_factory.mktemp("one") / "run"
    pipeline.run(compose([f"{k}={v}" for k, v in small(conf).items()]), d)
    return d


slow = pytest.mark.slow


@slow
def test_two_shards_make_exactly_the_rows_of_one_run(two_shards, one_run: Path) -> None:
    sweep, _ = two_shards
    shards = shard_dirs(sweep)
    assert set(shards) == {(2, 0), (2, 1)}
    assert all((d / rundir.DONE).exists() for d in shards.values())
    assert all(jsonl_keys(d) for d in shards.values()), "a shard made no rows: test is moot"
    merged = sweep / "merged"
    assert rows_of(merged) == rows_of(one_run)  # same rows, same text, same order
    keys = jsonl_keys(merged)
    assert len(keys) == len(set(keys)) == sum(len(jsonl_keys(d)) for d in shards.values())
    s = json.loads((merged / "summary.json").read_text())
    one = json.loads((one_run / "summary.json").read_text())
    assert s["status"] == "complete" and s["rows"] == one["rows"]
    assert s["splits"] == one["splits"]
    assert [(x["count"], x["index"], x["finished"]) for x in s["shards"]] == [
        (2, 0, True),
        (2, 1, True),
    ]
    assert sum(x["output_tokens"] for x in s["shards"]) == s["generation"]["output_tokens"] > 0
    assert all(x["tokens_per_second"] > 0 and x["seconds"] > 0 for x in s["shards"])
    assert s["generation"]["aggregate_tokens_per_second"] > 0
    assert s["seconds"]["generate"] > 0 and s["seconds"]["merge"] >= 0


@slow
def test_merged_dir_is_a_complete_run_dir(two_shards, one_run: Path) -> None:
    import jsonlines
    import pandas as pd
    from llama_index.finetuning import EmbeddingQAFinetuneDataset

    merged = two_shards[0] / "merged"
    expected = {p.name for p in one_run.iterdir() if p.is_file()} - {"run.log"}
    assert expected <= {p.name for p in merged.iterdir()}
    for s in SPLITS:
        with jsonlines.open(merged / f"{s}.jsonl") as r:
            assert [x["id"] for x in r] == [x["id"] for x in rows_of(merged)[s]]
        ds = EmbeddingQAFinetuneDataset.from_json(str(merged / f"{s}_dataset.json"))
        assert set(ds.queries) == {x["id"] for x in rows_of(merged)[s]}
        corpus = json.loads((merged / f"{s}_corpus.json").read_text())
        assert corpus == json.loads((one_run / f"{s}_corpus.json").read_text()) == ds.corpus
    sheets = pd.read_excel(merged / "dataset.xlsx", sheet_name=None)
    assert {s: len(sheets[s]) for s in SPLITS} == {s: len(v) for s, v in rows_of(merged).items()}
    cfg = OmegaConf.load(merged / "config.yaml")
    assert cfg.shard.count == 1 and row_config(cfg) == row_config(
        OmegaConf.load(one_run / "config.yaml")
    )


def cut_one_shard(sweep: Path) -> tuple[Path, str]:
    """Cut the last train row of the shard with most rows mid-line; remove its DONE."""
    d = max(shard_dirs(sweep).values(), key=lambda p: len(jsonl_keys(p)))
    path = d / "train.jsonl"
    raw = path.read_bytes()
    last = raw.rstrip(b"\n").rfind(b"\n") + 1
    lost = Row(**json.loads(raw[last:])).key
    path.write_bytes(raw[: last + 40])
    (d / rundir.DONE).unlink()
    return d, lost


@slow
def test_relaunch_after_a_cut_shard_regenerates_only_the_lost_row(
    two_shards, tmp_path: Path
) -> None:
    sweep, args = two_shards
    copy = tmp_path / "two-shards"
    shutil.copytree(sweep, copy)
    cut, lost = cut_one_shard(copy)
    cli(*with_args(args, **{"hydra.sweep.dir": str(copy)}))
    assert rows_of(copy / "merged") == rows_of(sweep / "merged")
    keys = jsonl_keys(cut)
    assert len(keys) == len(set(keys)) and lost in keys
    for d in shard_dirs(copy).values():
        s = json.loads((d / "summary.json").read_text())
        expect = {"question": 0, "answer": 1} if d == cut else {"question": 0, "answer": 0}
        assert s["this_session"]["prompts"] == expect  # the lost answer, and nothing else
        assert (d / rundir.DONE).exists()


@slow
def test_relaunch_with_three_shards_adds_no_duplicates(two_shards, tmp_path: Path) -> None:
    sweep, args = two_shards
    copy = tmp_path / "two-shards"
    shutil.copytree(sweep, copy)
    _, lost = cut_one_shard(copy)
    cli(
        *with_args(
            args,
            **{"hydra.sweep.dir": str(copy), "shard.index": "range(0,3)", "shard.count": "3"},
        )
    )
    dirs = shard_dirs(copy)
    assert set(dirs) == {(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)}
    every = [k for d in dirs.values() for k in jsonl_keys(d)]
    assert len(every) == len(set(every))  # no row in two job dirs
    new = [k for (c, _), d in dirs.items() if c == 3 for k in jsonl_keys(d)]
    assert new == [lost]  # the 3 new shards made only what the old ones lost
    assert rows_of(copy / "merged") == rows_of(sweep / "merged")
    s = json.loads((copy / "merged" / "summary.json").read_text())
    assert s["status"] == "complete" and s["rows_in_several_shards"] == 0
    assert len(s["shards"]) == 5


@slow
def test_merge_by_hand_refuses_unfinished_shards_in_one_line(two_shards, tmp_path: Path) -> None:
    sweep, _ = two_shards
    copy = tmp_path / "two-shards"
    shutil.copytree(sweep, copy)
    shutil.rmtree(copy / "merged")
    merge_args = with_args(
        readme_command("python run.py task=merge"),
        **{"merge.sweep": str(copy), "hydra.run.dir": str(tmp_path / "log")},
    )
    cli(*merge_args)  # everything finished: merges
    assert rows_of(copy / "merged") == rows_of(sweep / "merged")

    missing = shard_dirs(copy)[(2, 1)]
    (missing / rundir.DONE).unlink()
    p = cli(*merge_args, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("error: merge.sweep: 1 shard(s)")
    assert "shard.count=2,shard.index=1 has no DONE" in p.stderr

    shutil.rmtree(missing)
    p = cli(*merge_args, check=False)
    assert p.returncode == 2 and "shard.count=2,shard.index=1 never started" in p.stderr

    cli(*merge_args, "merge.partial=true")
    s = json.loads((copy / "merged" / "summary.json").read_text())
    assert s["status"] == "partial" and s["unfinished"] == [
        "shard.count=2,shard.index=1 never started"
    ]
    assert not (copy / "merged" / rundir.DONE).exists()
    assert sorted(jsonl_keys(copy / "merged")) == sorted(jsonl_keys(shard_dirs(copy)[(2, 0)]))


@slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="hydra-ray-launcher is not installed (pip install -e '.[scale]')",
)
def test_ray_shards_each_model_on_its_own_gpus_and_merges_per_model(
    two_shards, conf: Path, tmp_path: Path
) -> None:
    """The Ray sweep over models of docs/scaling.md, 2 shards each, on a CPU box with 2
    simulated GPUs."""
    sweep = tmp_path / "models"
    args = with_args(
        readme_command("python run.py -m hydra/launcher=ray model="),
        **{
            "shard.index": "range(0,2)",
            "shard.count": "2",
            "hydra.sweep.dir": str(sweep),
            "hydra.launcher.ray.init.num_gpus": "2",  # Ray believes there are 2 GPUs
            "hydra.launcher.ray.remote.max_calls": "0",  # reuse workers: no GPU memory to free here
        },
        **{**small(conf), "model": "tiny,tiny2"},
    )
    cli(*args)
    devices = [
        json.loads((d / "summary.json").read_text())["host"]["cuda_visible_devices"]
        for d in (j.path for j in sharding.job_dirs(sweep))
    ]
    assert len(devices) == 4 and set(devices) == {"0", "1"}  # one GPU per job, both used

    runs = sorted(p.parent for p in sweep.rglob("merged/summary.json"))
    assert [p.relative_to(sweep).as_posix() for p in runs] == [
        "model=tiny/merged",
        "model=tiny2/merged",
    ]
    assert rows_of(runs[0]) == rows_of(two_shards[0] / "merged")  # the same dataset again
    tiny2 = rows_of(runs[1])
    assert all(r["model"].endswith("tiny2-weights") for s in SPLITS for r in tiny2[s])
    assert [(r["chunk_id"], r["q_index"]) for r in tiny2["train"]] == [
        (r["chunk_id"], r["q_index"]) for r in rows_of(runs[0])["train"]
    ]


@pytest.mark.slow
def test_a_failed_shard_fails_the_sweep(tmp_path: Path) -> None:
    p = cli(
        "-m",
        "model._target_=tests.helpers.fake_backend.Backend",
        "num_rows=4",
        "shard.index=0,1,7",
        "shard.count=3",
        "compare.embedder=null",
        f"hydra.sweep.dir={tmp_path}",
        check=False,
    )
    assert p.returncode == 1, p.stderr[-2000:]
    assert "error: 1 of 3 runs failed" in p.stderr and "shard.index=7" in p.stderr


def test_a_refused_relaunch_keeps_a_finished_run_finished(tmp_path: Path) -> None:
    from synthgen.errors import ConfigError
    from synthgen.scale import sweep

    (tmp_path / "summary.json").write_text(json.dumps({"status": "complete", "rows": {"train": 3}}))
    tasks.record_failure(compose(), ConfigError("resume: made with another config"), tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["status"] == "complete" and s["rows"] == {"train": 3}
    assert s["last_attempt_error"] == "resume: made with another config"
    assert sweep.run_status(tmp_path) == "failed"  # the sweep still exits 1
    tasks.record_failure(compose(), RuntimeError("crash mid-run"), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"

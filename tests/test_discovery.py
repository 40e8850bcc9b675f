"""synthgen.rundir.discovery: what a run dir is and how runs are named by what varies."""

from __future__ import annotations

from pathlib import Path

from synthgen.rundir import CONFIG, SUMMARY, discovery


def test_varying_keeps_what_not_every_item_has() -> None:
    items = [["model=a", "n=4", "prompt=x"], ["model=a", "n=4", "prompt=y"], ["n=4", "prompt=x"]]
    assert discovery.varying(items) == [
        ["model=a", "prompt=x"],
        ["model=a", "prompt=y"],
        ["prompt=x"],
    ]
    assert discovery.varying([["model=a"]]) == [[]]  # one item alone: nothing varies
    assert discovery.varying([]) == []


def test_group_names_of_a_sweep() -> None:
    one = ("num_rows=4", "prompt=x")
    assert discovery.group_names([one]) == {one: ""}
    a, b = ("model=org/a", "num_rows=4"), ("model=org/b", "num_rows=4")
    assert discovery.group_names([a, b]) == {a: "model=org_a", b: "model=org_b"}


def test_labels_are_the_overrides_that_vary(tmp_path: Path) -> None:
    s = tmp_path / "s"
    assert discovery.labels([s / "m=a,p=x", s / "m=a,p=y"]) == ["p=x", "p=y"]
    assert discovery.labels([tmp_path / "s1" / "r", tmp_path / "s2" / "r"]) == ["s1/r", "s2/r"]
    assert discovery.labels([s / "only"]) == ["only"]


def test_job_dirname_names_by_the_swept_keys() -> None:
    overrides = ["prompt=critic", "model.name_or_path=/m", "num_rows=4", "shard.index=1"]
    assert discovery.job_dirname(overrides, swept={"prompt"}) == "prompt=critic,shard.index=1"
    every = discovery.job_dirname(overrides, exclude=["num_rows"])
    assert every == "model.name_or_path=_m,prompt=critic,shard.index=1"
    assert discovery.job_dirname([]) == "default"


def test_a_run_dir_holds_summary_and_config(tmp_path: Path) -> None:
    assert not discovery.is_run_dir(tmp_path)
    (tmp_path / SUMMARY).write_text("{}")
    (tmp_path / CONFIG).write_text("{}")
    assert discovery.is_run_dir(tmp_path)
    assert discovery.find_runs([tmp_path]) == [tmp_path]

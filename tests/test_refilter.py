"""task=filter: a finished run dir re-gated into a new run dir, the source untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from synthgen.errors import ConfigError
from synthgen.gates import filters
from synthgen.generate import pipeline
from synthgen.records import Row
from tests.conftest import FAKE_BACKEND, cli, compose
from tests.helpers.fake_backend import scripted

SPLITS = ("train", "val")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


def digests(d: Path) -> dict[str, str]:
    return {
        p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the fake backend with no gates: its echoes and refusals are rows."""
    d = tmp_path_factory.mktemp("src") / "run"
    with scripted(questions="gated", answers="refusals"):
        pipeline.run(compose([FAKE_BACKEND, "num_rows=30", "filters=none"]), d)
    return d


def accepted(src: Path, *overrides: str) -> dict[str, list[str]]:
    """Row ids the gates accept, applied here directly to the source rows (dataset order)."""
    from omegaconf import OmegaConf

    cfg = compose(list(overrides))
    g = filters.Gates(cfg, OmegaConf.load(src / "config.yaml").prompt)
    out: dict[str, list[str]] = {}
    for s in SPLITS:
        out[s] = []
        for r in json.loads((src / f"{s}.json").read_text()):
            if g.question(r["question"], r["doc"]) or g.answer(
                r["answer"], r["doc"], r["question"], s, r["chunk_id"]
            ):
                continue
            g.accept(r["answer"], s, r["chunk_id"])
            out[s].append(r["id"])
    return out


def test_filter_keeps_exactly_what_the_gates_accept(source: Path, tmp_path: Path) -> None:
    before = digests(source)
    out = tmp_path / "filtered"
    s = pipeline.run(compose(["task=filter", f"filter.data={source}"]), out)
    assert digests(source) == before  # the source is only read
    want = accepted(source)
    for sp in SPLITS:
        assert [r["id"] for r in jsonl(out / f"{sp}.jsonl")] == want[sp]
        assert [r["id"] for r in json.loads((out / f"{sp}.json").read_text())] == want[sp]
        assert list(json.loads((out / f"{sp}_queries.json").read_text())) == want[sp]
        # every chunk of the split stays in the corpus files: retrieval is scored against all
        assert (out / f"{sp}_corpus.json").read_bytes() == (
            source / f"{sp}_corpus.json"
        ).read_bytes()
    n_src = sum(len(json.loads((source / f"{sp}.json").read_text())) for sp in SPLITS)
    assert 0 < sum(len(v) for v in want.values()) < n_src
    # the dropped rows, plus the source's own rejects, each with stage, reason, score, threshold
    rej = jsonl(out / "rejected.jsonl")
    src_rej = jsonl(source / "rejected.jsonl")
    assert rej[: len(src_rej)] == src_rej
    new = rej[len(src_rej) :]
    assert len(new) == n_src - sum(len(v) for v in want.values())
    assert all(r["filters"] == "default" and r["task"] == "filter" for r in new)
    assert {r["reason"] for r in new} >= {"prompt_echo", "meta_reference", "refusal"}
    assert all({"stage", "reason", "score", "threshold", "key"} <= set(r) for r in new)
    kept_keys = {Row(**r).key for sp in SPLITS for r in jsonl(out / f"{sp}.jsonl")}
    assert kept_keys.isdisjoint(r["key"] for r in rej)
    # summary: counts that add up, the gates' counts, where it came from; config names the gates
    for sp in SPLITS:
        c = s["splits"][sp]
        assert c["slots"] == c["rows"] + sum(c["rejected_questions"].values()) + sum(
            c["rejected_answers"].values()
        )
    assert s["filters"]["name"] == "default" and s["filters"]["this_pass"] == filters.counts(new)
    assert s["filtered_from"]["run_dir"] == str(source)
    assert json.loads((out / "summary.json").read_text())["rows"] == {
        sp: len(want[sp]) for sp in SPLITS
    }
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg.filters.name == "default" and cfg.task == "filter"
    assert cfg.prompt == OmegaConf.load(source / "config.yaml").prompt
    assert all((out / f).exists() for f in s["files"]) and (out / "DONE").exists()
    # the same gates again change nothing
    again = pipeline.run(compose(["task=filter", f"filter.data={out}"]), tmp_path / "again")
    assert again["rows"] == s["rows"] and again["filters"]["this_pass"] == {}


@pytest.mark.slow
def test_filter_task_from_the_command_line(source: Path, tmp_path: Path) -> None:
    """The command of docs/quality.md (filters=strict), and a wrong path as one line."""
    from tests.test_filters import quality_gates_commands

    before = digests(source)
    out = tmp_path / "strict"
    (args,) = [a for a in quality_gates_commands() if a[:1] == ["task=filter"]]
    values = {"filter.data": str(source), "hydra.run.dir": str(out)}
    args = [
        f"{a.split('=')[0]}={values[a.split('=')[0]]}" if a.split("=")[0] in values else a
        for a in args
    ]
    assert "filters=strict" in args
    p = cli(*args)
    assert "filters=strict: kept" in p.stdout
    assert digests(source) == before
    want = accepted(source, "filters=strict")
    for sp in SPLITS:
        assert [r["id"] for r in jsonl(out / f"{sp}.jsonl")] == want[sp]
    import pandas as pd

    sheet = pd.read_excel(out / "dataset.xlsx", sheet_name=None)
    assert [len(sheet[sp]) for sp in SPLITS] == [len(want[sp]) for sp in SPLITS]
    assert (out / ".hydra" / "overrides.yaml").exists()  # Hydra's record of the command

    p = cli(
        "task=filter",
        f"filter.data={tmp_path / 'nope'}",
        f"hydra.run.dir={tmp_path / 'x'}",
        check=False,
    )
    assert p.returncode == 2 and p.stderr.startswith("error: filter.data: run dir"), p.stderr
    assert digests(source) == before


def test_filter_needs_a_finished_run_dir_and_another_out_dir(source: Path, tmp_path: Path) -> None:
    before = digests(source)
    with pytest.raises(ConfigError, match=r"^filter.data: required"):
        pipeline.run(compose(["task=filter"]), tmp_path / "o")
    with pytest.raises(ConfigError, match=r"^hydra.run.dir: must differ from filter.data"):
        pipeline.run(compose(["task=filter", f"filter.data={source}"]), source)
    assert digests(source) == before
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((source / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=r"^filter.data: .* is not a finished run dir"):
        pipeline.run(compose(["task=filter", f"filter.data={unfinished}"]), tmp_path / "o")

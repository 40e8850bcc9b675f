"""Row identity (synthgen/rundir/identity.py): only the allow-listed keys decide whether a run
dir may be resumed; an informational key may change or appear without blocking it."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from synthgen import rundir
from synthgen.errors import ConfigError
from synthgen.rundir.identity import ROW_KEYS, row_config
from synthgen.rundir.state import RunState, check_resume
from synthgen.schema import Generation
from synthgen.schema.fields import walk
from tests.conftest import REPO, compose

# the keys of the row groups that do not decide the rows (rundir/identity.py says why)
NOT_ROW = {
    "corpus": {"prepared"},
    "model": {
        "_target_",
        "hub_id",
        "unsloth_4bit_id",
        "base_url",
        "api_key_env",
        "price_per_1m_input",
        "price_per_1m_output",
        "concurrency",  # the endpoint's requests: how they go out, not what they ask
        "max_retries",
        "request_timeout",
        "retry_backoff",
    },
    "generation": {"batch_size"},  # how fast the rows come, not what they are (engine: its group)
}


def _run_dir(tmp_path: Path, overrides: list[str]) -> tuple[Path, RunState]:
    """A run dir made with `overrides` that holds one row."""
    rundir.save_config(tmp_path, compose(["resume=true", *overrides]))
    state = RunState()
    state.rows["train"].append({"key": "k1"})
    return tmp_path, state


def test_an_informational_key_does_not_block_resume(tmp_path: Path) -> None:
    d, state = _run_dir(tmp_path, ["model=llama31_8b"])
    moved = ["resume=true", "model=llama31_8b", "model.hub_id=someone/else"]
    check_resume(compose(moved), d, state)
    # a key the saved config never had, added to the model group: still the same rows
    cfg = compose(["resume=true", "model=llama31_8b"])
    with open_dict(cfg):
        cfg.model.homepage = "https://example.org"  # a new informational key
    check_resume(cfg, d, state)


def test_a_row_deciding_key_blocks_resume(tmp_path: Path) -> None:
    d, state = _run_dir(tmp_path, ["model=llama31_8b"])
    cfg = compose(["resume=true", "model=llama31_8b", "model.system_role=false"])
    with pytest.raises(ConfigError, match=r"^resume: .* another config \(model.system_role:"):
        check_resume(cfg, d, state)


def test_an_old_run_dir_resumes(tmp_path: Path) -> None:
    """A config saved before the signal gates existed resumes with today's defaults, which
    leave them off (rundir/upgrade.py UPGRADES); so does one whose prompt file left out keys
    at their defaults."""
    d, state = _run_dir(tmp_path, [])
    old = OmegaConf.load(d / rundir.CONFIG)
    for gate in ("embed_signals", "round_trip", "logprob", "easiness"):
        del old.filters[gate]
    for k in ("reply", "system", "require_question_mark"):  # a prompt file without them
        del old.prompt[k]
    rundir.save_config(d, old)
    check_resume(compose(["resume=true"]), d, state)
    assert row_config(rundir.load_config(d)) == row_config(compose(["resume=true"]))


def _options(group: str) -> list[str]:
    return [p.stem for p in sorted((REPO / "conf" / group).glob("*.yaml"))]


@pytest.mark.parametrize("group", [g for g in ROW_KEYS if g != "generation"])
def test_every_key_of_a_row_group_is_placed(group: str) -> None:
    """A key added to a row group is named in ROW_KEYS (it decides the rows) or here in
    NOT_ROW (it does not): a new key must be placed on purpose."""
    for option in _options(group):
        keys = set(compose([f"{group}={option}"])[group])
        unplaced = keys - set(ROW_KEYS[group]) - NOT_ROW.get(group, set())
        assert not unplaced, f"{group}={option}: {sorted(unplaced)}"
    gen = {k for k, _, _ in walk(Generation)}
    assert gen - set(ROW_KEYS["generation"]) - NOT_ROW["generation"] == set(), gen

"""README.md and docs/*.md against the repository: the configuration page names every option
and key of conf/, so a new option cannot stay undocumented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.docs import REPO, section

CONF = REPO / "conf"


def groups() -> list[Path]:
    """Every config group folder of conf/ (hydra/launcher and hydra/help included)."""
    out = [d for d in sorted(CONF.iterdir()) if d.is_dir() and d.name != "hydra"]
    return out + [d for d in sorted((CONF / "hydra").iterdir()) if d.is_dir()]


def table() -> dict[str, tuple[str, str]]:
    """The "Config groups" table of docs/configuration.md: group -> (options cell, keys cell)."""
    text = section("docs/configuration.md", "Config groups")
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.strip().strip("|").split(" | ")
        for group in re.findall(r"`([\w/]+)`", cells[0]):
            rows[group] = (cells[1], cells[2])
    return rows


def keys_of(group: Path) -> set[str]:
    """The top-level keys of a group's option files (Hydra's `defaults` and `_target_` aside)."""
    out: set[str] = set()
    for f in group.glob("*.yaml"):
        out |= {k for k in (yaml.safe_load(f.read_text(encoding="utf-8")) or {})}
    return {k for k in out if k != "defaults" and not k.startswith("_")}


@pytest.mark.parametrize("group", groups(), ids=lambda g: g.relative_to(CONF).as_posix())
def test_the_configuration_table_names_every_option_and_key(group: Path) -> None:
    name = group.relative_to(CONF).as_posix()
    rows = table()
    assert name in rows, f"docs/configuration.md has no row for the group {name}"
    options, keys = rows[name]
    for f in sorted(group.glob("*.yaml")):
        assert f"`{f.stem}`" in options, f"{name}: option {f.stem} ({f}) is not in the table"
    if name.startswith("hydra/"):
        return  # a launcher's keys are the plugin's, commented in its file
    for key in sorted(keys_of(group)):
        assert f"`{key}`" in keys, f"{name}: key {key} is not in the table"


def test_the_configuration_page_names_every_top_level_key() -> None:
    """Every key of conf/config.yaml, as `key`, `a.b` or inside `a.{b, c}`."""
    cfg = yaml.safe_load((CONF / "config.yaml").read_text(encoding="utf-8"))
    want = set()
    for k, v in cfg.items():
        if k in ("defaults", "hydra"):
            continue
        want |= {f"{k}.{sub}" for sub in v} if isinstance(v, dict) else {k}
    text = section("docs/configuration.md", "Top-level keys")
    named = set(re.findall(r"`([\w.]+)`", text))
    for prefix, inner in re.findall(r"`(\w+)\.\{([^}]*)\}`", text, re.DOTALL):
        named |= {f"{prefix}.{x.strip()}" for x in inner.split(",")}
    assert sorted(want - named) == []

"""README.md and docs/*.md against the repository: the configuration page names every option
and key of conf/, so a new option cannot stay undocumented; the README stays a front page of at
most 250 lines that links every docs/ page; every link, repo path and module the pages name
exists; and every command sits where tests/test_readme.py finds it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.helpers.docs import README, REPO, headings, name, pages, section

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
    """The top-level keys of a group's option files (Hydra's `defaults` and `_target_` aside),
    and of its schema (synthgen/schema), where it has one: the keys its options leave out."""
    from synthgen import schema

    out: set[str] = set()
    for f in group.glob("*.yaml"):
        out |= {k for k in (yaml.safe_load(f.read_text(encoding="utf-8")) or {})}
    if group.name in schema.GROUPS:
        out |= {k.split(".")[1] for k, _, _ in schema.every_key() if k.startswith(group.name + ".")}
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
    """Every key of conf/config.yaml and of the top level's schema (synthgen/schema/run.py), as
    `key`, `a.b` or inside `a.{b, c}`."""
    from synthgen.schema import Run
    from synthgen.schema.fields import walk

    cfg = yaml.safe_load((CONF / "config.yaml").read_text(encoding="utf-8"))
    want = {k for k, _, _ in walk(Run)}
    for k, v in cfg.items():
        if k in ("defaults", "hydra"):
            continue
        want |= {f"{k}.{sub}" for sub in v} if isinstance(v, dict) else {k}
    text = section("docs/configuration.md", "Top-level keys")
    named = set(re.findall(r"`([\w.]+)`", text))
    for prefix, inner in re.findall(r"`(\w+)\.\{([^}]*)\}`", text, re.DOTALL):
        named |= {f"{prefix}.{x.strip()}" for x in inner.split(",")}
    assert sorted(want - named) == []


# --- the README is a front page; every page is reachable and points at what exists -----------

TOP = ("synthgen", "conf", "tests", "benchmarks", "data", "docs", "scripts", ".ci")
# a path of the repository named in the text: it starts with one of the folders above
REPO_PATH = re.compile(r"(?<![\w/.~:-])((?:" + "|".join(map(re.escape, TOP)) + r")/[\w./<>*-]*)")
# files the pages ask the reader to create
EXAMPLES = {"conf/corpus/mydocs.yaml", "conf/prompt/myprompt.yaml", "conf/model/mymodel.yaml"}


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, backticks and punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_the_readme_is_at_most_250_lines() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 250, f"README.md has {n} lines: move the detail into a docs/ page"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[^)]*)?\)", text))
    assert sorted(name(p) for p in pages()[1:]) == sorted(linked)


@pytest.mark.parametrize("page", pages(), ids=name)
def test_every_relative_link_and_anchor_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{name(page)}: link {target} goes nowhere"
        if anchor and dest.suffix == ".md":
            titles = {slug(t) for _, _, t in headings(dest.read_text(encoding="utf-8"))}
            assert anchor in titles, f"{name(page)}: link {target}: no such heading"


@pytest.mark.parametrize("page", pages(), ids=name)
def test_every_repo_path_and_module_named_exists(page: Path) -> None:
    """`synthgen/corpus/dedup.py`, `benchmarks/data/<name>/`, `conf/model/*.yaml`: a file or
    folder of this repository (placeholders match at least one); `synthgen.x.y`: importable."""
    import importlib

    text = page.read_text(encoding="utf-8")
    for path in {m.rstrip(".,;:") for m in REPO_PATH.findall(text)} - EXAMPLES:
        pattern = re.sub(r"<[^>]+>", "*", path).rstrip("/")
        assert list(REPO.glob(pattern)), f"{name(page)}: {path} does not exist"
    for path in re.findall(r"`(\.\./[^`\s]+)`", text):  # relative to the page, inside the repo
        dest = (page.parent / path).resolve()
        assert dest.is_relative_to(REPO) and dest.exists(), f"{name(page)}: {path} is not here"
    for dotted in set(re.findall(r"\bsynthgen(?:\.\w+)+", text)):
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                assert hasattr(obj, attr), f"{name(page)}: {dotted}: no {attr}"
                obj = getattr(obj, attr)
            break


@pytest.mark.parametrize("page", pages(), ids=name)
def test_every_run_py_command_is_in_a_bash_block(page: Path) -> None:
    """tests/test_readme.py finds commands in ```bash blocks only: one in another block would
    go untested."""
    text = page.read_text(encoding="utf-8")
    for info, body in re.findall(r"^```(\w*)\n(.*?)^```$", text, re.DOTALL | re.MULTILINE):
        if info != "bash":
            lines = [ln for ln in body.splitlines() if ln.strip().startswith("python run.py")]
            assert not lines, f"{name(page)}: a ```{info} block holds {lines[0]!r}"

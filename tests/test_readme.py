"""The README's commands are the ones CI runs: a fresh machine needs nothing else, and every
`python run.py ...` command that README.md or a docs/ page shows composes and passes the checks
a run makes.

The rule (docs/development.md): every command in a ```bash block of README.md and of every
docs/*.md page is composed (each job of a
-m sweep: every value of a choice, the first and last of a range) and checked the way a run
checks it before anything loads, less the checks that need the GPU machine (CUDA,
bitsandbytes, unsloth: a dry run's checks). A command is also run, small, in a temporary
working dir, unless
- it needs a GPU or the hub: any `model=` but the default, `task=finetune|evaluate` (the
  README's name a BGE embedder from the hub), `hydra/launcher=ray|submitit_slurm`;
- it needs a file of the reader's: an input path in it does not exist here (`/data/docs`,
  `/path/to/run`); the one check error allowed is the one naming that path;
- another test runs it (RUN_ELSEWHERE): the quick start's `python run.py` (tests/test_gemma.py,
  with the real default model), the Scaling out commands of docs/scaling.md
  (tests/test_scale.py, tests/test_prepare.py), the commands of docs/corpus.md's data sections
  (tests/test_readme_data.py reads the corpus with each).
A command shown on several pages is run once.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO, cli
from tests.helpers.docs import README, bash_blocks, headings, name, pages, run_py_lines

DEFAULT_MODEL = "gemma3_270m"
INPUT_KEYS = (".dir", ".data", ".sweep", ".runs", ".tuned", "name_or_path")  # key endings
# (page, "## " section, command or None = every command of the section): the test that runs it
RUN_ELSEWHERE = {
    ("README.md", "Quick start", "python run.py"): "tests/test_gemma.py",
    ("docs/scaling.md", "Scaling out", None): "tests/test_scale.py",
    **{
        ("docs/corpus.md", title, None): "tests/test_readme_data.py"  # up to the corpus
        for title in (
            "Text files and their encoding",
            "Cleaning PDF text",
            "Duplicates and the train/val leak check",
        )
    },
}
# filters=none: the tiny model's random-weight text is what the quality gates drop
SMALL = {
    "num_rows": "2",
    "generation.max_new_tokens": "8",
    "compare.embedder": "null",
    "filters": "none",
}


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return bash_blocks(quick)


@dataclass
class Command:
    page: str  # README.md or docs/NAME.md
    section: str  # the page's "## " heading above it
    line: str  # from "python run.py" on, continuations joined
    args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.args = shlex.split(self.line, comments=True)[2:]

    @property
    def multirun(self) -> bool:
        return "-m" in self.args or "--multirun" in self.args

    @property
    def overrides(self) -> list[str]:
        return [a for a in self.args if a not in ("-m", "--multirun")]

    def values(self) -> dict[str, str]:
        return dict(a.split("=", 1) for a in self.overrides if "=" in a)

    def jobs(self) -> list[list[str]]:
        """The override lists of its jobs (one without -m)."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        choices = []
        for o in OverridesParser.create().parse_overrides(self.overrides):
            if self.multirun and o.is_sweep_override():
                vals = [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
                choices.append(vals if len(vals) <= 2 else [vals[0], vals[-1]])
            else:
                choices.append([o.input_line])
        return [list(c) for c in itertools.product(*choices)]

    def needs_gpu_or_hub(self) -> bool:
        v = self.values()
        models = v.get("model", DEFAULT_MODEL).split(",")
        return (
            any(m != DEFAULT_MODEL for m in models)
            or v.get("task") in ("finetune", "evaluate")
            or v.get("hydra/launcher") in ("ray", "submitit_slurm")
            or int(v.get("export.hard_negatives", 0)) > 0
        )

    def input_paths(self) -> list[str]:
        out = []
        for k, v in self.values().items():
            if k.startswith("hydra") or not k.endswith(INPUT_KEYS) or v == "null":
                continue
            parts = v.strip("[]").split(",") if v.startswith("[") else [v]
            out += [p.strip().strip("'\"") for p in parts if p.strip()]
        return out

    def missing_paths(self, cwd: Path) -> list[str]:
        # a hub id (org/name) for name_or_path is not a path of the reader's
        return [
            p
            for p in self.input_paths()
            if not (cwd / p).exists()
            and not re.fullmatch(r"[\w.-]+/[\w.-]+", p.strip("/"))
            or p.startswith("/")
            and not Path(p).exists()
        ]

    def run_elsewhere(self) -> str | None:
        return RUN_ELSEWHERE.get((self.page, self.section, self.line)) or RUN_ELSEWHERE.get(
            (self.page, self.section, None)
        )


def all_commands() -> list[Command]:
    """Every `python run.py ...` in the bash blocks of README.md and of the docs/ pages, in
    page order (README first), each page top to bottom."""
    out: list[Command] = []
    for p in pages():
        text = p.read_text(encoding="utf-8")
        lines = text.splitlines()
        # the text above the first "## " heading, then each "## " section (its "###" within)
        cuts = [(0, "")] + [(i, title) for i, level, title in headings(text) if level == 2]
        for (start, title), (end, _) in zip(cuts, [*cuts[1:], (len(lines), "")], strict=True):
            for line in run_py_lines("\n".join(lines[start:end])):
                out.append(Command(name(p), title, line))
    return out


def compose_job(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def check_job(cfg) -> None:
    """The checks of the job's task before anything loads (GPU-machine checks left out)."""
    from synthgen import config
    from synthgen.embed import export, finetune

    task = cfg.get("task", "generate")
    if task == "generate":
        as_dry = OmegaConf.merge(cfg, {"dry_run": True})  # CUDA/unsloth: the GPU machine's
        config.check(as_dry)
    elif task == "finetune":
        finetune.check(cfg)
    elif task == "export":
        export.check(cfg)


# --- the quick start ---------------------------------------------------------------------


def test_readme_has_a_main_command_and_a_test_command() -> None:
    main, tests = readme_commands()[:2]
    assert main.endswith("python run.py") and "pip install -e ." in main
    assert tests.endswith("python -m pytest") and '".[test]"' in tests
    assert main.startswith("python -m venv") and tests.startswith("python -m venv")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def test_the_readme_test_command_runs_every_test() -> None:
    """No marker is left out by default (the endpoint tests marked `server` included), and CI
    runs pytest once, the README's way."""
    import tomllib

    opts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    addopts = shlex.split(opts["tool"]["pytest"]["ini_options"].get("addopts", ""))
    assert not any(a == "-m" or a.startswith("-m") for a in addopts), addopts
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert [x for x in ci.splitlines() if "pytest" in x] == [readme_commands()[1]]


def test_readme_says_how_to_get_a_cpu_only_torch() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in quick


# --- every command composes and checks -----------------------------------------------------


def test_the_parser_finds_the_commands() -> None:
    cmds = all_commands()
    lines = [c.line for c in cmds]
    assert "python run.py" in lines and "python run.py dry_run=true" in lines
    assert any(c.multirun for c in cmds)
    long = next(c for c in cmds if c.line.startswith("python run.py corpus.dir=/data/docs"))
    assert "hydra.run.dir=/tmp/run1" in long.args  # the continuation lines were joined
    ray = next(c for c in cmds if "hydra/launcher=ray" in c.line and "range(0,8)" in c.line)
    assert [j[1] for j in ray.jobs()] == ["shard.index=0", "shard.index=7"]


@pytest.mark.parametrize(
    "cmd", all_commands(), ids=lambda c: f"{c.page}:{c.line[14:70] or 'python run.py'}"
)
def test_every_readme_command_composes_and_checks(cmd: Command) -> None:
    from synthgen.errors import ConfigError
    from synthgen.tasks import TASKS

    missing = cmd.missing_paths(REPO)
    for job in cmd.jobs():
        cfg = compose_job(job)
        assert cfg.get("task", "generate") in TASKS
        try:
            check_job(cfg)
        except ConfigError as e:  # only a path of the reader's may be missing here
            assert any(p in str(e) for p in missing), f"{cmd.line}: {e}"


# --- and those that need no GPU, no hub and no file of yours are run ----------------------


def test_readme_commands_run(tiny_model: Path, gemma: Path, tmp_path: Path) -> None:
    """In page order (README first), in one working dir (outputs/movies of one command is a
    later one's data), with the sample corpus linked in as data/; a command shown on two pages
    runs once."""
    (tmp_path / "data").symlink_to(REPO / "data")
    ran = []
    for cmd in all_commands():
        if cmd.needs_gpu_or_hub() or cmd.run_elsewhere() or cmd.missing_paths(tmp_path):
            continue
        if cmd.line in ran:
            continue
        args = list(cmd.args)
        if cmd.values().get("task", "generate") == "generate" and "dry_run=true" not in args:
            # small: the tiny model under the default model's config, 2 rows, 8 tokens
            small = {**SMALL, "model.name_or_path": str(tiny_model)}
            args = [a for a in args if a.split("=", 1)[0] not in small]
            args += [f"{k}={v}" for k, v in small.items()]
        p = cli(*args, cwd=tmp_path, check=False, OMP_NUM_THREADS="1")  # see test_gemma.py
        assert p.returncode == 0, f"{cmd.line}\n{p.stderr[-3000:]}"
        ran.append(cmd.line)
    assert "python run.py dry_run=true" in ran  # as it is: the default model's tokenizer
    assert any(line.startswith("python run.py -m prompt=notebook,critic") for line in ran)
    assert any(line.startswith("python run.py task=export") for line in ran)
    assert (tmp_path / "outputs" / "movies" / "DONE").exists()
    exported = [
        d for d in (tmp_path / "outputs").iterdir() if (d / "flag" / "train.jsonl").exists()
    ]
    assert len(exported) == 1  # task=export's own run dir

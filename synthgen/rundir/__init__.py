"""The run-dir contract: every file name a run dir holds, spelled once.

Every task writes into one run dir and later tasks (resume, merge, compare, finetune) read
it back, so the names below are the interface between them. No other module of synthgen
spells a run-dir file name; it imports it from here.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from synthgen.rundir.upgrade import upgrade_config, upgrade_keys  # noqa: F401 (old configs)

SPLITS = ("train", "val")  # dataset splits, in the order they are generated and written

CONFIG = "config.yaml"  # the fully resolved config of the run
SUMMARY = "summary.json"  # counts, seconds, tokens and versions of the run
DONE = "DONE"  # written last: the run finished (a dir without it is running or stopped)
LOCK = ".lock"  # held while a process writes the dir (synthgen.rundir.runlock)
HYDRA = ".hydra"  # Hydra's own record of the command (config.yaml, overrides.yaml)
OVERRIDES = "overrides.yaml"  # in HYDRA: the command-line overrides of the run
QUESTIONS = "questions.jsonl"  # accepted questions, written before their answers run
REJECTED = "rejected.jsonl"  # every rejected generation with stage and reason
EXCEL = "dataset.xlsx"  # sheets train and val
TMP = ".tmp"  # suffix of a file being written (renamed into place when whole)
HYDRA_SETTINGS = "hydra.yaml"  # in HYDRA: Hydra's own settings for the run
PREPARED = "prepared.json"  # task=prepare: fingerprint and config keys of a prepared corpus
JUDGED = "judged.jsonl"  # the judge stage's verdicts, one line per row judged (gates/judge.py)


def rows_file(split: str) -> str:
    """`<split>.jsonl`: the rows of a split, appended as batches finish (completion order)."""
    return f"{split}.jsonl"


def corpus_file(split: str) -> str:
    """`<split>_corpus.json`: every chunk of a split, {chunk_id: text}, in chunk order."""
    return f"{split}_corpus.json"


def dataset_file(split: str, part: str = "") -> str:
    """The end-of-run JSON files of a split, rebuilt from the JSONL: `<split>.json` (the rows in
    dataset order), part "queries", "relevant_docs" (the retrieval pairs) or "dataset"
    (LlamaIndex's EmbeddingQAFinetuneDataset)."""
    return f"{split}_{part}.json" if part else f"{split}.json"


def prepared_file(split: str) -> str:
    """`<split>_prepared.json`: task=prepare's chunks of a split, their dedup and selection."""
    return f"{split}_prepared.json"


# appended as the run goes; with CONFIG and SUMMARY every run dir holds these
JSONL_FILES = (*(rows_file(s) for s in SPLITS), REJECTED, QUESTIONS)
RUN_FILES = (SUMMARY, CONFIG)  # a folder holding both is a run dir


# --- time and versions ----------------------------------------------------------------------


def now() -> str:
    """Local time with its UTC offset, to the second (ISO 8601): started/finished stamps."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


VERSIONED = ("torch", "transformers", "llama-index-core", "hydra-core", "unsloth")


def versions(*extra: str) -> dict[str, str | None]:
    """Python, synthgen, the packages that shape the output (plus `extra`), and the git commit."""
    import synthgen

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "synthgen": synthgen.__version__,
    }
    for pkg in (*VERSIONED, *extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        repo = Path(synthgen.__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        out["git_commit"] = commit or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


# --- atomic writes: a reader (a sibling shard, compare) never sees half a file ----------------


def write_json(path: Path, obj: Any) -> None:
    """Write to a temp file and rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + TMP)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)


def save_config(run_dir: Path, cfg: Any, resolve: bool = True) -> Path:
    """The run's config as CONFIG, through a temp file and a rename. `resolve=False` keeps
    ${...} as written (a config whose interpolation cannot resolve: a failure record)."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / CONFIG
    tmp = path.with_suffix(path.suffix + TMP)
    OmegaConf.save(cfg, tmp, resolve=resolve)
    os.replace(tmp, path)
    return path


def load_config(run_dir: Path) -> Any:
    """The DictConfig a run dir was made with, brought up to date for keys added since
    (rundir.upgrade.upgrade_config; raises OSError when there is none)."""
    from omegaconf import OmegaConf

    return upgrade_config(OmegaConf.load(Path(run_dir) / CONFIG))


def has_config(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG).is_file()


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / SUMMARY
    write_json(path, summary)
    return path


_RAISE: Any = object()


def read_summary(run_dir: Path, default: Any = _RAISE) -> dict[str, Any]:
    """The run's SUMMARY. A missing or broken file raises (OSError, ValueError), or returns
    `default` when one is given."""
    try:
        return json.loads((Path(run_dir) / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if default is _RAISE:
            raise
        return default


def write_done(run_dir: Path, finished: str) -> None:
    """DONE, written last: every other file of the run is complete."""
    write_json(Path(run_dir) / DONE, {"finished": finished})


def clear_done(run_dir: Path) -> None:
    """A run that starts writing again is not done until it finishes."""
    (Path(run_dir) / DONE).unlink(missing_ok=True)


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).is_file()


def remove_partial(run_dir: Path) -> None:
    """Temp files half-written by a process that was killed (the caller holds the lock)."""
    for tmp in Path(run_dir).glob(f"*{TMP}*"):
        tmp.unlink()


# --- what a folder is -------------------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """A folder holding both a summary and a config: a run (finished, failed or running)."""
    return all((Path(path) / name).is_file() for name in RUN_FILES)


def is_shard(run_dir: Path) -> bool:
    """A job dir that holds one shard of a dataset: a part of a run, not a run.

    Tools that collect runs (a comparison) skip these and take the merged dir instead.
    """
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    try:
        return int(load_config(run_dir).shard.count) > 1
    except (OSError, YAMLError, OmegaConfBaseException, TypeError, ValueError, AttributeError):
        return False

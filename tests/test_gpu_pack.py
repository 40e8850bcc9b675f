"""benchmarks/gpu/: what the GPU session runs, checked on a CPU where it can be. The pydoc
corpus's cutting, and e2e_raw.py's plain-script replay of a run dir through a stand-in for vLLM
(the pipeline's own RowMaker makes the jobs, the stand-in writes the replies)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import REPO, compose

sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))


def test_pydoc_text_is_cut_into_chunk_sized_files() -> None:
    import pydoc_corpus

    text = "\n\n".join(f"paragraph {i} " + "word " * (20 + 7 * (i % 9)) for i in range(200))
    got = pydoc_corpus.pieces(text)
    assert got and all(1050 <= len(p.strip()) < 1600 for p in got)
    assert sum(map(len, got)) > 0.8 * len(text)  # little is dropped
    long_line = "x" * 5000  # one paragraph over the limit: cut, never one oversized file
    assert all(len(p.strip()) < 1600 for p in pydoc_corpus.pieces(long_line + "\n" + long_line))
    inherited = (
        "class E\n |  Data descriptors defined here:\n |  x\n"
        " |  Methods inherited from builtins.Exception:\n |  __init__\n |  ---\n |  own"
    )
    assert "builtins" not in pydoc_corpus.drop_inherited(inherited)
    assert "own" in pydoc_corpus.drop_inherited(inherited)


def test_manual_pages_become_chunk_files_split_by_page(tmp_path: Path) -> None:
    """pyhtml_corpus.py: a Sphinx page's main body made text, cut into chunk-sized files, each
    page in one split, a paragraph repeated on another page written once."""
    import pyhtml_corpus

    html = tmp_path / "root" / pyhtml_corpus.HTML
    shared = "<p>" + "This note appears on every page of the manual. " * 3 + "</p>"
    for part in ("tutorial", "library"):
        (html / part).mkdir(parents=True)
        for k in range(6):
            paras = "".join(
                f"<p>Paragraph {i} of {part} page {k} tells how the interpreter reads a "
                f"{'module ' * (8 + i % 5)}file.</p>"
                for i in range(40)
            )
            body = f'<div role="main"><h1>Page {k}</h1>{shared}{paras}<pre>x = 1</pre></div>'
            (html / part / f"p{k}.html").write_text(f"<html><body>{body}</body></html>")
    (html / "library" / "redirect.html").write_text("<html><body>moved</body></html>")
    got = pyhtml_corpus.write(tmp_path / "root", tmp_path / "c")
    files = sorted((tmp_path / "c").glob("*/*.txt"))
    assert got["pages"] == 12 and got["files"] == len(files) > 24
    assert all(1050 <= len(f.read_text()) < 1601 for f in files)
    text = "".join(f.read_text() for f in files)
    assert text.count("This note appears") == 3  # one paragraph, written once
    for page in {f.name.rsplit("__", 1)[0] for f in files}:  # a page never spans both splits
        assert len({f.parent.name for f in files if f.name.startswith(page + "__")}) == 1


class FakeSP:
    def __init__(self, **kw: object) -> None:
        self.kw = kw


class FakeLLM:
    """vllm.LLM as e2e_raw.py uses it: a question for a question prompt (its stop strings hold
    "?"), else an answer; counts the waves."""

    waves: list[int] = []

    def __init__(self, **kwargs: object) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(kwargs["model"])

    def generate(self, prompts: list[dict], sps: list[FakeSP], use_tqdm: bool = False) -> list:
        FakeLLM.waves.append(len(prompts))
        outs = []
        for sp in sps:
            q = "?" in (sp.kw.get("stop") or [])
            text = " What does the director do with the camera?" if q else " He moves it.\n"
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            done = types.SimpleNamespace(token_ids=ids, finish_reason="stop", logprobs=None)
            outs.append(types.SimpleNamespace(outputs=[done], num_cached_tokens=0))
        return outs


def test_e2e_raw_replays_the_run_dirs_jobs_through_a_plain_llm(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthgen import rundir

    run_dir = tmp_path / "run"
    cfg = compose(
        [
            "model=qwen25_05b",
            f"model.name_or_path={tiny_model}",
            f"corpus.dir={REPO / 'data' / 'movies'}",
            "num_rows=3",
            "prompt=notebook",
        ]
    )
    run_dir.mkdir()
    rundir.save_config(run_dir, cfg)
    summary = {
        "rows": {"train": 3, "val": 3},
        "seconds": {"total": 20.0},
        "this_session": {
            "generate_seconds": 10.0,
            "tokens_per_second": 50.0,
            "prompt_tokens": 1000,
            "engine": {"name": "vllm", "notes": []},
        },
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = FakeLLM, FakeSP
    kinds = types.ModuleType("vllm.sampling_params")
    kinds.RequestOutputKind = types.SimpleNamespace(FINAL_ONLY="final")
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", kinds)
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    import e2e_raw

    FakeLLM.waves = []
    monkeypatch.setattr(sys, "argv", ["e2e_raw.py", str(run_dir), "--out", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(e2e_raw, "REPO", tmp_path)  # results.jsonl here, not in the repo
    assert e2e_raw.main() == 0
    line = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert line["way"] == "e2e_raw" and line["prompts_by_stage"]["question"] == 6
    assert FakeLLM.waves[0] == 6 and line["waves"] == len(FakeLLM.waves)
    assert line["run_py_rows_h"] == 6 * 360 and line["run_py_engine"] == "vllm"
    if line["rows"]:  # the stand-in's answer may fail the gates; the line says either way
        assert line["run_py_vs_raw"] == round(line["run_py_rows_h"] / line["rows_h"], 3)

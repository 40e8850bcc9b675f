"""`python run.py ARGS` without paying the imports each time: a fork server for fault tests.

Started once, it imports what a run imports (torch, transformers, LlamaIndex, Hydra, run.py)
and then, for each command line it reads on stdin (one JSON object: argv, env, log), forks a
child that runs run.py as `__main__` on that argv exactly as `python run.py ARGS` would (Hydra
parses sys.argv, composes, calls the pipeline), with its output in `log`. It answers
{"pid": N} at once and {"pid": N, "rc": code} when the child is gone, where rc is minus the
signal number of a killed child (-9 for SIGKILL). Imports cost ~8 s of a run here and the
run itself ~1 s: this makes a twenty-kill soak affordable. Nothing else is shared: every
child starts from the same freshly imported, never-run state (no torch op runs here, so
no thread pool exists to fork).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def preload() -> None:
    """Import and warm up what a run would load lazily (measured here: the Llama classes
    ~7 s, LlamaIndex's sentence splitter ~6 s, the PDF and DOCX readers, openpyxl). No torch
    op runs, so no thread pool exists when a child is forked."""
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    import tempfile

    import llama_index.core  # noqa: F401
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LlamaForCausalLM,
    )

    import run  # noqa: F401
    import synthgen.backends.transformers  # noqa: F401
    import synthgen.scale.merge  # noqa: F401
    from synthgen.corpus import chunking, reading
    from synthgen.rundir import writing

    sample = REPO / "data" / "movies"
    docs = []
    for name in ("Acting and Casting.pdf", "so_bad_its_good.docx", "film_critics.txt"):
        docs += reading.read_file(sample / name, name)[0]
    chunking.chunk_docs(docs[:2], 256, 32)
    with tempfile.TemporaryDirectory() as tmp:
        writing.write_excel(Path(tmp) / "x.xlsx", {"train": [{"id": "a", "doc": "b"}]})


def child(argv: list[str], env: dict[str, str], log: str) -> None:
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    sys.argv = ["run.py", *argv]
    code = 0
    try:  # as `python run.py` does: run.py is __main__, so Hydra finds conf/ beside it
        runpy.run_path(str(REPO / "run.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    preload()
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(cmd["argv"], cmd.get("env", {}), cmd["log"])
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        out.write(json.dumps({"pid": pid, "rc": rc}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()

"""Fault soak and the run-dir lock, through the CLI with the tiny real model.

A run is SIGKILLed at 20 moments (reading, cleaning, chunking, generation, the hand-off of
a question to its answer, the final write of every dataset file, and at random times) and
resumed after each kill; the run dir it ends with must equal an uninterrupted run's: the same
row keys, the same texts (greedy decoding at generation.batch_size=1), every file complete
and parseable. A sharded run's merge is killed the same way. Then a second `python run.py`
on a dir in use must stop at once, in one line, leaving the first run's files as they would
have been.

Imports are most of a run's cost here (~8 s of ~9 s), so most kills are of children of a fork
server (tests/helpers/forkserver.py) that runs run.py's main() on each argv with the imports done;
`SYNTHGEN_FAULT=point:n` makes a child SIGKILL itself at a named point (synthgen/faults.py).
Some kills are at random times instead, one of them of a plain `python run.py` process.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from synthgen.errors import RunDirLocked
from synthgen.records import Row
from synthgen.rundir import runlock
from tests.conftest import REPO

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("SYNTHGEN_SOAK_SEED", "17"))
# one thread: on a shared 2-core box OpenMP's spinning threads make a tiny model 50x slower
ENV = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
DATASET_FILES = [
    f"{s}{suffix}"
    for s in ("train", "val")
    for suffix in (".json", "_corpus.json", "_queries.json", "_relevant_docs.json", "_dataset.json")
]


class ForkServer:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        env = {**os.environ, **ENV, "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "helpers" / "forkserver.py")],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.p.stdout.readline()) == {"ready": True}
        self.n = 0

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.n += 1
        log = self.logs / f"run{self.n:02d}.log"
        cmd = {"argv": argv, "env": env or {}, "log": str(log)}
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())["pid"]

    def wait(self) -> int:
        return json.loads(self.p.stdout.readline())["rc"]

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.start(argv, env)
        return self.wait()

    def log(self) -> str:
        return (self.logs / f"run{self.n:02d}.log").read_text(errors="replace")

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=30)


def make_corpus(d: Path) -> Path:
    """A small corpus of every kind: PDF (cleaned), DOCX, TXT (Latin-1), Markdown."""
    src = REPO / "data" / "movies"
    d.mkdir(parents=True)
    for name in (
        "Acting and Casting.pdf",
        "so_bad_its_good.docx",
        "screenplay-structure.md",
        "The Sundance Decade.pdf",
    ):
        shutil.copy(src / name, d / name)
    text = (src / "film_critics.txt").read_text(encoding="utf-8")
    (d / "critics.txt").write_bytes(
        (text + "\nLe réalisateur à Cannes : « un film très réussi », dit la critique.\n").encode(
            "cp1252", "replace"
        )
    )
    shutil.copy(src / "documentary_ethics.docx", d / "documentary_ethics.docx")
    return d


def run_args(tiny: Path, corpus: Path, run_dir: Path) -> list[str]:
    return [
        f"corpus.dir={corpus}",
        "corpus.train_files=['Acting and Casting.pdf',so_bad_its_good.docx,"
        "screenplay-structure.md]",
        "corpus.val_files=[critics.txt,documentary_ethics.docx,'The Sundance Decade.pdf']",
        f"model.name_or_path={tiny}",
        "model.load_in_4bit=false",
        "num_rows=8",
        "generation.max_new_tokens=12",
        "generation.batch_size=1",
        "generation.do_sample=false",
        "filters=none",  # the random-weight model writes noise that the quality gates would drop
        f"hydra.run.dir={run_dir}",
    ]


def jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]  # raises on a cut or broken line


def same_run_dir(got: Path, want: Path) -> None:
    """`got` holds exactly what `want` (an uninterrupted run) holds, every file parseable."""
    names = lambda d: {p.name for p in d.iterdir() if p.is_file()} - {"run.log"}  # noqa: E731
    assert names(got) == names(want)
    assert not [p for p in got.iterdir() if ".tmp" in p.name or p.name == runlock.LOCK_NAME]
    for name in DATASET_FILES:
        assert json.loads((got / name).read_text()) == json.loads((want / name).read_text()), name
    for name in ("train.jsonl", "val.jsonl"):
        a, b = jsonl(got / name), jsonl(want / name)
        keys = [Row(**r).key for r in a]
        assert len(keys) == len(set(keys)), f"{name}: a row twice"
        assert {Row(**r).key: r for r in a} == {Row(**r).key: r for r in b}, name
    for name in ("questions.jsonl", "rejected.jsonl"):
        a, b = jsonl(got / name), jsonl(want / name)
        assert len({r["key"] for r in a}) == len(a), f"{name}: a key twice"
        assert {r["key"]: r for r in a} == {r["key"]: r for r in b}, name
    import pandas as pd

    x, y = (pd.read_excel(d / "dataset.xlsx", sheet_name=None) for d in (got, want))
    assert list(x) == list(y) and all(x[s].equals(y[s]) for s in x)
    s, t = (json.loads((d / "summary.json").read_text()) for d in (got, want))
    assert s["status"] == t["status"] == "complete"
    for key in ("rows", "splits", "leak", "files"):
        assert s[key] == t[key], key
    assert json.loads((got / "DONE").read_text())["finished"]


# kill points, by stage; n is drawn small so the point is reached in almost every run
READING = [("read", 5), ("clean", 3), ("chunk", 2)]  # 7 files, 2 splits
GENERATION = [("generate", 3), ("row", 2)]
HANDOFF = [("question", 2)]
FINAL_WRITE = [("write", 11), ("summary", 1), ("done", 1)]


def schedule(rng: random.Random) -> list[tuple[str, int] | str]:
    """20 kills: reading 4, generation 5 and hand-off 3 in a random order (each lets the run
    get a little further), then 3 at random times (one of a plain `python run.py`), then the
    final write 5 (those bite once generation is done, in every resume after it)."""

    def pick(points: list[tuple[str, int]]) -> tuple[str, int]:
        name, most = rng.choice(points)
        return name, rng.randint(1, most)

    early = [pick(READING) for _ in range(4)] + [pick(GENERATION) for _ in range(5)]
    early += [pick(HANDOFF) for _ in range(3)]
    rng.shuffle(early)
    late = [pick(FINAL_WRITE) for _ in range(5)]
    return [*early, "random", "cli", "random", *late]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = ForkServer(tmp_path_factory.mktemp("logs"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def reference(server: ForkServer, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted run, and how long it took (s)."""
    root = tmp_path_factory.mktemp("soak")
    corpus = make_corpus(root / "docs")
    ref = root / "reference"
    t = time.perf_counter()
    assert server.run(run_args(tiny_model, corpus, ref)) == 0, server.log()
    seconds = time.perf_counter() - t
    s = json.loads((ref / "summary.json").read_text())
    assert s["rows"]["train"] >= 4 and s["rows"]["val"] >= 4, s["rows"]
    assert s["splits"]["val"]["encodings"]["critics.txt"]["encoding"] == "cp1252"
    return corpus, ref, seconds


def kill_cli_at_random(args: list[str], rng: random.Random, run_dir: Path) -> bool:
    """A plain `python run.py` killed a random moment after it starts writing rows."""
    env = {**os.environ, **ENV}
    p = subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lock = run_dir / runlock.LOCK_NAME
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:  # until it holds the lock
        if lock.exists() and f'"pid": {p.pid}' in lock.read_text(errors="replace"):
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 6.0))  # reading, model load or generation
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL)
    p.wait()
    return True


def test_twenty_kills_lose_and_double_nothing(
    server: ForkServer, reference, tiny_model: Path, tmp_path: Path
) -> None:
    corpus, ref, ref_seconds = reference
    soak = tmp_path / "soak"
    args = run_args(tiny_model, corpus, soak)
    rng = random.Random(SEED)
    kills: list[str] = []
    t0 = time.perf_counter()
    steps = schedule(rng)
    tried = len(steps)
    for step in steps:
        if step == "cli":
            if kill_cli_at_random(args, rng, soak):
                kills.append("cli@random")
            continue
        if step == "random":
            pid = server.start(args)
            time.sleep(rng.uniform(0.05, max(0.1, ref_seconds)))
            with contextlib.suppress(ProcessLookupError):  # it may have finished already
                os.kill(pid, signal.SIGKILL)
            rc = server.wait()
            if rc == -signal.SIGKILL:
                kills.append("random")
            else:
                assert rc == 0, server.log()
            continue
        point, n = step
        rc = server.run(args, {"SYNTHGEN_FAULT": f"{point}:{n}"})
        if rc == -signal.SIGKILL:
            kills.append(f"{point}:{n}")
        else:  # the point was not reached (the work behind it was done already)
            assert rc == 0, server.log()
    # top up to 20 with final-write kills, should a scheduled point not have been reached
    while len(kills) < 20:
        point, n = rng.choice(FINAL_WRITE)
        n = rng.randint(1, n)
        tried += 1
        if server.run(args, {"SYNTHGEN_FAULT": f"{point}:{n}"}) == -signal.SIGKILL:
            kills.append(f"{point}:{n}")
    assert server.run(args) == 0, server.log()  # the last resume, undisturbed
    print(f"\nsoak: {len(kills)} kills survived in {time.perf_counter() - t0:.1f} s: {kills}")
    print(f"soak: tried {tried} moments; a point the run did not reach again is no kill")
    assert len(kills) >= 20
    stages = Counter(k.split(":")[0] for k in kills)
    spread = {
        "reading": stages["read"] + stages["clean"] + stages["chunk"],
        "generation": stages["generate"] + stages["row"],
        "hand-off": stages["question"],
        "final write": stages["write"] + stages["summary"] + stages["done"],
    }
    assert min(spread.values()) >= 2 and spread["final write"] >= 4, (spread, kills)
    same_run_dir(soak, ref)


def test_a_merge_killed_midway_ends_as_one_undisturbed_merge(
    server: ForkServer, reference, tiny_model: Path, tmp_path: Path
) -> None:
    corpus, ref, _ = reference
    sweep = tmp_path / "sweep"
    shard_args = [
        a for a in run_args(tiny_model, corpus, tmp_path / "unused") if "hydra.run" not in a
    ]
    rc = server.run(
        [
            "-m",
            *shard_args,
            "shard.index=0,1",
            "shard.count=2",
            "compare.auto=false",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert rc == 0, server.log()
    undisturbed = tmp_path / "undisturbed"
    shutil.copytree(sweep / "merged", undisturbed)
    rng = random.Random(SEED + 1)
    merge_args = ["task=merge", f"merge.sweep={sweep}", f"hydra.run.dir={tmp_path / 'log'}"]
    kills = []
    for _ in range(6):
        point = rng.choice(["merge", "write"])
        n = rng.randint(1, 4 if point == "merge" else 11)
        if server.run(merge_args, {"SYNTHGEN_FAULT": f"{point}:{n}"}) == -signal.SIGKILL:
            kills.append(f"{point}:{n}")
    assert server.run(merge_args) == 0, server.log()
    print(f"\nmerge soak: {len(kills)} kills survived: {kills}")
    assert len(kills) == 6
    same_run_dir(sweep / "merged", undisturbed)
    # and the merge of the shards is the one run made by one job
    for name in DATASET_FILES:
        got = json.loads((sweep / "merged" / name).read_text())
        assert got == json.loads((ref / name).read_text()), name


def test_a_second_run_on_a_dir_in_use_stops_at_once(
    server: ForkServer, reference, tiny_model: Path, tmp_path: Path
) -> None:
    """Two terminals, one run dir: the second (a plain `python run.py`) exits non-zero in
    under 5 s with one line, and the first run's files are exactly those of an undisturbed
    run."""
    corpus, ref, _ = reference
    run_dir = tmp_path / "shared"
    args = run_args(tiny_model, corpus, run_dir)
    pid = server.start(args)
    lock = run_dir / runlock.LOCK_NAME
    deadline = time.time() + 120
    while not (lock.exists() and f'"pid": {pid}' in lock.read_text(errors="replace")):
        assert time.time() < deadline, "the first run never took the lock"
        time.sleep(0.01)
    t = time.perf_counter()
    second = subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=REPO,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t
    still = lock.exists() and f'"pid": {pid}' in lock.read_text(errors="replace")
    assert server.wait() == 0, server.log()
    assert still, "the first run ended before the second one was refused: moot"
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert re.match(
        rf"^error: run dir .*shared is in use: locked by pid {pid} on \S+ since ", lines[0]
    ), lines[0]
    assert seconds < 5, f"the second run took {seconds:.1f} s to stop"
    same_run_dir(run_dir, ref)
    print(f"\nsecond run refused in {seconds:.2f} s: {lines[0]}")


def test_the_refusal_without_the_fast_path(tmp_path: Path) -> None:
    """The Hydra callback refuses too (a run dir named by an interpolation, say): before
    Hydra writes .hydra/ into the dir."""
    with runlock.held(tmp_path):
        p = subprocess.run(
            [sys.executable, "run.py", "hydra.run.dir=${oc.env:SYNTHGEN_TEST_DIR}"],
            cwd=REPO,
            env={**os.environ, **ENV, "SYNTHGEN_TEST_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
        )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]
    assert p.stderr.startswith(f"error: run dir {tmp_path} is in use: locked by pid {os.getpid()}")
    assert not (tmp_path / ".hydra").exists()


def test_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    p = hold_elsewhere(tmp_path)
    with pytest.raises(RunDirLocked, match=rf"locked by pid {p.pid} on "):
        runlock.hold(tmp_path)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (tmp_path / runlock.LOCK_NAME).exists()  # left behind, with the dead holder in it
    lock = runlock.RunLock(tmp_path).acquire()  # the kernel dropped the flock: stale
    assert lock.stale["pid"] == p.pid
    lock.release()
    assert not (tmp_path / runlock.LOCK_NAME).exists()


HOLDER = (
    "import sys, time; sys.path.insert(0, sys.argv[2]); from synthgen.rundir import runlock; "
    "runlock.hold(sys.argv[1]); print('held', flush=True); time.sleep(60)"
)


def hold_elsewhere(d: Path) -> subprocess.Popen:
    """Another process that holds d's lock until killed."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(d), str(REPO)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.usefixtures("fake")
def test_merge_locks_the_merged_dir(tmp_path: Path) -> None:
    """Two merges of one sweep: the second stops at once, naming the first."""
    from synthgen.scale import merge
    from tests.test_scale import job  # a job dir as a multirun leaves it

    sweep = tmp_path / "sweep"
    for i in range(2):
        job(sweep, ["num_rows=2", "shard.count=2", f"shard.index={i}"])  # fake backend
    other = hold_elsewhere(sweep / "merged")
    with pytest.raises(RunDirLocked, match=rf"locked by pid {other.pid} on "):
        merge.merge_sweep(sweep)
    other.send_signal(signal.SIGKILL)
    other.wait()
    assert not (sweep / "merged" / "summary.json").exists()
    assert merge.merge_sweep(sweep)["merged"][0]["status"] == "complete"


@pytest.mark.usefixtures("fake")
def test_a_row_in_the_jsonl_twice_is_in_the_dataset_once(tmp_path: Path) -> None:
    """What two writers without the lock left behind: the final write keeps each key once."""
    from synthgen.generate import pipeline
    from tests.conftest import compose

    cfg = compose(["model._target_=tests.helpers.fake_backend.Backend", "num_rows=3"])
    pipeline.run(cfg, tmp_path)
    path = tmp_path / "train.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, *lines[:2]]) + "\n", encoding="utf-8")
    s = pipeline.run(cfg, tmp_path)  # resume: nothing to generate, the dataset written anew
    assert s["this_session"]["prompts"] == {"question": 0, "answer": 0}
    rows = json.loads((tmp_path / "train.json").read_text())
    assert len(rows) == len({r["id"] for r in rows}) == 3 == s["rows"]["train"]
    assert s["jsonl_repeated_rows"] == {"train": 2, "val": 0}
    assert len(json.loads((tmp_path / "train_queries.json").read_text())) == 3

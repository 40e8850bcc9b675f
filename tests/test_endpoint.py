"""model.backend=openai against a real OpenAI-compatible server: `transformers serve` on the
tiny model (tests/helpers/endpoint.py), through run.py as `python run.py ARGS` runs it (run.py
as __main__ on that argv, in a child of the fork server of tests/helpers/forkserver.py, as the
fault soak does: the imports are paid once).

The server tests are marked `server` (in the default run; `python -m pytest -m server` selects
them) and share one server and one fork server (the module-scoped `booted`). The config
checks at the bottom need no server.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthgen.config import check
from synthgen.errors import ConfigError
from tests.conftest import REPO, cli, compose
from tests.helpers.endpoint import DELAY, DROP, FaultProxy, serve
from tests.test_faults import ForkServer

KEY_ENV = "SYNTHGEN_TEST_API_KEY"
SPLITS = ("train", "val")
# text files only (no PDF parsing), enough chunks for 5 rows a split
CORPUS = [
    "corpus.train_files=[screenplay-structure.md,in_the_dark_together.md]",
    "corpus.val_files=[film_critics.txt,'80s action heroes.txt']",
]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # a shared 2-core box: OpenMP spinning slows a tiny model


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def booted(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One transformers serve for the module's tests (API root, served model name), and a
    fork server for their `python run.py` runs (tests/helpers/forkserver.py: the imports done
    once, a run through the server is then ~1 s of work instead of ~10 s of imports). Both start at
    once: their imports are most of the setup."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with ThreadPoolExecutor(1) as pool:
        fork = pool.submit(ForkServer, tmp_path_factory.mktemp("runs"))
        try:
            with serve(tiny_model, log) as url:
                yield url, str(tiny_model), fork.result()
        finally:
            fork.result().close()


@pytest.fixture(scope="module")
def served(booted) -> tuple[str, str]:
    return booted[0], booted[1]


@pytest.fixture(scope="module")
def runner(booted) -> ForkServer:
    return booted[2]


@dataclass
class Ran:
    returncode: int  # minus the signal number of a killed run
    output: str  # its stdout and stderr, as one log


def run_py(fork: ForkServer, *args: str, check: bool = True, **env: str) -> Ran:
    """`python run.py ARGS` (run.py as __main__ in a child of the fork server, env added)."""
    ran = Ran(fork.run(list(args), env), fork.log())
    assert ran.returncode == 0 or not check, ran.output[-3000:]
    return ran


def endpoint_args(url: str, name: str, run_dir: Path, *more: str) -> list[str]:
    return [
        "model=openai_compatible",
        f"model.base_url={url}",
        f"model.name={name}",
        f"model.api_key_env={KEY_ENV}",
        "filters=none",  # the random-weight model writes noise that the quality gates would drop
        "generation.max_new_tokens=24",
        *CORPUS,
        *more,
        f"hydra.run.dir={run_dir}",
    ]


def key_free(root: Path, key: str) -> list[Path]:
    """Every file under root (config.yaml, summary.json, .hydra/, run.log, JSONL, ...) whose bytes
    hold the key; [] is the wanted answer."""
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    return [p for p in files if key.encode() in p.read_bytes()]


def slots_add_up(run_dir: Path) -> tuple[int, list[dict]]:
    s = json.loads((run_dir / "summary.json").read_text())
    rows = {sp: jsonl(run_dir / f"{sp}.jsonl") for sp in SPLITS}
    rejected = jsonl(run_dir / "rejected.jsonl")
    slots = sum(s["splits"][sp]["slots"] for sp in SPLITS)
    assert sum(map(len, rows.values())) + len(rejected) == slots  # every slot: a row or a reject
    ids = [r["id"] for sp in SPLITS for r in rows[sp]]
    assert len(ids) == len(set(ids))  # none twice
    return slots, rejected


@pytest.mark.server
def test_retries_rejects_usage_and_no_key_on_disk(served, runner, tmp_path: Path) -> None:
    """Every request's first attempt is a 429 (Retry-After: 0); the 2nd and 5th prompts to
    arrive also get 500s until the retry limit and become rejects; the run completes."""
    url, name = served
    key = "sk-test-" + secrets.token_hex(16)
    doomed = {2, 5}

    def plan(ordinal: int, attempt: int, auth: str | None):
        if attempt == 1:  # held 0.3 s: requests sent together are open together here
            return 429, {"retry-after": "0", DELAY: "0.3"}
        if ordinal in doomed:
            return 500, {}  # no Retry-After: the client's own backoff
        return None

    run_dir = tmp_path / "r"
    with FaultProxy(url.removesuffix("/v1"), plan) as proxy:
        p = run_py(
            runner,
            *endpoint_args(
                proxy.url,
                name,
                run_dir,
                "num_rows=4",
                "model.concurrency=4",
                "model.max_retries=2",
                "model.retry_backoff=0.2",
                "model.price_per_1m_input=1.0",
                "model.price_per_1m_output=2.0",
            ),
            **{KEY_ENV: key},
        )
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "complete"
    assert all((run_dir / f).exists() for f in s["files"])
    slots, rejected = slots_add_up(run_dir)
    assert sum(s["rows"].values()) >= 1

    chats = proxy.chats()
    failed = [r for r in rejected if r["reason"] == "request_failed"]
    assert len(failed) == len(doomed)  # the two doomed prompts, and nothing else
    assert all(r["status"] == 500 and r["attempts"] == 3 for r in failed)  # 1 + max_retries
    assert all("***" in r["error"] and key not in r["error"] for r in failed)  # echo redacted
    assert {r["stage"] for r in failed} <= {"question", "answer"}

    # what the server said, summed: the proxy saw the same requests and usage
    u = s["this_session"]["usage"]
    bodies = {c.body for c in chats}
    forwarded = [c for c in chats if c.status == 200]
    assert u["requests"] == len(forwarded) == len(bodies) - len(doomed)
    assert u["failed"] == len(doomed)
    assert u["retries"] == len(chats) - len(bodies)
    assert u["prompt_tokens"] == sum(c.usage["prompt_tokens"] for c in forwarded) > 0
    assert u["completion_tokens"] == sum(c.usage["completion_tokens"] for c in forwarded) > 0
    assert s["this_session"]["output_tokens"] == u["completion_tokens"]
    assert s["this_session"]["prompt_tokens"] == u["prompt_tokens"]
    cost = (u["prompt_tokens"] * 1.0 + u["completion_tokens"] * 2.0) / 1e6
    assert u["cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert s["generation"]["usage"]["cost_usd"] == u["cost_usd"]
    assert "generate $0.0" in p.output  # the progress bar shows the cost
    assert s["this_session"]["engine"]["name"] == "endpoint"

    # exponential backoff with jitter: a 500 without Retry-After waits 0.2 * 2**1 s, upper half
    for body in {c.body for c in chats if c.status == 500}:
        times = sorted(c.at for c in chats if c.body == body)
        assert len(times) == 3 and times[2] - times[1] >= 0.2
    assert proxy.max_in_flight >= 2  # model.concurrency=4: requests overlap

    # the key went out with every request, and into no file of the run dir
    assert {c.authorization for c in chats} == {f"Bearer {key}"}
    assert key_free(run_dir, key) == []
    assert key not in p.output


@pytest.mark.server
def test_killed_run_resumes_without_duplicates(served, runner, tmp_path: Path) -> None:
    """`python run.py model=openai_compatible model.base_url=... model.name=...` killed after its
    third row, then stopped by a server that went away, then the same command again: rows
    kept, the rest made, none twice."""
    url, name = served
    key = "sk-test-" + secrets.token_hex(16)
    run_dir = tmp_path / "r"
    args = endpoint_args(url, name, run_dir, "num_rows=5", "model.concurrency=3")
    p = run_py(runner, *args, check=False, SYNTHGEN_FAULT="row:3", **{KEY_ENV: key})
    assert p.returncode == -signal.SIGKILL
    kept = {sp: jsonl(run_dir / f"{sp}.jsonl") for sp in SPLITS}
    assert sum(map(len, kept.values())) == 3 and not (run_dir / "summary.json").exists()

    # then the server is gone (every connection hung up): the run stops with one line instead
    # of rejecting every slot, its rows kept
    with FaultProxy(url.removesuffix("/v1"), lambda o, a, auth: (DROP, {})) as px:
        down = [a.replace(f"model.base_url={url}", f"model.base_url={px.url}") for a in args]
        p = run_py(runner, *down, "model.retry_backoff=0.01", check=False, **{KEY_ENV: key})
    assert p.returncode != 0
    last = p.output.strip().splitlines()[-1]
    assert last.startswith(f"error: model.base_url: the server at {px.url} stopped answering"), last
    assert key not in p.output
    assert len([c for c in px.chats() if c.status == DROP]) >= 5  # 1 + max_retries attempts
    for sp in SPLITS:
        assert jsonl(run_dir / f"{sp}.jsonl")[: len(kept[sp])] == kept[sp]
    kept = {sp: jsonl(run_dir / f"{sp}.jsonl") for sp in SPLITS}
    assert not [r for r in jsonl(run_dir / "rejected.jsonl") if r["reason"] == "request_failed"]

    run_py(runner, *args, **{KEY_ENV: key})  # the server is back: the same command resumes
    for sp in SPLITS:  # what was on disk stays as it was, the rest follows it
        assert jsonl(run_dir / f"{sp}.jsonl")[: len(kept[sp])] == kept[sp]
    slots, rejected = slots_add_up(run_dir)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "complete" and sum(s["rows"].values()) + len(rejected) == slots > 3
    # only what was not on disk was asked for again: the 3 first rows' answers are not asked twice
    assert s["this_session"]["prompts"]["answer"] <= slots - 3
    assert key_free(run_dir, key) == []


@pytest.mark.server
def test_a_sweep_over_a_local_and_an_endpoint_model_gives_one_report(
    served, runner, tiny_model: Path, tmp_path: Path
) -> None:
    """Two model configs a user would write (a local model, the same weights served) in one -m
    sweep: both run dirs hold the same outputs, and one comparison report holds both."""
    url, name = served
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "tiny_local.yaml").write_text(
        f"defaults: [qwen25_05b, _self_]\nname_or_path: {tiny_model}\n"
    )
    (conf / "tiny_endpoint.yaml").write_text(
        "defaults: [openai_compatible, _self_]\n"
        f"base_url: {url}\nname: {name}\nprice_per_1m_input: 0.5\nprice_per_1m_output: 1.5\n"
        f"api_key_env: {KEY_ENV}\n"
    )
    key = "sk-test-" + secrets.token_hex(16)
    sweep = tmp_path / "s"
    run_py(
        runner,
        "-m",
        "model=tiny_local,tiny_endpoint",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        *CORPUS,
        "num_rows=2",
        "generation.max_new_tokens=12",
        "filters=none",
        "compare.embedder=null",
        f"hydra.sweep.dir={sweep}",
        **{KEY_ENV: key},
    )
    local, endpoint = sweep / "model=tiny_local", sweep / "model=tiny_endpoint"
    files = {}
    for d in (local, endpoint):
        s = json.loads((d / "summary.json").read_text())
        assert s["status"] == "complete"
        files[d.name] = sorted(s["files"])
    assert files[local.name] == files[endpoint.name]  # an endpoint run writes what a local one does
    # one report, both runs, the endpoint's cost beside tokens/s (a local model has none)
    report = {m["run"]: m for m in json.loads((sweep / "compare.json").read_text())["metrics"]}
    assert set(report) == {local.name, endpoint.name}
    usage = json.loads((endpoint / "summary.json").read_text())["generation"]["usage"]
    assert usage["cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1e6, abs=1e-6
    )
    assert float(report[endpoint.name]["cost_usd"]) == pytest.approx(usage["cost_usd"])
    assert report[local.name]["cost_usd"] is None
    assert all(report[r]["tokens_per_second"] > 0 for r in report)
    assert "| endpoint cost (USD) |" in (sweep / "compare.md").read_text()
    assert key_free(sweep, key) == []  # run dirs, multirun.yaml, the report


@pytest.mark.server
def test_generate_answers_a_batch_in_order_and_retries_a_timeout(served) -> None:
    """The backend contract the transformers backend has: generate(batch, params) -> one
    Generated per prompt, in order. Each first attempt stalls past request_timeout (a slow
    server); the retry succeeds and the replies equal those of one request at a time."""
    from synthgen.backends.base import GenParams
    from synthgen.backends.openai import Backend
    from tests.helpers.endpoint import STALL

    url, name = served
    spec = {"backend": "openai", "name_or_path": name, "name": name}
    prompts = [
        [{"role": "user", "content": f"Ask one question about film number {i}."}] for i in range(3)
    ]
    params = GenParams(max_new_tokens=8)
    one = Backend(**spec, base_url=url, concurrency=1)
    try:
        alone = [one.generate([m], params)[0] for m in prompts]
    finally:
        one.close()
    with FaultProxy(
        url.removesuffix("/v1"), lambda o, a, auth: (STALL, {"seconds": "1.5"}) if a == 1 else None
    ) as proxy:
        b = Backend(
            **spec, base_url=proxy.url, concurrency=3, request_timeout=0.5, retry_backoff=0.01
        )
        try:
            outs = b.generate(prompts, [params, params, GenParams(max_new_tokens=4)])
        finally:
            b.close()
    assert [o.text for o in outs[:2]] == [a.text for a in alone[:2]]  # in order, greedy
    assert outs[2].tokens <= 4 and alone[2].text.startswith(outs[2].text)  # its own cap
    assert all(o.failed is None and o.tokens > 0 for o in outs)
    # every request asked for logprobs; transformers serve (5.25) ignores the parameter with a
    # warning and sends none: logprob None, and nothing else changes
    assert all(o.logprob is None or o.logprob <= 0 for o in outs + alone)
    assert b.usage.retries == 3 and b.usage.requests == 3 and b.usage.failed == 0
    assert sorted(c.status for c in proxy.chats()) == [STALL] * 3 + [200] * 3
    assert proxy.max_in_flight >= 3  # the three went out at once (stalled ones stay open)


@pytest.mark.server
def test_a_model_the_server_does_not_serve_fails_in_one_line(served) -> None:
    from synthgen.backends.base import EndpointSpec
    from synthgen.backends.openai import Backend

    url, name = served
    spec = EndpointSpec(name_or_path="nope", name="nope", backend="openai", base_url=url)
    with pytest.raises(ValueError) as e:
        Backend.prepare(spec)
    assert str(e.value).startswith("model.name: 'nope' is not served at") and name in str(e.value)
    assert Backend.prepare(EndpointSpec(name_or_path=name, name=name, base_url=url)) == name


@pytest.mark.server
def test_the_endpoint_benchmark_writes_its_line_and_table(served, tmp_path: Path) -> None:
    """benchmarks/endpoint.py, the GPU session's vllm serve measurement, in CI size."""
    url, name = served
    results, table = tmp_path / "results.jsonl", tmp_path / "RESULTS.md"
    run_args = shlex.join([*CORPUS, "num_rows=2", "generation.max_new_tokens=8", "filters=none"])
    p = subprocess.run(
        [sys.executable, "benchmarks/endpoint.py", "--base-url", url, "--name", name]
        + ["--concurrency", "3", "--run-args", run_args, "--work", str(tmp_path / "w")]
        + ["--results", str(results), "--table", str(table), "--invocation", "ci"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "OUT"}, **ONE_THREAD},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    (line,) = [json.loads(x) for x in results.read_text().splitlines()]
    s = json.loads((Path(line["run_dir"]) / "summary.json").read_text())
    assert line["workload"] == "endpoint" and line["concurrency"] == 3
    assert line["rows"] == sum(s["rows"].values()) >= 1
    assert line["completion_tokens"] == s["this_session"]["usage"]["completion_tokens"] > 0
    assert line["tok_s"] == s["this_session"]["tokens_per_second"] > 0
    assert "| 3 | " in table.read_text() and "invocation ci" in table.read_text()


# --- config checks: no server needed ------------------------------------------------------------


def endpoint_cfg(*more: str):
    return compose(["model=openai_compatible", *more])


def test_the_endpoint_configs_pass_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    check(endpoint_cfg())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-a-real-key")
    cfg = compose(["model=gpt4o_mini"])
    check(cfg)
    assert cfg.model.name_or_path == "gpt-4o-mini"  # rows name the served model


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.base_url=localhost:8000", "model.base_url"),
        ("model.name=''", "model.name"),
        ("model.api_key_env=missing_VAR_for_sure", "model.api_key_env"),
        ("model.prompt_format=plain", "model.prompt_format"),
        ("model.price_per_1m_input=-1", "model.price_per_1m_input"),
        ("model.price_per_1m_input=1.0", "model.price_per_1m_input"),  # output price missing
        ("model.concurrency=0", "model.concurrency"),
        ("model.max_retries=-1", "model.max_retries"),
        ("model.request_timeout=0", "model.request_timeout"),
    ],
)
def test_bad_endpoint_values_stop_with_one_line(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(endpoint_cfg(override))
    assert str(e.value).startswith(f"{key}:") and "\n" not in str(e.value)


def test_a_key_given_as_api_key_env_is_refused_and_not_echoed() -> None:
    key = "sk-proj-" + secrets.token_hex(20)
    with pytest.raises(ConfigError) as e:
        check(endpoint_cfg(f"model.api_key_env={key}"))
    assert str(e.value).startswith("model.api_key_env:") and key not in str(e.value)


@pytest.mark.slow
def test_no_server_at_base_url_fails_before_the_corpus_is_read(tmp_path: Path) -> None:
    from tests.helpers.endpoint import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    p = cli(
        "model=openai_compatible",
        f"model.base_url={url}",
        f"corpus.dir={tmp_path / 'no-such-corpus'}",  # never reached: the server check is first
        f"hydra.run.dir={tmp_path / 'r'}",
        check=False,
    )
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.base_url: no server answers at " + url), last
    assert not (tmp_path / "r" / "train.jsonl").exists()


@pytest.mark.slow
def test_a_dry_run_shows_the_messages_sent_and_needs_no_key(tmp_path: Path) -> None:
    p = cli(
        "model=gpt4o_mini",
        "dry_run=true",
        "num_rows=1",
        *CORPUS,
        f"hydra.run.dir={tmp_path / 'd'}",
        OPENAI_API_KEY="",  # not set: a dry run sends nothing, so needs none
    )
    assert (
        "--- first question prompt" in p.stdout
        and "the chat messages the endpoint gets" in p.stdout
    )
    assert '"role": "user"' in p.stdout and "Context information is below." in p.stdout
    assert not (tmp_path / "d" / "train.jsonl").exists()


# --- logprobs: the reply's mean token log-probability, as the server reports it -------------


def test_reply_logprob_reads_the_chat_and_the_completions_shapes() -> None:
    from synthgen.backends.chat_api import reply_logprob

    def chat(*entries: tuple[str, float | None], finish: str = "stop") -> dict:
        content = [{"token": t, "logprob": v, "top_logprobs": []} for t, v in entries]
        return {"finish_reason": finish, "logprobs": {"content": content}}

    # OpenAI: the reply's own tokens; vLLM: its end-of-turn token last, left out
    assert reply_logprob(chat(("Why", -0.5), ("?", -1.5)), "Why?") == -1.0
    assert reply_logprob(chat(("Why", -0.5), ("?", -1.5), ("<|im_end|>", -0.01)), "Why?") == -1.0
    assert reply_logprob(chat(("Why", -0.5), ("?", -1.5), ("", -0.01)), "Why?") == -1.0
    # cut at max_tokens: the last token is the reply's; a special-looking token the text ends
    # with is part of it
    assert reply_logprob(chat(("a", -1.0), ("</s>", -3.0), finish="length"), "a") == -2.0
    assert reply_logprob(chat(("x", -1.0), ("<b>", -3.0)), "x<b>") == -2.0
    completions = {"tokens": ["Why", "?"], "token_logprobs": [-0.5, -1.5], "top_logprobs": None}
    assert reply_logprob({"finish_reason": "stop", "logprobs": completions}, "Why?") == -1.0
    # none given, or not all of them: unknown
    assert reply_logprob({"finish_reason": "stop"}, "Why?") is None
    assert reply_logprob({"finish_reason": "stop", "logprobs": None}, "Why?") is None
    assert reply_logprob({"finish_reason": "stop", "logprobs": {"content": None}}, "x") is None
    assert reply_logprob(chat(("Why", None), ("?", -1.5)), "Why?") is None
    assert reply_logprob(chat(("<|im_end|>", -0.1)), "") is None  # an empty reply


def test_every_request_asks_for_logprobs_and_the_reply_carries_their_mean() -> None:
    from synthgen.backends.base import EndpointSpec, GenParams
    from synthgen.backends.chat_api import parse_reply, request_body

    spec = EndpointSpec(name_or_path="m", name="m", backend="openai", base_url="http://h/v1")
    msgs = [{"role": "user", "content": "Ask."}]
    assert request_body(spec, msgs, GenParams())["logprobs"] is True
    assert "logprobs" not in request_body(spec, msgs, GenParams(), logprobs=False)
    content = [{"token": "Why", "logprob": -0.25}, {"token": "?", "logprob": -0.75}]
    data = {
        "choices": [
            {
                "message": {"content": "Why?"},
                "finish_reason": "stop",
                "logprobs": {"content": content},
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }
    out, _ = parse_reply(data, GenParams())
    assert (out.text, out.tokens, out.logprob) == ("Why?", 3, -0.5)


class Stub:
    """A real HTTP server on a free port for /chat/completions: `refuse(body)` -> a status to
    answer instead of the reply; each request body is kept."""

    def __init__(self, refuse) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub, self.bodies, self.refuse = self, [], refuse

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                stub.bodies.append(body)
                status = stub.refuse(body)
                reply = {
                    "choices": [{"message": {"content": "Why?"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 2},
                }
                if status:  # as OpenAI answers a parameter a model does not take
                    reply = {"error": {"message": "Unsupported parameter: 'logprobs'"}}
                data = json.dumps(reply).encode()
                self.send_response(status or 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_that_refuses_logprobs_is_asked_again_without_them() -> None:
    """A 400 to a request carrying logprobs: the same request at once without them; answered,
    so no later request asks again (a note says why), and the replies have logprob None."""
    from synthgen.backends.base import GenParams
    from synthgen.backends.openai import Backend

    stub = Stub(lambda body: 400 if "logprobs" in body else None)
    spec = {"name_or_path": "m", "name": "m", "backend": "openai", "base_url": stub.url}
    b = Backend(**spec, concurrency=1, max_retries=0)
    try:
        msgs = [{"role": "user", "content": "Ask."}]
        first, second = b.generate([msgs, msgs], GenParams(max_new_tokens=4))
    finally:
        b.close()
        stub.close()
    assert (first.text, first.failed, first.logprob) == ("Why?", None, None)
    assert second.text == "Why?" and second.failed is None
    assert ["logprobs" in body for body in stub.bodies] == [True, False, False]
    assert b.logprobs is False and b.usage.retries == 0 and b.usage.requests == 2
    assert any("refused logprobs" in n for n in b.notes)


def test_a_request_refused_for_another_reason_fails_as_before() -> None:
    """A 400 the plain request gets too: the request's own failure (request_failed), after
    one plain attempt; later requests still ask for logprobs."""
    from synthgen.backends.base import GenParams
    from synthgen.backends.openai import Backend

    stub = Stub(lambda body: 400)
    spec = {"name_or_path": "m", "name": "m", "backend": "openai", "base_url": stub.url}
    b = Backend(**spec, concurrency=1, max_retries=2)
    try:
        (out,) = b.generate([[{"role": "user", "content": "Ask."}]], GenParams(max_new_tokens=4))
    finally:
        b.close()
        stub.close()
    assert out.failed is not None and out.status == 400 and out.attempts == 1
    assert ["logprobs" in body for body in stub.bodies] == [True, False]
    assert b.logprobs is True and b.notes == []

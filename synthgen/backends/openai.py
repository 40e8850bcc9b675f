"""OpenAI-compatible endpoint backend (`model.backend=openai`): a vLLM or SGLang server on a
cluster, `transformers serve`, or a hosted API generates; nothing is loaded here.

The pipeline hands it the chat messages it would render for a local model (system role folded
by `model.system_role`, the same templates); the server applies its own chat template. Requests
go out async over one httpx connection pool, `model.concurrency` in flight, each finished
one handed back at once (the `streamer()` feed of synthgen/generate/feed.py), so rows reach
disk as they finish. A 429, a 5xx or a timeout is retried `model.max_retries` times with
exponential backoff and jitter (a 429's Retry-After is honoured); a request that still fails
comes back as a Generated with `failed` set, which the pipeline records as a reject
`request_failed` with its status: the run goes on. A server that stops answering at all
(connection refused after every retry) stops the run instead, its rows kept for a resume.

The API key is read from the environment variable *named* by `model.api_key_env`, sent as a
bearer token, and redacted from every error text; it is never part of the config, the summary or
a log line. Usage (prompt and completion tokens) comes from each response; with
`model.price_per_1m_input` / `price_per_1m_output` set, the run's cost too (summary.json,
progress bar, comparison report).

The reply's text is the server's: a stop string (`model.stop_strings`) is not in it, as the
OpenAI API defines, except where the server says which one ended the reply (vLLM's
`stop_reason`), which is put back so replies read as a local backend's do.

Every request asks for `logprobs: true`; Generated.logprob is the mean of the per-token
log-probabilities the server returns (chat_api.reply_logprob: the chat API's
choices[0].logprobs.content[i].logprob, or the completions API's token_logprobs), as the
server computes them (vLLM: the raw logits, its default logprobs_mode), a trailing end-of-turn
token left out; None where the server sends none. A server that refuses the parameter (HTTP
400 or 422 to a request carrying it) gets that request again at once without it, and, if that
one is answered, no request of the session asks again (a note in summary.json): generation
never fails for want of logprobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from typing import Any

from synthgen.backends.base import (
    BaseBackend,
    EndpointSpec,
    Generated,
    GenParams,
    Usage,
)
from synthgen.backends.chat_api import parse_reply, request_body
from synthgen.errors import ConfigError, EndpointDown
from synthgen.schema.engine import Auto as ENGINE  # the engine group's defaults (engine=auto)

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # not a run.log line per request

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})  # worth another attempt
# what a server that does not take `logprobs` answers a request carrying it: sent again without
REFUSED_STATUS = frozenset({400, 422})
BACKOFF_CAP = 60.0  # most seconds one wait between attempts lasts (s)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check(spec: EndpointSpec, runtime: bool = True) -> None:
    """The endpoint keys, before anything is read; raises ConfigError('key: why').

    A value that looks like a key rather than a variable name is refused without being echoed.
    runtime=False (dry runs) skips whether the key's variable is set.
    """
    url = spec.base_url or ""
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(
            f"model.base_url: must be the server's http(s) API root such as "
            f"http://localhost:8000/v1, got {url!r}"
        )
    if not spec.name:
        raise ConfigError("model.name: the served model's name is needed (the server's /v1/models)")
    env = spec.api_key_env
    if env is not None and not (isinstance(env, str) and ENV_NAME.match(env)):
        raise ConfigError(  # the value itself may be a key: never repeat it
            "model.api_key_env: must be the NAME of an environment variable holding the key "
            "(e.g. OPENAI_API_KEY), not the key itself"
        )
    if env and runtime and not os.environ.get(env):
        raise ConfigError(
            f"model.api_key_env: environment variable {env} is not set (export {env}=...), "
            "or set model.api_key_env=null for a server without a key"
        )
    if spec.prompt_format != "chat":
        raise ConfigError("model.prompt_format: the openai backend speaks chat only; set chat")
    prices = (spec.price_per_1m_input, spec.price_per_1m_output)
    for key, v in zip(("price_per_1m_input", "price_per_1m_output"), prices, strict=True):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise ConfigError(f"model.{key}: must be a number >= 0 (USD) or null, got {v!r}")
    if (prices[0] is None) != (prices[1] is None):
        raise ConfigError("model.price_per_1m_input: set both prices (input and output) or neither")


def api_key(spec: EndpointSpec) -> str | None:
    return os.environ.get(spec.api_key_env) if spec.api_key_env else None


def redact(text: str, key: str | None) -> str:
    """One line, at most 300 characters, with the key (were a server to echo it) blanked."""
    line = " ".join(str(text).split())
    if key:
        line = line.replace(key, "***")
    return line[:300]


class Backend(BaseBackend):
    """Sends chat requests to `model.base_url`; `generate` answers a batch of message lists in
    order, `streamer()` keeps `concurrency` requests in flight for the pipeline's stream feed.
    Its hooks of the contract: `encode` gives the messages as they are, `attach` shows the
    cost in the progress bar, `usage` holds the server's counts."""

    check = staticmethod(check)
    name = "openai"  # model.backend
    Spec = EndpointSpec  # the endpoint's keys; no chat_template (the server applies its own)
    engine = "endpoint"  # summary.json this_session.engine.name

    @staticmethod
    def prepare(spec: EndpointSpec) -> str:
        """Before the corpus is read: the server answers and serves model.name (GET /models).
        A server without /models is taken at its word."""
        import httpx

        check(spec)
        key = api_key(spec)
        url = spec.base_url.rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            r = httpx.get(url, headers=headers, timeout=10.0)
        except httpx.HTTPError as e:
            raise ConfigError(
                f"model.base_url: no server answers at {spec.base_url} ({type(e).__name__}); "
                "start one (docs/endpoints.md) or fix the URL"
            ) from None
        if r.status_code in (401, 403):
            raise ConfigError(
                f"model.api_key_env: the server refused the key (HTTP {r.status_code}): "
                f"{redact(r.text, key)}"
            )
        if r.status_code == 200:
            try:
                served = [m.get("id") for m in r.json().get("data", [])]
            except (ValueError, AttributeError):
                served = []
            if served and spec.name not in served:
                shown = ", ".join(map(str, served[:10])) + (" ..." if len(served) > 10 else "")
                raise ConfigError(
                    f"model.name: {spec.name!r} is not served at {spec.base_url} (served: {shown})"
                )
        return spec.name or ""

    def __init__(
        self,
        engine: str = ENGINE.name,
        prefill_chunk_size: int = ENGINE.prefill_chunk_size,
        vllm: dict | None = None,
        **kwargs: Any,
    ) -> None:
        """engine, prefill_chunk_size and vllm are the local engines' settings (the engine
        group): unused here. The defaults are the schema's (a test or benchmark may pass none)."""
        import httpx

        super().__init__(EndpointSpec.from_kwargs(kwargs))
        check(self.spec)
        self.concurrency = max(1, int(self.spec.concurrency))
        self.max_retries = max(0, int(self.spec.max_retries))
        self.backoff = float(self.spec.retry_backoff)  # s, the first wait; it doubles each attempt
        self.url = self.spec.base_url.rstrip("/") + "/chat/completions"
        self._key = api_key(self.spec)  # held in memory only
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.loop = asyncio.new_event_loop()
        limits = httpx.Limits(max_connections=self.concurrency)
        self.client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(float(self.spec.request_timeout)), limits=limits
        )
        self.usage = Usage(
            price_per_1m_input=self.spec.price_per_1m_input,
            price_per_1m_output=self.spec.price_per_1m_output,
        )
        self.choices = {
            "reason": f"model.backend=openai: {self.spec.base_url} generates",
            "base_url": self.spec.base_url,
            "served_model": self.spec.name,
            "concurrency": self.concurrency,
        }
        self.bar: Any = None  # a tqdm bar whose description shows the cost (attach)
        self.logprobs = True  # ask for logprobs; False once the server refused them
        self.tokenizer = None  # the server tokenizes; prompts are the chat messages
        log.info("endpoint %s, model %s, %d in flight", self.url, self.spec.name, self.concurrency)

    # --- what the pipeline calls -------------------------------------------------------------

    def encode(self, messages: list[dict[str, str]], stage: str = "") -> list[dict[str, str]]:
        """The prompt as sent: the chat messages (the server renders and counts them)."""
        return [dict(m) for m in messages]

    def set_seed(self, seed: int) -> None:
        """Each request carries generation.seed; nothing to set here."""

    def auto_batch_size(self, max_new_tokens: int = 0, max_prompt_tokens: int = 1024) -> int:
        """generation.batch_size=auto: the requests in flight (model.concurrency)."""
        return self.concurrency

    def attach(self, progress: Any) -> None:
        """Show the run's cost in the progress bar's description as results come in."""
        self.bar = progress

    def generate(
        self, batch: list[list[dict[str, str]]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        """One reply per message list, in order; `concurrency` requests in flight."""
        each = params if isinstance(params, list) else [params] * len(batch)
        if len(each) != len(batch):
            raise ValueError(f"{len(each)} GenParams for {len(batch)} prompts")
        gate = asyncio.Semaphore(self.concurrency)

        async def one(msgs: list[dict[str, str]], p: GenParams) -> Generated:
            async with gate:
                return await self.request(msgs, p)

        async def run_all() -> list[Generated]:
            return list(
                await asyncio.gather(*(one(m, p) for m, p in zip(batch, each, strict=True)))
            )

        return self.loop.run_until_complete(run_all())

    def streamer(self, batch_size: int | None = None) -> Stream:
        return Stream(self)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    # --- one request ---------------------------------------------------------------------------

    async def request(self, messages: list[dict[str, str]], p: GenParams) -> Generated:
        """POST with retries; a request that fails for good is a Generated with `failed` set."""
        import httpx

        body = request_body(self.spec, messages, p, self.logprobs)
        attempt = 0
        refused: str | None = None  # why the server refused the request with logprobs
        while True:
            status: int | None = None
            wait: float | None = None
            try:
                r = await self.client.post(self.url, json=body)
                status = r.status_code
                if status == 200:
                    out, usage = parse_reply(r.json(), p)
                    self.count(usage)
                    if refused is not None:  # answered without them: none asked again
                        self.no_logprobs(refused)
                    return out
                why = f"HTTP {status}: {redact(r.text, self._key)}"
                if status in REFUSED_STATUS and body.pop("logprobs", None) is not None:
                    # perhaps a server that does not take logprobs: once more without, at once
                    refused = why
                    log.info("sent again without logprobs: %s", why)
                    continue
                retry = status in RETRY_STATUS
                wait = retry_after(r.headers.get("retry-after"))
            except httpx.TimeoutException as e:
                why, retry = f"timeout ({type(e).__name__})", True
            except httpx.TransportError as e:
                if attempt >= self.max_retries:
                    raise EndpointDown(
                        f"model.base_url: the server at {self.spec.base_url} stopped answering "
                        f"({type(e).__name__}: {redact(str(e), self._key)}) after "
                        f"{attempt + 1} attempts; rows so far are kept: start it again and rerun "
                        "the same command to resume"
                    ) from None
                why, retry = f"{type(e).__name__}: {redact(str(e), self._key)}", True
            except (ValueError, KeyError, TypeError) as e:  # a 200 whose body is not a reply
                why, retry = f"bad response body ({type(e).__name__})", False
            if not retry or attempt >= self.max_retries:
                self.usage.failed += 1
                log.warning("request failed after %d attempts: %s", attempt + 1, why)
                return Generated(
                    text="",
                    tokens=0,
                    finished=False,
                    failed=why,
                    status=status,
                    attempts=attempt + 1,
                )
            delay = backoff(self.backoff, attempt) if wait is None else min(wait, BACKOFF_CAP)
            attempt += 1
            self.usage.retries += 1
            log.info("retry %d/%d in %.2f s: %s", attempt, self.max_retries, delay, why)
            await asyncio.sleep(delay)

    def no_logprobs(self, why: str) -> None:
        """The server refused a request for its logprobs and answered it without: no request
        asks for them again, replies carry logprob None (summary.json's notes say why)."""
        if not self.logprobs:
            return
        self.logprobs = False
        note = f"the server refused logprobs ({why}); replies carry none (logprob null)"
        log.warning(note)
        self.notes.append(note)

    def count(self, usage: dict[str, int]) -> None:
        u = self.usage
        u.requests += 1
        u.prompt_tokens += usage["prompt_tokens"]
        u.completion_tokens += usage["completion_tokens"]
        u.cached_tokens += usage["cached_tokens"]
        cost = u.cost_usd
        if self.bar is not None and cost is not None:
            self.bar.set_description(f"generate ${cost:.4f}", refresh=False)


def backoff(base: float, attempt: int) -> float:
    """Exponential backoff with jitter: base * 2**attempt, drawn in its upper half (s)."""
    d = min(BACKOFF_CAP, base * 2**attempt)
    return d / 2 + random.uniform(0, d / 2)


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds (the HTTP-date form is not used by these servers)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Stream:
    """The pipeline's continuous feed (run_stream): `add` starts a request, `step` runs the
    event loop until at least one is done and returns every finished one by key."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.max_in_flight = backend.concurrency  # model.concurrency, not the batch size
        self.tasks: dict[asyncio.Task, int] = {}

    def add(self, key: int, ids: list[dict[str, str]], params: GenParams) -> None:
        self.tasks[self.b.loop.create_task(self.b.request(ids, params))] = key

    def step(self) -> list[tuple[int, Generated]]:
        if not self.tasks:
            return []
        done, _ = self.b.loop.run_until_complete(
            asyncio.wait(list(self.tasks), return_when=asyncio.FIRST_COMPLETED)
        )
        finished = sorted((self.tasks.pop(t), t) for t in done)
        try:
            return [(key, t.result()) for key, t in finished]
        except EndpointDown:
            self.abort()
            raise

    def abort(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.tasks:
            self.b.loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
        self.tasks.clear()

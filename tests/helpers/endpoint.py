"""A real OpenAI-compatible server for the endpoint tests, and a real proxy in front of it.

`serve()` starts `transformers serve` (transformers' own OpenAI-compatible server, extra
`transformers[serving]`) on the tiny local model at a free port. `FaultProxy` is a small HTTP
proxy (stdlib ThreadingHTTPServer) that forwards every request to that server and, by a plan,
answers some attempts itself with a 429 or a 500 instead: the retries are tried against real
sockets and a real server, nothing in the HTTP client is mocked.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(model: Path, log: Path, timeout: float = 180) -> Iterator[str]:
    """`transformers serve MODEL` on 127.0.0.1:<free port>, CPU, one thread, started the way
    benchmarks/endpoint.py starts it (the GPU session's `vllm serve` takes the same path); yields
    the API root (http://127.0.0.1:PORT/v1). The served model's name is str(model)."""
    from benchmarks.endpoint import start_server

    with start_server("transformers", model, log, timeout) as (url, _):
        yield url


@dataclass
class Seen:
    """One request as the proxy saw it."""

    at: float  # time.perf_counter() on arrival (s)
    path: str
    body: str  # sha1 of the request body: one prompt's attempts share it
    attempt: int  # 1 for the first time this body came, 2 for its first retry, ...
    status: int  # what the proxy answered
    authorization: str | None
    usage: dict | None = None  # the server's usage of a forwarded 200


# plan(ordinal of the distinct body, attempt, authorization) -> (status, extra headers) to
# answer instead of forwarding, (STALL, {"seconds": s}) to answer only after s seconds (a slow
# server: past the client's timeout), (DROP, {}) to hang up, or None to forward; a status
# answer's headers may hold DELAY: seconds to wait before answering (not sent)
Plan = Callable[[int, int, str | None], tuple[int, dict[str, str]] | None]
STALL = 0
DROP = -1  # (DROP, {}): close the connection without a reply (a server that went away)
DELAY = "x-proxy-delay"  # (429, {DELAY: "0.3"}): a rate limiter that takes 0.3 s to say no


@dataclass
class FaultProxy:
    upstream: str  # http://host:port of the real server
    plan: Plan | None = None
    seen: list[Seen] = field(default_factory=list)
    max_in_flight: int = 0  # most chat requests open at once (requests)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._order: dict[str, int] = {}  # body hash -> ordinal of its first arrival (1, 2, ...)
        self._tries: dict[str, int] = {}
        self._open = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def chats(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith("/chat/completions")]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def _forward(self, body: bytes) -> None:
                auth = self.headers.get("authorization")
                digest = hashlib.sha1(body).hexdigest()
                with proxy._lock:
                    ordinal = proxy._order.setdefault(digest, len(proxy._order) + 1)
                    attempt = proxy._tries[digest] = proxy._tries.get(digest, 0) + 1
                    proxy._open += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy._open)
                at = time.perf_counter()
                try:
                    chat = self.path.endswith("/chat/completions")
                    fault = proxy.plan(ordinal, attempt, auth) if (proxy.plan and chat) else None
                    if fault is not None and fault[0] == STALL:  # too slow: the client goes
                        with proxy._lock:  # seen now: the test may be over when the sleep ends
                            proxy.seen.append(Seen(at, self.path, digest, attempt, STALL, auth))
                        time.sleep(float(fault[1]["seconds"]))
                        with contextlib.suppress(OSError):
                            self._reply(504, b"{}", {})
                        return
                    if fault is not None and fault[0] == DROP:
                        with proxy._lock:
                            proxy.seen.append(Seen(at, self.path, digest, attempt, DROP, auth))
                        self.close_connection = True
                        return
                    if fault is not None:
                        status, headers = fault[0], dict(fault[1])
                        time.sleep(float(headers.pop(DELAY, 0)))
                        # a careless upstream that echoes the request's credentials in its error
                        reply = json.dumps({"error": f"injected {status}; you sent {auth}"})
                        self._reply(status, reply.encode(), headers)
                        usage = None
                    else:
                        status, reply, usage = self._upstream(body)
                        self._reply(status, reply, {})
                    with proxy._lock:
                        proxy.seen.append(Seen(at, self.path, digest, attempt, status, auth, usage))
                finally:
                    with proxy._lock:
                        proxy._open -= 1

            def _upstream(self, body: bytes) -> tuple[int, bytes, dict | None]:
                up = urlsplit(proxy.upstream)
                c = http.client.HTTPConnection(up.hostname, up.port, timeout=300)
                headers = {"content-type": self.headers.get("content-type", "application/json")}
                c.request(self.command, self.path, body=body or None, headers=headers)
                r = c.getresponse()
                data = r.read()
                usage = None
                if r.status == 200 and self.path.endswith("/chat/completions"):
                    usage = json.loads(data).get("usage")
                return r.status, data, usage

            def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

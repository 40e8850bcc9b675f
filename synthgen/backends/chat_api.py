"""The OpenAI chat completions API's wire format, as the endpoint backend (openai.py) speaks
it: the request body for one prompt, and the reply read back as a local backend gives it
(text with vLLM's stop string put back, tokens, finished, the mean logprob of its tokens).

Pure functions over dicts, apart from the backend's sending, retrying and keys, so they are
tested without a server.
"""

from __future__ import annotations

import re
from typing import Any

from synthgen.backends.base import BaseSpec, Generated, GenParams, mean_logprob


def request_body(
    spec: BaseSpec, messages: list[dict[str, str]], p: GenParams, logprobs: bool = True
) -> dict:
    """The chat completion request: greedy is temperature 0; sampling sends temperature and
    top_p. min_tokens (a benchmark's forced length) is vLLM's extension, sent only when set.
    logprobs: ask for each reply token's log-probability (the sampled token's only)."""
    body: dict[str, Any] = {
        "model": spec.name,
        "messages": messages,
        "max_tokens": int(p.max_new_tokens),
        "temperature": float(p.temperature) if p.do_sample else 0.0,
        "seed": int(p.seed),
    }
    if logprobs:
        body["logprobs"] = True
    if p.do_sample:
        body["top_p"] = float(p.top_p)
    if p.stop_strings:
        body["stop"] = list(p.stop_strings)[:4]  # the OpenAI API takes at most 4
    if p.min_new_tokens:
        body["min_tokens"] = int(p.min_new_tokens)
    return body


def parse_reply(data: dict[str, Any], p: GenParams) -> tuple[Generated, dict[str, int]]:
    """The reply as a local backend gives it, and the response's usage."""
    choice = (data.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    stop = choice.get("stop_reason")  # vLLM: which stop string ended it
    if isinstance(stop, str) and stop in p.stop_strings and not text.endswith(stop):
        text += stop
    u = data.get("usage") or {}
    usage = {
        "prompt_tokens": int(u.get("prompt_tokens") or 0),
        "completion_tokens": int(u.get("completion_tokens") or 0),
        "cached_tokens": int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
    }
    out = Generated(
        text=text,
        tokens=usage["completion_tokens"],
        finished=choice.get("finish_reason") != "length",
        cached_tokens=usage["cached_tokens"],
        logprob=reply_logprob(choice, text),
    )
    return out, usage


def reply_logprob(choice: dict[str, Any], text: str = "") -> float | None:
    """The mean log-probability of a reply's tokens as the server reports them, or None.

    Chat API: choice["logprobs"]["content"] = [{"token", "logprob", ...}, ...]; completions API:
    choice["logprobs"]["token_logprobs"] = [float, ...] beside "tokens". A reply that ended on
    an end-of-turn token may carry that token last (vLLM does; OpenAI does not): a last token
    that is empty, or a special token such as <|im_end|> or </s> the text does not end with,
    is left out when finish_reason is "stop". Any position without a number: None (unknown).
    """
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    content = lp.get("content")
    if isinstance(content, list):
        tokens = [e.get("token") if isinstance(e, dict) else None for e in content]
        values = [e.get("logprob") if isinstance(e, dict) else None for e in content]
    elif isinstance(lp.get("token_logprobs"), list):
        values = list(lp["token_logprobs"])
        tokens = lp.get("tokens") if isinstance(lp.get("tokens"), list) else []
        tokens = [*tokens, *[None] * (len(values) - len(tokens))][: len(values)]
    else:
        return None
    if values and choice.get("finish_reason") == "stop" and end_token(tokens[-1], text):
        values = values[:-1]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return mean_logprob([float(v) for v in values])


def end_token(token: Any, text: str) -> bool:
    """A reported token that is an end of turn rather than part of the text."""
    if not isinstance(token, str):
        return False
    special = re.fullmatch(r"<[^<>\s]+>", token) is not None and not text.endswith(token)
    return token == "" or special

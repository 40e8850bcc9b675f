"""The `model` group: one spec per kind of backend, each with only its own keys.

BaseSpec holds the keys every backend reads; ModelSpec adds those of a model loaded here
(model.backend=transformers, unsloth), EndpointSpec those of a served one (model.backend=openai).
Each backend names its spec (`Backend.Spec`, synthgen/backends/); each option of conf/model/
names the spec's schema first (`model_local_schema` or `model_endpoint_schema`) and keeps only
what differs. Not frozen: a backend records what it decided at load (load_in_4bit=auto).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from synthgen.errors import ConfigError
from synthgen.schema.fields import empty, key


@dataclass
class BaseSpec:
    """The keys of the `model` group every backend reads."""

    name_or_path: str = key(
        MISSING,
        "what is loaded and what every row and its key name as the model: a hub id (org/name), "
        "a local folder with config.json, pypi:<package>, or an endpoint's served model",
    )
    backend: str = key(
        "transformers",
        "generation backend, a name in BACKENDS of synthgen/backends/__init__.py: transformers "
        "(vllm.LLM or transformers' engines) | unsloth (Unsloth's loader) | openai (an "
        "OpenAI-compatible endpoint)",
    )
    name: str | None = key(
        None, "short name for run dirs and reports; model.backend=openai: the served model"
    )
    max_seq_length: int = key(4096, "prompt + new tokens must fit (tokens)")
    system_role: bool = key(
        True,
        "the chat template has a system role; false puts the system text atop the user turn "
        "(Gemma, Mistral) or before the prompt (plain)",
    )
    prompt_format: str = key(
        "chat",
        "chat = the tokenizer's (an endpoint: the server's) chat template | plain = the prompt "
        "text as it is, then the stage's cue (a base model; not with model.backend=openai)",
    )
    stop_strings: dict[str, list[str]] = empty(
        dict,
        "per stage (question, answer, judge): the reply ends right after the first of these "
        "(strings, kept in the text); a base model never stops on its own",
    )
    max_new_tokens: dict[str, int] = empty(
        dict,
        "per stage (question, answer, judge): most new tokens of a reply (tokens), below "
        "generation.max_new_tokens",
    )
    hub_id: str | None = key(None, "the publisher's hub id (informational)")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> BaseSpec:
        """The spec from the model group's keys; a key this backend does not have is refused
        (ConfigError naming it and the backend)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names - {"_target_"})
        if unknown:
            backend = kwargs.get("backend")
            raise ConfigError(
                f"model.{unknown[0]}: not a key of model.backend={backend} "
                f"({cls.__name__}: {', '.join(sorted(names))})"
            )
        return cls(**{k: v for k, v in kwargs.items() if k in names})


@dataclass
class ModelSpec(BaseSpec):
    """A model loaded here (model.backend=transformers, unsloth): weights, precision, the
    tokenizer's template and what ends a turn."""

    load_in_4bit: bool | str = key(
        False,
        "true | false | auto = bf16 when the bf16 weights and a working KV cache fit the GPU, "
        "else 4-bit (bitsandbytes; CUDA only); summary.json says which ran and why",
    )
    dtype: str = key(
        "auto",
        "auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float16 | float32",
    )
    chat_template: str | None = key(
        None,
        "null = the tokenizer's own; a Jinja string; or an Unsloth template name (llama-3.1, "
        "needs model.backend=unsloth)",
    )
    eos_tokens: list[str] = empty(
        list, "tokens that end a turn, besides the tokenizer's eos (strings)"
    )
    cues: dict[str, str] = empty(
        dict,
        "prompt_format=plain: text after the prompt that the model continues, per stage "
        "(question, answer, judge)",
    )
    unsloth_4bit_id: str | None = key(
        None,
        "Unsloth's pre-quantized 4-bit repo, where one exists: as model.name_or_path, a smaller "
        "download for a small card",
    )


@dataclass
class EndpointSpec(BaseSpec):
    """A served model (model.backend=openai, backends/openai.py): the endpoint, the key's
    variable, the prices."""

    base_url: str | None = key(
        None,
        "the server's OpenAI API root (URL ending in /v1), e.g. http://localhost:8000/v1",
    )
    api_key_env: str | None = key(
        None,
        "the NAME of the environment variable holding the API key (sent as a bearer token, "
        "never written anywhere); null = a server without a key",
    )
    price_per_1m_input: float | None = key(
        None,
        "USD per million prompt tokens; with price_per_1m_output, the run's cost goes into "
        "summary.json; null = no cost (a local server)",
    )
    price_per_1m_output: float | None = key(None, "USD per million completion tokens")
    concurrency: int = key(
        8,
        "requests in flight at once (requests); each finished one is "
        "written at once and its answer sent",
    )
    max_retries: int = key(
        4,
        "further attempts after a 408/429/500/502/503/504, a timeout or a "
        "dropped connection (attempts); then the slot is a reject request_failed",
    )
    request_timeout: float = key(
        120,
        "most seconds one request may take, reply included (s); past it "
        "the attempt counts as failed",
    )
    retry_backoff: float = key(
        1.0,
        "first wait before a retry (s); it doubles each attempt, drawn in "
        "its upper half (jitter), at most 60 s; a 429's Retry-After wins",
    )


SPECS: dict[str, type[BaseSpec]] = {  # the model group's schemas: model_<kind>_schema
    "local": ModelSpec,
    "endpoint": EndpointSpec,
}

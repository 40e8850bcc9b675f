"""What every backend shares: the model spec, generation parameters, results, the tokenizer."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class OutOfMemory(RuntimeError):
    """A backend ran out of accelerator memory on a batch; the caller halves the batch."""


@dataclass
class ModelSpec:
    """The `model` config group, as the backend constructor receives it."""

    name_or_path: str
    backend: str = "transformers"
    name: str | None = None
    load_in_4bit: bool | str = False  # true | false | "auto" (decided at load: plan.choose_4bit)
    max_seq_length: int = 4096  # tokens, prompt + new tokens
    dtype: str = "auto"
    chat_template: str | None = None
    system_role: bool = True
    eos_tokens: list[str] = field(default_factory=list)
    # chat: the tokenizer's chat template; plain: the prompt text as it is (a base model)
    prompt_format: str = "chat"
    cues: dict[str, str] = field(default_factory=dict)  # plain: text after the prompt, per stage
    stop_strings: dict[str, list[str]] = field(default_factory=dict)  # per stage: end the reply
    max_new_tokens: dict[str, int] = field(default_factory=dict)  # per stage: a lower cap
    hub_id: str | None = None  # the publisher's hub id (informational)
    unsloth_4bit_id: str | None = None  # Unsloth's pre-quantized 4-bit repo, where one exists
    # model.backend=openai (backends/openai.py): the endpoint, the key's variable, the prices
    base_url: str | None = None  # the server's OpenAI API root, e.g. http://localhost:8000/v1
    api_key_env: str | None = None  # NAME of the environment variable holding the key
    price_per_1m_input: float | None = None  # USD per million prompt tokens
    price_per_1m_output: float | None = None  # USD per million completion tokens

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> ModelSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names - {"_target_"})
        if unknown:
            raise TypeError(f"unknown model keys: {', '.join(unknown)}")
        return cls(**{k: v for k, v in kwargs.items() if k in names})


@dataclass
class GenParams:
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    temperature: float = 0.7
    top_p: float = 0.9
    do_sample: bool = False
    seed: int = 0
    # the reply ends right after the first of these, which stays in its text (transformers'
    # stop_strings; a vLLM backend gets the same with include_stop_str_in_output=True)
    stop_strings: list[str] = field(default_factory=list)


def per_row(
    params: GenParams | list[GenParams], n: int
) -> tuple[GenParams, list[tuple[int, int]] | None]:
    """A batch's shared settings, and each row's (min, max) new tokens where rows carry their own.

    Rows may differ in their lengths only (benchmarks force each row's length); the shared
    max_new_tokens is the longest row's, so the batch runs until that row ends.
    """
    if not isinstance(params, list):
        return params, None
    if len(params) != n:
        raise ValueError(f"{len(params)} GenParams for {n} prompts")
    first = params[0]
    sampling = {(p.do_sample, p.temperature, p.top_p, p.seed) for p in params}
    if len(sampling) > 1:
        raise ValueError("prompts of one batch must share do_sample, temperature, top_p and seed")
    limits = [(p.min_new_tokens, p.max_new_tokens) for p in params]
    shared = dataclasses.replace(first, max_new_tokens=max(m for _, m in limits), min_new_tokens=0)
    return shared, limits


@dataclass
class Generated:
    text: str  # the new tokens only, decoded, special tokens removed
    tokens: int  # new tokens, end-of-turn token included (tokens)
    finished: bool  # True: stopped at an end-of-turn token; False: cut at max_new_tokens
    cached_tokens: int = 0  # prompt tokens whose KV came from a cached prefix (prefix reuse)
    # an endpoint request that failed for good (backends/openai.py): why, its HTTP status, and
    # how many attempts it took; the pipeline records it as a reject `request_failed`
    failed: str | None = None
    status: int | None = None
    attempts: int = 1


def load_tokenizer(spec: ModelSpec) -> Any:
    """Tokenizer with left padding and the configured chat template; loads no weights."""
    from transformers import AutoTokenizer

    from synthgen.backends import models

    tok = AutoTokenizer.from_pretrained(models.resolve(spec.name_or_path))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if spec.chat_template and "{" not in spec.chat_template:  # an Unsloth template name
        try:
            from unsloth.chat_templates import get_chat_template

            tok = get_chat_template(tok, chat_template=spec.chat_template)
        except Exception as e:  # no unsloth (or no GPU) here: say so, keep the tokenizer's own
            log.warning(
                "Unsloth template %r not applied (%s); showing the tokenizer's own template",
                spec.chat_template,
                type(e).__name__,
            )
    elif spec.chat_template:
        tok.chat_template = spec.chat_template
    if spec.prompt_format == "chat" and not getattr(tok, "chat_template", None):
        raise ValueError(
            f"model.chat_template: {spec.name_or_path} has no chat template; set a Jinja "
            "string, or model.prompt_format=plain for a base model"
        )
    return tok


def render(
    tokenizer: Any, msgs: list[dict[str, str]], spec: ModelSpec | None = None, stage: str = ""
) -> str:
    """The prompt exactly as the model sees it.

    chat: the chat template with the generation prompt. plain (a base model, no template):
    BOS, the messages' text, then the stage's cue (`model.cues`, e.g. "\n\nQuestion:"), which
    makes the model write a question instead of continuing the instructions.
    """
    if spec is not None and spec.prompt_format == "plain":
        text = "\n\n".join(m["content"] for m in msgs)
        return (getattr(tokenizer, "bos_token", None) or "") + text + spec.cues.get(stage, "")
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def encode(
    tokenizer: Any, msgs: list[dict[str, str]], spec: ModelSpec | None = None, stage: str = ""
) -> list[int]:
    # the rendered text already holds BOS where the model wants one
    return tokenizer(render(tokenizer, msgs, spec, stage), add_special_tokens=False)["input_ids"]


def eos_ids(tokenizer: Any, spec: ModelSpec, generation_config: Any = None) -> list[int]:
    """Token ids that end a turn: tokenizer eos, generation_config eos, model.eos_tokens."""
    ids: list[int] = []
    candidates: list[Any] = [tokenizer.eos_token_id]
    if generation_config is not None:
        candidates.append(generation_config.eos_token_id)
    for c in candidates:
        ids.extend(c if isinstance(c, list | tuple) else [c])
    for t in spec.eos_tokens or []:
        tid = tokenizer.convert_tokens_to_ids(t)
        if tid is not None and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return sorted({int(i) for i in ids if i is not None})

"""What every backend shares: the contract (`BaseBackend`, `Engine`, `Streamer`), the model
specs (synthgen/schema/model.py, named here), generation parameters, results, the tokenizer
and its chat template."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from synthgen.errors import ConfigError
from synthgen.schema import Generation as GEN  # generation.*'s defaults
from synthgen.schema.model import BaseSpec, EndpointSpec, ModelSpec  # noqa: F401 (the specs)

log = logging.getLogger(__name__)


@dataclass
class GenParams:
    """One stage's generation settings; the defaults are the schema's generation.*."""

    max_new_tokens: int = GEN.max_new_tokens
    min_new_tokens: int = GEN.min_new_tokens
    temperature: float = GEN.temperature
    top_p: float = GEN.top_p
    do_sample: bool = GEN.do_sample
    seed: int = GEN.seed
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
    # the reply's mean token log-probability (nats/token, <= 0): see `mean_logprob`
    logprob: float | None = None


def mean_logprob(values: list[float]) -> float | None:
    """Generated.logprob from the per-token log-probabilities of a reply's tokens.

    Definition, shared by every backend: the mean over the tokens the reply's text was decoded
    from of ln p(token | prompt, tokens before it), in nats per token, under the model's
    distribution as it comes out of the model: softmax of the raw logits, before any
    temperature, top-p or min-new-tokens processing (greedy and sampled replies are scored
    alike). The end-of-turn token that ended a reply is not counted, nor anything after it
    (padding, a forced end token); a reply cut by a stop string counts every token up to the
    one that completed the stop string. None where unknown: no tokens (an empty reply), or an
    engine or server that gives no log-probabilities. (InPars keeps generated queries by this
    number: a low one marks a reply the model itself found unlikely.)

    Where it comes from: the continuous engine and the dynamic/static engines gather it while
    decoding (no extra forward; in the latter a logits processor that the model's own
    generation_config adds, e.g. a repetition_penalty, runs before it), vLLM from
    SamplingParams(logprobs=0) (its default raw_logprobs mode), an endpoint from the logprobs
    its server reports (None where it reports none, as transformers serve does).
    """
    if not values:
        return None
    return float(sum(values) / len(values))


@dataclass
class Usage:
    """What a server says it did, summed over the session (summary.json this_session.usage);
    a backend that generates here counts its tokens in the run's own Stats and has none."""

    requests: int = 0  # requests answered (HTTP 200)
    failed: int = 0  # requests that failed for good, recorded as rejects request_failed
    retries: int = 0  # attempts repeated after a 429, a 5xx, a timeout or a dropped connection
    prompt_tokens: int = 0  # prompt tokens, as the server counts them (tokens)
    completion_tokens: int = 0  # generated tokens, as the server counts them (tokens)
    cached_tokens: int = 0  # prompt tokens the server took from its prefix cache (tokens)
    price_per_1m_input: float | None = None  # USD per million prompt tokens
    price_per_1m_output: float | None = None  # USD per million completion tokens

    @property
    def cost_usd(self) -> float | None:
        if self.price_per_1m_input is None or self.price_per_1m_output is None:
            return None
        return (
            self.prompt_tokens * self.price_per_1m_input
            + self.completion_tokens * self.price_per_1m_output
        ) / 1e6

    def to_dict(self) -> dict[str, Any]:
        cost = self.cost_usd
        return {**dataclasses.asdict(self), "cost_usd": None if cost is None else round(cost, 6)}

    SUMMED: ClassVar[tuple[str, ...]] = (
        "requests",
        "failed",
        "retries",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
    )

    @classmethod
    def total(cls, sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Usage summed over a run dir's sessions (a resumed run has several); None if no
        session had any. The cost sums each session's own (prices may differ between them)."""
        used = [s["usage"] for s in sessions if s.get("usage")]
        if not used:
            return None
        out: dict[str, Any] = {k: sum(int(u.get(k, 0)) for u in used) for k in cls.SUMMED}
        costs = [u["cost_usd"] for u in used if u.get("cost_usd") is not None]
        out["cost_usd"] = round(sum(costs), 6) if costs else None
        return out


# a prompt as the backend takes it: token ids (a local model), or the chat messages themselves
# (an endpoint: the server applies its own chat template)
Prompt = list[int] | list[dict[str, str]]


def load_tokenizer(spec: ModelSpec) -> Any:
    """The tokenizer of `spec` through `use_chat_template` (not strict); loads no weights."""
    from transformers import AutoTokenizer

    from synthgen.backends import models

    tok = AutoTokenizer.from_pretrained(models.resolve(spec.name_or_path))
    return use_chat_template(tok, spec, strict=False)


def use_chat_template(tokenizer: Any, spec: ModelSpec, strict: bool = True) -> Any:
    """The tokenizer as every engine needs it: the configured chat template, left padding (the
    new tokens line up on the right), a pad token.

    model.chat_template is a Jinja string, or an Unsloth template name (`llama-3.1`, ...)
    applied with unsloth.chat_templates.get_chat_template as the notebook did. strict=False
    (no unsloth here, e.g. a dry run showing prompts): a name that cannot be applied is
    logged and the tokenizer's own template kept.
    """
    template = spec.chat_template
    if template and "{" not in template:  # an Unsloth template name
        try:
            from unsloth.chat_templates import get_chat_template

            tokenizer = get_chat_template(tokenizer, chat_template=template)
        except Exception as e:
            if strict:
                raise
            log.warning(
                "Unsloth template %r not applied (%s); showing the tokenizer's own template",
                template,
                type(e).__name__,
            )
    elif template:
        tokenizer.chat_template = template
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"model.chat_template: {spec.name_or_path} has no chat template; set a Jinja "
            "string, or model.prompt_format=plain for a base model"
        )
    return tokenizer


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


def generation_config(name_or_path: str) -> Any:
    """The model's generation_config.json (its end-of-turn ids, for eos_ids), or None where it
    has none."""
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(name_or_path)
    except Exception:
        return None


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


# --- the backend contract --------------------------------------------------------------------


class Streamer(Protocol):
    """A continuous-batching engine: requests go in one at a time, finished ones come out.

    It may also say how many requests it wants in flight (`max_in_flight`, an int): the
    continuous engine keeps a queue beyond its slots to refill them from. With `priorities`
    true, add() also takes `priority=` (lower first: answers before queued questions); with
    `kv_tokens` (and `kv_block`), the feed keeps the requests in flight within that KV cache
    (synthgen.generate.feed.run_stream).
    """

    def add(self, key: int, ids: list[int], params: GenParams) -> None: ...

    def step(self) -> list[tuple[int, Generated]]:
        """Advance the engine; the requests that finished, by key. Raises OutOfMemory."""
        ...

    def abort(self) -> None:
        """Drop every request in flight (after OutOfMemory; they are submitted again)."""
        ...


@runtime_checkable
class Engine(Protocol):
    """What the transformers and unsloth backends run batches on, one per engine (the `engine`
    group): batched.Batched (dynamic, static), continuous.SlotEngine, vllm_engine.VllmRunner. An
    engine that also feeds continuously offers a Streamer through its backend's `streamer()`.
    """

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]: ...

    def close(self) -> None: ...


class BaseBackend:
    """What the pipeline and the benchmarks use of a backend (`model._target_`), with defaults
    for what a backend may leave out.

    A backend calls `super().__init__(spec)` first, sets `tokenizer` and `engine`, and
    implements `generate`. hydra builds it with the model keys plus `engine`,
    `prefill_chunk_size` and `vllm` (the engine group's keys, schema.engine.backend_kwargs), which
    it may ignore.
    """

    name: ClassVar[str] = "base"  # model.backend
    engine: str = "default"  # the generation engine in use: summary.json's engine.name
    # new tokens a reply may take: the run sets generation.max_new_tokens here before its
    # first batch; the continuous engine sizes its KV slots with it (tokens)
    reserve_new: int = 256
    spec: BaseSpec
    Spec: ClassVar[type[BaseSpec]] = ModelSpec  # this backend's model keys (from_kwargs)
    tokenizer: Any  # apply_chat_template, __call__ -> {"input_ids"}, decode
    usage: Usage | None = None  # a server's own token counts and cost (an endpoint's)

    @staticmethod
    def check(spec: BaseSpec, runtime: bool = True) -> None:
        """Cheap checks before anything loads (config.check); raises ConfigError('key: why').

        runtime=False (dry runs): skip what only matters where the model runs (CUDA, ...).
        """

    @staticmethod
    def prepare(spec: BaseSpec) -> str:
        """Before the corpus is read: find or fetch what the model needs, fail fast if it is
        not there; returns where the weights are."""
        return spec.name_or_path

    def __init__(self, spec: BaseSpec) -> None:
        self.spec = spec
        self.notes: list[str] = []  # what the engine chose or gave up: summary.json
        self.choices: dict[str, Any] = {}  # why this engine, and so on: summary.json

    def set_seed(self, seed: int) -> None:
        """Seed the backend's sampling (generation.seed); nothing to seed by default."""

    def encode(self, messages: list[dict[str, str]], stage: str = "") -> Prompt:
        """The prompt `generate` takes for these chat messages: by default their token ids,
        the model's chat template applied (plain prompts: the stage's cue)."""
        return encode(self.tokenizer, messages, self.spec, stage)

    def attach(self, progress: Any) -> None:
        """The run's progress bar (tqdm), before the first batch: a backend may show what it
        counts there (an endpoint: the cost so far); nothing by default."""

    def auto_batch_size(self, max_new_tokens: int, max_prompt_tokens: int = 1024) -> int:
        """generation.batch_size=auto: the rows (or requests in flight) that fit."""
        return 8

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        """One batch of token-id prompts -> one result each; raises OutOfMemory (the caller
        halves the batch)."""
        raise NotImplementedError(f"{type(self).__name__}.generate")

    def streamer(self, batch_size: int | None = None) -> Streamer | None:
        """Continuous feeding (feed.run_stream) where the engine offers it, else None:
        batches through `generate`."""
        return None

    def close(self) -> None:
        """Let go of the model and the accelerator memory; called once, also after errors."""

"""Config checks that run before anything heavy: each failure is one line naming the key."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.errors import ConfigError

# keys whose change changes the rows; resuming a run dir with other values is refused
ROW_KEYS = (
    "corpus",
    "cleaning",
    "chunking",
    "dedup",
    "keywords",
    "prompt",
    "model",
    "filters",
    "generation.max_new_tokens",
    "generation.min_new_tokens",
    "generation.temperature",
    "generation.top_p",
    "generation.do_sample",
    "generation.seed",
)
STAGES = ("question", "answer", "judge")  # the stages model.cues/stop_strings/max_new_tokens name
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# where an endpoint is and what it costs, and where the chunks are read from: not what the rows
# are (a server moved to another port resumes; so does a run switched to corpus.prepared)
NOT_ROW_KEYS = (
    "corpus.prepared",
    "model.base_url",
    "model.api_key_env",
    "model.price_per_1m_input",
    "model.price_per_1m_output",
)
# keys added after run dirs were made: a saved config (or a prepared corpus's keys) without one
# was made with this value, so it resumes as before; settings and checks default to it too
ADDED_KEYS: dict[str, Any] = {
    "chunking.bounds": "drop",  # before it, every chunk outside the bounds was dropped
    # the gates on a row's signals (filters/default.yaml): before them, none of them ran
    "filters.embed_signals": False,
    "filters.round_trip.enabled": False,
    "filters.round_trip.retriever": "bm25",
    "filters.round_trip.k": 1,
    "filters.logprob.enabled": False,
    "filters.logprob.min": -1.5,
    "filters.easiness.enabled": False,
    "filters.easiness.max_similarity": 0.9,
}
BOUNDS = ("drop", "fit")  # chunking.bounds


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _int(cfg: DictConfig, key: str, low: int) -> int:
    v = OmegaConf.select(cfg, key)
    _need(
        isinstance(v, int) and not isinstance(v, bool) and v >= low,
        f"{key}: must be an integer >= {low}, got {v!r}",
    )
    return v


def check(cfg: DictConfig) -> None:
    """Validate a `task=generate` config. Touches the file system, never loads a model."""
    from synthgen.dataset import filters, judge_spec

    check_numbers(cfg)
    check_engine(cfg)
    check_sampling(cfg)
    check_corpus(cfg)
    check_chunking(cfg)
    check_prompt(cfg)
    filters.check(cfg)  # numbers in range, patterns compile
    judge_spec.check(cfg)  # the judge stage's items, prompt and settings
    check_model(cfg)


def check_numbers(cfg: DictConfig) -> None:
    """num_rows, shard.*, and the generation's token counts, seed and batch size."""
    _int(cfg, "num_rows", 1)
    count = _int(cfg, "shard.count", 1)
    index = OmegaConf.select(cfg, "shard.index")
    _need(
        isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count,
        f"shard.index: must be an integer in 0..{count - 1} (shard.count={count}), got {index!r}",
    )
    _int(cfg, "generation.max_new_tokens", 1)
    _int(cfg, "generation.min_new_tokens", 0)
    _int(cfg, "generation.seed", 0)
    bs = cfg.generation.batch_size
    _need(
        bs == "auto" or (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1),
        f"generation.batch_size: must be an integer >= 1 or 'auto', got {bs!r}",
    )
    _need(
        cfg.generation.min_new_tokens <= cfg.generation.max_new_tokens,
        "generation.min_new_tokens: must be <= generation.max_new_tokens",
    )


def check_sampling(cfg: DictConfig) -> None:
    """generation.prefill_chunk_size, temperature and top_p."""
    _int(cfg, "generation.prefill_chunk_size", 0)
    t, p = cfg.generation.temperature, cfg.generation.top_p
    _need(isinstance(t, int | float) and t > 0, f"generation.temperature: must be > 0, got {t!r}")
    _need(
        isinstance(p, int | float) and 0 < p <= 1, f"generation.top_p: must be in (0, 1], got {p!r}"
    )


def check_chunking(cfg: DictConfig) -> None:
    """chunking.* (tokens and characters) and keywords.*."""
    ch = cfg.chunking
    _int(cfg, "chunking.chunk_size", 16)
    _int(cfg, "chunking.chunk_overlap", 0)
    _need(ch.chunk_overlap < ch.chunk_size, "chunking.chunk_overlap: must be < chunking.chunk_size")
    _int(cfg, "chunking.min_chars", 0)
    _int(cfg, "chunking.max_chars", 1)
    _need(
        ch.min_chars < ch.max_chars,
        f"chunking.min_chars: must be < chunking.max_chars ({ch.min_chars} >= {ch.max_chars})",
    )
    bounds = added(cfg, "chunking.bounds")
    _need(
        bounds in BOUNDS,
        f"chunking.bounds: must be one of {', '.join(BOUNDS)}, got {bounds!r}",
    )
    _need(
        cfg.keywords.match in ("word", "substring"),
        f"keywords.match: must be 'word' or 'substring', got {cfg.keywords.match!r}",
    )
    _need(OmegaConf.is_list(cfg.keywords.words), "keywords.words: must be a list of words")


def check_prompt(cfg: DictConfig) -> None:
    """prompt.*: the templates hold their placeholders; reply mode and answer agree."""
    from synthgen.dataset import prompting

    pr = cfg.prompt
    _need(bool(pr.get("name")), "prompt.name: must be set (it goes into every row and its key)")
    _need(
        isinstance(pr.question, str) and "{context}" in pr.question,
        "prompt.question: the template must contain {context}",
    )
    reply = prompting.reply_mode(pr)
    _need(
        reply in prompting.REPLIES,
        f"prompt.reply: must be one of {', '.join(prompting.REPLIES)}, got {reply!r}",
    )
    answer = pr.get("answer")
    if reply == "qa_pair":
        _need(
            answer is None,
            "prompt.answer: must be null with prompt.reply=qa_pair (its reply holds the answer)",
        )
        _need(
            not prompting.asks_for_list(pr.question),
            "prompt.question: {num_questions} asks for a list; prompt.reply=qa_pair wants one pair",
        )
    else:  # null: questions only, no answer stage
        _need(
            answer is None
            or (isinstance(answer, str) and "{context}" in answer and "{question}" in answer),
            "prompt.answer: the template must contain {context} and {question} "
            "(or be null: questions only)",
        )
    check_examples(pr)
    check_prompt_stops(pr)
    _int(cfg, "prompt.questions_per_chunk", 1)
    if pr.questions_per_chunk > 1 and not prompting.asks_for_list(pr.question):
        _need(
            bool(pr.get("followup")) and "{previous}" in pr.followup,
            "prompt.followup: questions_per_chunk > 1 needs a followup template with {previous} "
            "(or {num_questions} in prompt.question)",
        )


def check_prompt_stops(pr: DictConfig) -> None:
    """prompt.stop_strings: per stage (question, answer), a list of strings."""
    stops = pr.get("stop_strings")
    if stops is None:
        return
    _need(OmegaConf.is_dict(stops), "prompt.stop_strings: must be a map of stage -> strings")
    for stage, v in stops.items():
        _need(
            stage in ("question", "answer"),
            f"prompt.stop_strings: unknown stage {stage!r} (question, answer)",
        )
        _need(
            OmegaConf.is_list(v) and all(isinstance(x, str) and x for x in v),
            f"prompt.stop_strings.{stage}: must be a list of non-empty strings",
        )


def check_examples(pr: DictConfig) -> None:
    """prompt.examples, prompt.example: worked examples load, and the templates show them."""
    from synthgen.dataset import prompting

    try:
        examples = prompting.load_examples(pr.get("examples"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    templates = {k: pr.get(k) for k in ("question", "answer") if isinstance(pr.get(k), str)}
    shown = [k for k, t in templates.items() if "{examples}" in t]
    if not examples:
        _need(
            not shown,
            f"prompt.{shown[0] if shown else ''}: has {{examples}} but prompt.examples is empty",
        )
        return
    _need(
        "question" in shown,
        "prompt.question: prompt.examples is set but the template has no {examples}",
    )
    _need(
        "answer" not in templates or "answer" in shown,
        "prompt.answer: prompt.examples is set but the template has no {examples}",
    )
    example = pr.get("example")
    _need(
        isinstance(example, str) and "{passage}" in example and "{question}" in example,
        "prompt.example: the template of one example must contain {passage} and {question}",
    )
    if "{answer}" in example:
        missing = [i for i, e in enumerate(examples) if not (e.answer or "").strip()]
        _need(
            not missing,
            f"prompt.examples[{missing[0] if missing else 0}].answer: prompt.example shows "
            "{answer}, so every example needs one",
        )


def check_model(cfg: DictConfig) -> None:
    """model.*: a known backend, a model that can be found, per-stage maps, the backend's own
    check (its `check(spec, runtime)`, where it has one)."""
    from synthgen import backends

    m = cfg.model
    names = backends.available()
    _need(
        m.backend in names,
        f"model.backend: unknown backend {m.backend!r} (available: {', '.join(names)})",
    )
    _int(cfg, "model.max_seq_length", 16)
    _need(
        cfg.generation.max_new_tokens < m.max_seq_length,
        "generation.max_new_tokens: must be < model.max_seq_length",
    )
    if m.backend == "openai":  # a served model's name, no files here: check_endpoint looks
        check_endpoint(cfg)
    else:
        check_model_path(str(m.name_or_path))
    fmt = m.get("prompt_format", "chat")
    _need(fmt in ("chat", "plain"), f"model.prompt_format: must be chat or plain, got {fmt!r}")
    _need(
        fmt == "chat" or not m.get("chat_template"),
        "model.chat_template: unused with model.prompt_format=plain; set it to null",
    )
    check_per_stage(m)
    _need(
        fmt == "plain" or not m.get("cues"),
        "model.cues: only used with model.prompt_format=plain (a chat template has its own)",
    )
    check_target(cfg)


def check_model_path(path: str) -> None:
    """model.name_or_path: a pypi: package, a model folder, or a hub id like org/name."""
    local = Path(path).expanduser()
    if path.startswith("pypi:"):  # a model shipped as a Python package (synthgen/models.py)
        from synthgen.backends import models

        why = models.check_pypi(path[len("pypi:") :])
        if why:
            raise ConfigError(why)
    elif local.exists():
        _need(
            (local / "config.json").is_file(),
            f"model.name_or_path: {path} has no config.json (not a model folder)",
        )
    elif path.startswith(("/", ".", "~")) or "\\" in path:
        raise ConfigError(f"model.name_or_path: folder {path!r} not found")
    else:
        _need(
            bool(_HUB_ID.match(path)),
            f"model.name_or_path: {path!r} is neither a folder nor a hub id like org/name",
        )


def check_per_stage(m: DictConfig) -> None:
    """model.cues, model.stop_strings, model.max_new_tokens: maps from a stage to a value
    (judge: the judge stage, dataset/judge.py; where it is missing, judge_spec.stage_value says)."""
    for name, want in (
        ("cues", "a string"),
        ("stop_strings", "a list of strings"),
        ("max_new_tokens", "an integer >= 1"),
    ):
        per_stage = m.get(name) or {}
        _need(
            OmegaConf.is_dict(per_stage) or per_stage == {},
            f"model.{name}: must map a stage ({', '.join(STAGES)}) to {want}",
        )
        for stage, v in per_stage.items():
            _need(
                stage in STAGES,
                f"model.{name}: unknown stage {stage!r} ({', '.join(STAGES)})",
            )
            if name == "cues":
                ok = isinstance(v, str)
            elif name == "stop_strings":
                ok = OmegaConf.is_list(v) and all(isinstance(x, str) and x for x in v)
            else:
                ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
            _need(ok, f"model.{name}.{stage}: must be {want}, got {v!r}")


def check_target(cfg: DictConfig) -> None:
    """model._target_ imports, its ModelSpec builds, and the backend's own check passes."""
    m = cfg.model
    target = m.get("_target_")
    if not target:
        return
    module, _, attr = str(target).rpartition(".")
    try:
        backend_cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"model._target_: cannot import {target} ({e})") from None
    from synthgen.backends.base import BaseBackend, ModelSpec

    if not (isinstance(backend_cls, type) and issubclass(backend_cls, BaseBackend)):
        raise ConfigError(
            f"model._target_: {target} is not a backend (a subclass of "
            "synthgen.backends.base.BaseBackend)"
        )
    spec_kwargs = {k: v for k, v in OmegaConf.to_container(m, resolve=True).items()}
    try:
        spec = ModelSpec.from_kwargs(spec_kwargs)
    except TypeError as e:
        raise ConfigError(f"model: {e}") from None
    backend_cls.check(spec, runtime=not cfg.get("dry_run", False))  # raises ConfigError


def check_endpoint(cfg: DictConfig) -> None:
    """generation.* of model.backend=openai (the model.* keys are its backend's check)."""
    _int(cfg, "generation.concurrency", 1)
    _int(cfg, "generation.max_retries", 0)
    for key in ("generation.request_timeout", "generation.retry_backoff"):
        v = OmegaConf.select(cfg, key)
        _need(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
            f"{key}: must be a number of seconds >= 0, got {v!r}",
        )
    _need(cfg.generation.request_timeout > 0, "generation.request_timeout: must be > 0 seconds")


def check_engine(cfg: DictConfig) -> None:
    """generation.engine and the vllm keys; engine=vllm needs vLLM and CUDA (not in dry runs)."""
    from synthgen.backends import plan
    from synthgen.backends.vllm_engine import FEEDS

    engine = cfg.generation.engine
    _need(
        engine in plan.ENGINES,
        f"generation.engine: must be one of {', '.join(plan.ENGINES)}, got {engine!r}",
    )
    util = OmegaConf.select(cfg, "generation.gpu_memory_utilization", default=0.9)
    _need(
        isinstance(util, int | float) and not isinstance(util, bool) and 0 < util <= 1,
        f"generation.gpu_memory_utilization: must be in (0, 1], got {util!r}",
    )
    prefix = OmegaConf.select(cfg, "generation.enable_prefix_caching", default=True)
    _need(
        isinstance(prefix, bool),
        f"generation.enable_prefix_caching: must be true or false, got {prefix!r}",
    )
    feed = OmegaConf.select(cfg, "generation.vllm_feed", default="stream")
    _need(feed in FEEDS, f"generation.vllm_feed: must be one of {', '.join(FEEDS)}, got {feed!r}")
    if engine == "vllm" and not cfg.get("dry_run", False):
        has_vllm = importlib.util.find_spec("vllm") is not None
        missing = plan.vllm_missing(has_vllm, has_vllm and plan.cuda_available())
        _need(missing is None, f"generation.engine: vllm {missing}")


def _share(cfg: DictConfig, key: str) -> None:
    v = OmegaConf.select(cfg, key)
    _need(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
        f"{key}: must be a number in [0, 1], got {v!r}",
    )


def check_corpus(cfg: DictConfig) -> None:
    """corpus.encoding and corpus.leak, the cleaning and dedup groups (each key may be absent
    in a config written before they existed: then its default holds)."""
    import codecs

    enc = OmegaConf.select(cfg, "corpus.encoding", default="auto")
    if enc != "auto":
        try:
            codecs.lookup(str(enc))
        except LookupError:
            raise ConfigError(
                f"corpus.encoding: unknown encoding {enc!r} (auto, or a codec such as "
                "utf-8, cp1252, latin-1, cp1250)"
            ) from None
    leak = OmegaConf.select(cfg, "corpus.leak", default="warn")
    _need(
        leak in ("drop", "warn", "fail"),
        f"corpus.leak: must be drop, warn or fail, got {leak!r}",
    )
    if OmegaConf.select(cfg, "cleaning") is not None:
        _need(
            OmegaConf.is_list(cfg.cleaning.apply_to)
            and all(str(e).startswith(".") for e in cfg.cleaning.apply_to),
            "cleaning.apply_to: must be a list of file extensions such as [.pdf]",
        )
        for key in ("page_numbers", "furniture", "hyphenation", "whitespace"):
            v = cfg.cleaning[key]
            _need(isinstance(v, bool), f"cleaning.{key}: must be true or false, got {v!r}")
        _int(cfg, "cleaning.edge_lines", 0)
        _int(cfg, "cleaning.min_pages", 2)
        _share(cfg, "cleaning.min_share")
        _share(cfg, "cleaning.similarity")
    if OmegaConf.select(cfg, "dedup") is not None:
        _int(cfg, "dedup.shingle_words", 1)
        _int(cfg, "dedup.min_shingles", 1)
        for key in ("leak_threshold", "chunk_threshold", "question_threshold"):
            _share(cfg, f"dedup.{key}")


def row_config(cfg: DictConfig) -> dict[str, Any]:
    """The parts of the config that decide the rows, flattened to dotted keys."""
    out: dict[str, Any] = {}
    for key in ROW_KEYS:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
        _flatten(key, value, out)
    for key in NOT_ROW_KEYS:
        out.pop(key, None)
    return backfill(out)


def added(cfg: DictConfig, key: str) -> Any:
    """A key of ADDED_KEYS from the config, or the value in force before the key existed."""
    return OmegaConf.select(cfg, key, default=ADDED_KEYS[key])


def backfill(flat: dict[str, Any], within: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dotted keys (row_config's, a prepared corpus's) with each of ADDED_KEYS they lack (only
    those in `within`, if given) at its old value: a run dir saved before it compares equal."""
    old = {k: v for k, v in ADDED_KEYS.items() if within is None or k in within}
    return {**old, **flat}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def row_config_diff(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """First differing key as 'key: old -> new' (values shortened), or None."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            a = _short(old[key]) if key in old else "(not set)"
            b = _short(new[key]) if key in new else "(not set)"
            return f"{key}: {a} -> {b}"
    return None


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."

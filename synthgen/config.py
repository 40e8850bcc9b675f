"""Config checks that run before anything heavy: each failure is one line naming the key."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.checks import integer, need
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


def check(cfg: DictConfig) -> None:
    """Validate a `task=generate` config. Touches the file system, never loads a model."""
    from synthgen import backends
    from synthgen.backends import plan
    from synthgen.gates import filters, judge_spec

    check_numbers(cfg)
    plan.check_engine(cfg)  # generation.engine and the vllm keys
    check_sampling(cfg)
    check_corpus(cfg)
    check_chunking(cfg)
    check_prompt(cfg)
    filters.check(cfg)  # numbers in range, patterns compile
    judge_spec.check(cfg)  # the judge stage's items, prompt and settings
    backends.check(cfg)  # model.*, and the backend's own check


def check_numbers(cfg: DictConfig) -> None:
    """num_rows, shard.*, and the generation's token counts, seed and batch size."""
    integer(cfg, "num_rows", 1)
    count = integer(cfg, "shard.count", 1)
    index = OmegaConf.select(cfg, "shard.index")
    need(
        isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count,
        f"shard.index: must be an integer in 0..{count - 1} (shard.count={count}), got {index!r}",
    )
    integer(cfg, "generation.max_new_tokens", 1)
    integer(cfg, "generation.min_new_tokens", 0)
    integer(cfg, "generation.seed", 0)
    bs = cfg.generation.batch_size
    need(
        bs == "auto" or (isinstance(bs, int) and not isinstance(bs, bool) and bs >= 1),
        f"generation.batch_size: must be an integer >= 1 or 'auto', got {bs!r}",
    )
    need(
        cfg.generation.min_new_tokens <= cfg.generation.max_new_tokens,
        "generation.min_new_tokens: must be <= generation.max_new_tokens",
    )


def check_sampling(cfg: DictConfig) -> None:
    """generation.prefill_chunk_size, temperature and top_p."""
    integer(cfg, "generation.prefill_chunk_size", 0)
    t, p = cfg.generation.temperature, cfg.generation.top_p
    need(isinstance(t, int | float) and t > 0, f"generation.temperature: must be > 0, got {t!r}")
    need(
        isinstance(p, int | float) and 0 < p <= 1, f"generation.top_p: must be in (0, 1], got {p!r}"
    )


def check_chunking(cfg: DictConfig) -> None:
    """chunking.* (tokens and characters) and keywords.*."""
    ch = cfg.chunking
    integer(cfg, "chunking.chunk_size", 16)
    integer(cfg, "chunking.chunk_overlap", 0)
    need(ch.chunk_overlap < ch.chunk_size, "chunking.chunk_overlap: must be < chunking.chunk_size")
    integer(cfg, "chunking.min_chars", 0)
    integer(cfg, "chunking.max_chars", 1)
    need(
        ch.min_chars < ch.max_chars,
        f"chunking.min_chars: must be < chunking.max_chars ({ch.min_chars} >= {ch.max_chars})",
    )
    bounds = added(cfg, "chunking.bounds")
    need(
        bounds in BOUNDS,
        f"chunking.bounds: must be one of {', '.join(BOUNDS)}, got {bounds!r}",
    )
    need(
        cfg.keywords.match in ("word", "substring"),
        f"keywords.match: must be 'word' or 'substring', got {cfg.keywords.match!r}",
    )
    need(OmegaConf.is_list(cfg.keywords.words), "keywords.words: must be a list of words")


def check_prompt(cfg: DictConfig) -> None:
    """prompt.*: the templates hold their placeholders; reply mode and answer agree."""
    from synthgen.generate import prompting

    pr = cfg.prompt
    need(bool(pr.get("name")), "prompt.name: must be set (it goes into every row and its key)")
    need(
        isinstance(pr.question, str) and "{context}" in pr.question,
        "prompt.question: the template must contain {context}",
    )
    reply = prompting.reply_mode(pr)
    need(
        reply in prompting.REPLIES,
        f"prompt.reply: must be one of {', '.join(prompting.REPLIES)}, got {reply!r}",
    )
    answer = pr.get("answer")
    if reply == "qa_pair":
        need(
            answer is None,
            "prompt.answer: must be null with prompt.reply=qa_pair (its reply holds the answer)",
        )
        need(
            not prompting.asks_for_list(pr.question),
            "prompt.question: {num_questions} asks for a list; prompt.reply=qa_pair wants one pair",
        )
    else:  # null: questions only, no answer stage
        need(
            answer is None
            or (isinstance(answer, str) and "{context}" in answer and "{question}" in answer),
            "prompt.answer: the template must contain {context} and {question} "
            "(or be null: questions only)",
        )
    check_examples(pr)
    check_prompt_stops(pr)
    integer(cfg, "prompt.questions_per_chunk", 1)
    if pr.questions_per_chunk > 1 and not prompting.asks_for_list(pr.question):
        need(
            bool(pr.get("followup")) and "{previous}" in pr.followup,
            "prompt.followup: questions_per_chunk > 1 needs a followup template with {previous} "
            "(or {num_questions} in prompt.question)",
        )


def check_prompt_stops(pr: DictConfig) -> None:
    """prompt.stop_strings: per stage (question, answer), a list of strings."""
    stops = pr.get("stop_strings")
    if stops is None:
        return
    need(OmegaConf.is_dict(stops), "prompt.stop_strings: must be a map of stage -> strings")
    for stage, v in stops.items():
        need(
            stage in ("question", "answer"),
            f"prompt.stop_strings: unknown stage {stage!r} (question, answer)",
        )
        need(
            OmegaConf.is_list(v) and all(isinstance(x, str) and x for x in v),
            f"prompt.stop_strings.{stage}: must be a list of non-empty strings",
        )


def check_examples(pr: DictConfig) -> None:
    """prompt.examples, prompt.example: worked examples load, and the templates show them."""
    from synthgen.generate import prompting

    try:
        examples = prompting.load_examples(pr.get("examples"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    templates = {k: pr.get(k) for k in ("question", "answer") if isinstance(pr.get(k), str)}
    shown = [k for k, t in templates.items() if "{examples}" in t]
    if not examples:
        need(
            not shown,
            f"prompt.{shown[0] if shown else ''}: has {{examples}} but prompt.examples is empty",
        )
        return
    need(
        "question" in shown,
        "prompt.question: prompt.examples is set but the template has no {examples}",
    )
    need(
        "answer" not in templates or "answer" in shown,
        "prompt.answer: prompt.examples is set but the template has no {examples}",
    )
    example = pr.get("example")
    need(
        isinstance(example, str) and "{passage}" in example and "{question}" in example,
        "prompt.example: the template of one example must contain {passage} and {question}",
    )
    if "{answer}" in example:
        missing = [i for i, e in enumerate(examples) if not (e.answer or "").strip()]
        need(
            not missing,
            f"prompt.examples[{missing[0] if missing else 0}].answer: prompt.example shows "
            "{answer}, so every example needs one",
        )


def _share(cfg: DictConfig, key: str) -> None:
    v = OmegaConf.select(cfg, key)
    need(
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
    need(
        leak in ("drop", "warn", "fail"),
        f"corpus.leak: must be drop, warn or fail, got {leak!r}",
    )
    if OmegaConf.select(cfg, "cleaning") is not None:
        need(
            OmegaConf.is_list(cfg.cleaning.apply_to)
            and all(str(e).startswith(".") for e in cfg.cleaning.apply_to),
            "cleaning.apply_to: must be a list of file extensions such as [.pdf]",
        )
        for key in ("page_numbers", "furniture", "hyphenation", "whitespace"):
            v = cfg.cleaning[key]
            need(isinstance(v, bool), f"cleaning.{key}: must be true or false, got {v!r}")
        integer(cfg, "cleaning.edge_lines", 0)
        integer(cfg, "cleaning.min_pages", 2)
        _share(cfg, "cleaning.min_share")
        _share(cfg, "cleaning.similarity")
    if OmegaConf.select(cfg, "dedup") is not None:
        integer(cfg, "dedup.shingle_words", 1)
        integer(cfg, "dedup.min_shingles", 1)
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

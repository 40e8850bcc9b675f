"""Config checks that run before anything heavy: each failure is one line naming the key."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from synthgen import schema
from synthgen.checks import integer, need
from synthgen.errors import ConfigError
from synthgen.schema.fields import check_types


def check(cfg: DictConfig) -> None:
    """Validate a `task=generate` config. Touches the file system, never loads a model."""
    from synthgen import backends
    from synthgen.backends import plan
    from synthgen.gates import filters, judge_spec

    schema.check(cfg)  # every key of the schema's groups: set, of its type, in range
    plan.check_engine(cfg)  # engine=vllm needs vLLM and CUDA
    check_prompt(cfg)
    filters.check(cfg)  # numbers in range, patterns compile
    judge_spec.check(cfg)  # the judge stage's items, prompt and settings
    backends.check(cfg)  # model.*, and the backend's own check


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
    check_types(cfg, schema.Prompt, "prompt.")  # the rest: each key of its schema type


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

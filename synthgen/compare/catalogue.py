"""What a comparison report shows: each metric's key, title, kind and meaning.

The report's tables, plots and definitions sheet all read this one list, so a metric is added
in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from synthgen.embed.retrieval import AT, HITS

PARSE_REASONS = (
    "empty",
    "no_question_mark",
    "missing_from_list",
)  # output the parser could not use


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    kind: str  # count | rate (0-1, shown as %) | score (0-1) | tokens | seconds | speed | text
    help: str
    plot: bool = True
    better: str | None = None  # "higher" | "lower" | None (neither is better by itself)


METRICS = [
    Metric("rows_train", "rows (train)", "count", "Q/A rows in train.jsonl.", False, "higher"),
    Metric("rows_val", "rows (val)", "count", "Q/A rows in val.jsonl.", False, "higher"),
    Metric(
        "reject_rate",
        "rejected slots",
        "rate",
        "Share of question slots (chunk x question index, both splits) that gave no row, "
        "for any reason (rejected.jsonl).",
        better="lower",
    ),
    Metric(
        "duplicate_rate",
        "duplicate questions",
        "rate",
        "Share of slots whose question repeated an earlier question of its split "
        "(same text after case, accents and punctuation are folded).",
        better="lower",
    ),
    Metric(
        "parse_failure_rate",
        "parse failures",
        "rate",
        "Share of slots whose question or answer the parser could not use "
        f"(reasons {', '.join(PARSE_REASONS)}).",
        better="lower",
    ),
    Metric(
        "gate_reject_rate",
        "rejected by quality gates",
        "rate",
        "Share of slots whose question or answer a quality gate dropped (conf/filters: prompt "
        "echo, repetition, not a question, meta reference, refusal, length, ungrounded, "
        "near-duplicate answer); per reason in the table 'Rejects by reason'.",
        better="lower",
    ),
    Metric(
        "q_tokens_mean",
        "question tokens (mean)",
        "tokens",
        "Generated tokens per question (rows' tokens.question; a list prompt's call is "
        "shared evenly by its questions_per_chunk questions).",
    ),
    Metric("q_tokens_p50", "question tokens (p50)", "tokens", "Median of the above.", False),
    Metric("q_tokens_p90", "question tokens (p90)", "tokens", "90th percentile.", False),
    Metric(
        "a_tokens_mean",
        "answer tokens (mean)",
        "tokens",
        "Generated tokens per answer (rows' tokens.answer).",
    ),
    Metric("a_tokens_p50", "answer tokens (p50)", "tokens", "Median of the above.", False),
    Metric("a_tokens_p90", "answer tokens (p90)", "tokens", "90th percentile.", False),
    Metric(
        "distinct_2",
        "distinct-2 of questions",
        "score",
        "Distinct word pairs / all word pairs over all questions of the run (lower-cased "
        "words); 1.0 = no pair repeats, low = formulaic questions.",
        better="higher",
    ),
    Metric(
        "distinct_3",
        "distinct-3 of questions",
        "score",
        "The same for word triples.",
        better="higher",
    ),
    Metric(
        "copy_rate",
        "questions copying the chunk",
        "rate",
        "Share of questions sharing compare.copy_span consecutive words with their chunk "
        "verbatim: easy lexical matches for a retriever.",
        better="lower",
    ),
    Metric(
        "same_start_rate",
        "questions sharing an opening",
        "rate",
        "Share of questions whose first three words open another question of the run too.",
        better="lower",
    ),
    Metric("top_start", "most common opening", "text", "First three words, share.", False),
    Metric(
        "kw_chunks",
        "keywords in selected chunks",
        "rate",
        "Share of the run's keywords (keywords.words, its match rule) found in the chunks "
        "it asked about; n/a without keywords.",
    ),
    Metric(
        "kw_questions",
        "keywords in questions",
        "rate",
        "Share of the run's keywords found in its questions.",
    ),
    Metric(
        "tokens_per_second",
        "generation tokens/s",
        "speed",
        "Output tokens / generate seconds over all sessions of the run (summary.json).",
        better="higher",
    ),
    Metric(
        "cost_usd",
        "endpoint cost (USD)",
        "text",
        "Prompt and completion tokens the endpoint counted, at model.price_per_1m_input/output, "
        "all sessions (summary.json generation.usage); n/a for a local model or without prices.",
        False,
    ),
    Metric(
        "generate_seconds",
        "generation time (s)",
        "seconds",
        "Seconds inside generate calls, all sessions.",
        better="lower",
    ),
    Metric(
        "wall_seconds",
        "wall time (s)",
        "seconds",
        "Seconds of the run's last session, read to write (summary.json seconds.total).",
        better="lower",
    ),
]
for _m in ("bm25", "embedding"):
    _who = "BM25 (bm25s)" if _m == "bm25" else "the embedding model (compare.embedder)"
    METRICS += [
        Metric(
            f"{_m}_hit@{k}",
            f"{_m} hit@{k} (val)",
            "score",
            f"Share of val questions whose own chunk is in the top {k} of ALL val chunks "
            f"by {_who}. Lower = harder questions.",
            plot=k in (1, 5),
        )
        for k in HITS
    ]
    METRICS += [
        Metric(
            f"{_m}_mrr@{AT}",
            f"{_m} MRR@{AT} (val)",
            "score",
            f"Mean of 1/rank of the question's own chunk (0 past rank {AT}) by {_who}. "
            "Lower = harder questions.",
        ),
        Metric(f"{_m}_ndcg@{AT}", f"{_m} NDCG@{AT} (val)", "score", "NDCG of the same.", False),
    ]
METRIC_BY_KEY = {m.key: m for m in METRICS}


def fmt(value: Any, kind: str) -> str:
    """A value as the report shows it: rates in %, scores to 3 places, n/a for nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "score":
        return f"{value:.3f}"
    if kind in ("tokens", "seconds", "speed"):
        return f"{value:.1f}"
    return str(value)

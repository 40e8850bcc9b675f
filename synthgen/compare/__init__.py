"""Compare run dirs: which config made the better dataset.

Every number is recomputed from the run dirs' own files (rows, rejects, corpus, summary and
config), so a comparison can be redone at any time and checked by hand.

  catalogue   the metrics a report shows, with their meaning
  options     the compare config node
  runs        one run dir loaded, and its per-run numbers
  text        pure text measures (distinct-n, copying, openings, keywords)
  difficulty  retrieval difficulty of the val questions (BM25, the embedder)
  verdict     the plain sentences and the side-by-side examples
  report      compare.{json,xlsx,md,html} and the plots
  task        task=compare (build_report, compare)

Run discovery (what a run dir is, its label) is synthgen.rundir.discovery's.
"""

from __future__ import annotations

from synthgen.compare.catalogue import METRIC_BY_KEY, METRICS, PARSE_REASONS, Metric
from synthgen.compare.difficulty import CachedEncoder, load_embedder, retrieval_scores, val_task
from synthgen.compare.options import Options
from synthgen.compare.runs import (
    IGNORED_KEYS,
    Run,
    assign_labels,
    config_diff,
    flatten,
    load_run,
    question_tokens,
    reject_shares,
    run_metrics,
    split_counts,
)
from synthgen.compare.task import build_report, compare
from synthgen.compare.text import (
    copies_span,
    distinct_n,
    keyword_coverage,
    length_stats,
    ngrams,
    openings,
    words,
)
from synthgen.compare.verdict import examples, verdict
from synthgen.embed.retrieval import AT, HITS
from synthgen.rundir import RUN_FILES, SPLITS, is_run_dir
from synthgen.rundir.discovery import find_runs

__all__ = [
    "AT",
    "HITS",
    "IGNORED_KEYS",
    "METRICS",
    "METRIC_BY_KEY",
    "PARSE_REASONS",
    "RUN_FILES",
    "SPLITS",
    "CachedEncoder",
    "Metric",
    "Options",
    "Run",
    "assign_labels",
    "build_report",
    "compare",
    "config_diff",
    "copies_span",
    "distinct_n",
    "examples",
    "find_runs",
    "flatten",
    "is_run_dir",
    "keyword_coverage",
    "length_stats",
    "load_embedder",
    "load_run",
    "ngrams",
    "openings",
    "question_tokens",
    "reject_shares",
    "retrieval_scores",
    "run_metrics",
    "split_counts",
    "val_task",
    "verdict",
    "words",
]

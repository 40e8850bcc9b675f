"""Compare run dirs: which config made the better dataset.

Every number is recomputed from the run dirs' own files (train/val.jsonl, rejected.jsonl,
*_corpus.json, summary.json, config.yaml), so a comparison can be redone at any time and
checked by hand. `synthgen.compare.report` writes the result as compare.xlsx, .md, .html and plots.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from synthgen.config import ConfigError
from synthgen.dataset import filters, prompting, selection, writing
from synthgen.embed import retrieval

log = logging.getLogger(__name__)

RUN_FILES = ("summary.json", "config.yaml")  # a folder holding both is a run dir
SPLITS = ("train", "val")
HITS = (1, 5, 10)  # hit@k reported for retrieval
AT = 10  # MRR@AT and NDCG@AT
PARSE_REASONS = (
    "empty",
    "no_question_mark",
    "missing_from_list",
)  # output the parser could not use
IGNORED_KEYS = ("compare.",)  # config keys that never change a dataset
_WORD = re.compile(r"\w+")


# --- what a report shows -----------------------------------------------------------------------


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


@dataclass
class Options:
    """The compare config node (conf/compare/default.yaml), with its defaults."""

    embedder: str | None = "BAAI/bge-small-en-v1.5"
    query_prefix: str = ""
    device: str | None = None
    batch_size: int = 32
    copy_span: int = 8
    examples: int = 20

    @classmethod
    def from_cfg(cls, node: Any) -> Options:
        if node is None:
            return cls()
        raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        opts = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        for key, low in (("batch_size", 1), ("copy_span", 2), ("examples", 0)):
            v = getattr(opts, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"compare.{key}: must be an integer >= {low}, got {v!r}")
        if opts.embedder is not None and not str(opts.embedder).strip():
            raise ConfigError("compare.embedder: give a model name or path, or null to skip")
        return opts


# --- finding and loading runs ------------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in RUN_FILES)


def find_runs(paths: Iterable[str | Path], missing_ok: bool = False) -> list[Path]:
    """Run dirs in the order given; a folder that is not a run dir (a sweep) expands to every
    run dir below it, sorted by path. The one place that decides what a run is."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_dir():
            if missing_ok:
                continue
            raise ConfigError(f"compare.runs: folder {str(path)!r} not found")
        found = [path] if is_run_dir(path) else _runs_below(path)
        if not found and not missing_ok:
            raise ConfigError(
                f"compare.runs: no run dir (a folder with {' + '.join(RUN_FILES)}) in {str(path)!r}"
            )
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(f)
    return out


def _runs_below(root: Path) -> list[Path]:
    """Run dirs below a sweep dir; a shard is part of a run, so its merged dir stands for it."""
    from synthgen.rundir import is_shard

    found = []
    for dirpath, dirnames, _ in os.walk(root):
        d = Path(dirpath)
        if d != root and is_run_dir(d):
            if not is_shard(d):
                found.append(d)
            dirnames.clear()  # a run dir holds no runs
            continue
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
    return sorted(found)


@dataclass
class Run:
    """One run dir's files, loaded once."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]  # dotted keys
    rows: dict[str, list[dict]] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)
    corpus: dict[str, dict[str, str]] = field(default_factory=dict)
    label: str = ""
    load_error: str | None = None

    @property
    def status(self) -> str:
        return "unreadable" if self.load_error else str(self.summary.get("status", "unknown"))

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    @property
    def error(self) -> str | None:
        last = self.summary.get("last_attempt_error")  # a relaunch refused; its data still stand
        return (
            self.load_error
            or self.summary.get("error")
            or (f"last attempt: {last}" if last else None)
        )


def load_run(path: Path) -> Run:
    """A broken file makes the run 'unreadable' in the report; the other runs go on."""
    run = Run(path, {}, {})
    try:
        run.summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        cfg = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=False)
        run.config = flatten(cfg)
        if run.summary.get("status") != "complete":
            return run
        run.rows = {s: writing.read_jsonl(path / f"{s}.jsonl") for s in SPLITS}
        run.rejected = writing.read_jsonl(path / "rejected.jsonl")
        for s in SPLITS:
            f = path / f"{s}_corpus.json"
            run.corpus[s] = json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}
    except (OSError, ValueError) as e:  # JSONDecodeError and corrupt JSONL are ValueErrors
        run.load_error = f"{type(e).__name__}: {' '.join(str(e).split())}"
    return run


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def assign_labels(runs: list[Run]) -> None:
    """Short names: the run dir relative to the runs' common folder, minus the overrides
    that all runs share (a sweep's dirs are named by overrides: 'num_rows=4,prompt=critic')."""
    if not runs:
        return
    paths = [r.path.resolve() for r in runs]
    common = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0].parent
    names = [p.relative_to(common).as_posix() if p != common else p.name for p in paths]
    parts = [n.split(",") for n in names]
    shared = set.intersection(*(set(x) for x in parts)) if len(parts) > 1 else set()
    short = [",".join(x for x in ps if x not in shared) for ps in parts]
    labels = short if all(short) and len(set(short)) == len(short) else names
    if len(set(labels)) < len(labels):
        labels = [f"{name} #{i + 1}" for i, name in enumerate(labels)]
    for r, label in zip(runs, labels, strict=True):
        r.label = label


def config_diff(runs: list[Run]) -> dict[str, list[Any]]:
    """Config keys whose value is not the same in every run: key -> one value per run."""
    keys = sorted(set().union(*(r.config for r in runs)))
    out = {}
    for k in keys:
        if k.startswith(IGNORED_KEYS):
            continue
        values = [r.config.get(k, "(not set)") for r in runs]
        if any(v != values[0] for v in values[1:]):
            out[k] = values
    return out


# --- text measures -----------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def ngrams(ws: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams / all n-grams over the texts (None without any n-gram)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else None


def copies_span(question: str, chunk: str, span: int) -> bool:
    """True when `span` consecutive words of the question appear in the chunk verbatim."""
    q = ngrams(words(question), span)
    return bool(q) and not set(q).isdisjoint(ngrams(words(chunk), span))


def openings(texts: list[str]) -> tuple[float | None, str | None]:
    """(share of texts whose first three words open another text too, 'most common opening
    (its share)')."""
    if not texts:
        return None, None
    opens = [tuple(w[:3]) if len(w := words(t)) >= 3 else None for t in texts]
    counts = Counter(o for o in opens if o)
    shared = sum(1 for o in opens if o and counts[o] > 1) / len(texts)
    top, n = counts.most_common(1)[0] if counts else ((), 0)
    return shared, f"{' '.join(top)} ({n / len(texts):.0%})" if n > 1 else "none repeats"


def length_stats(values: list[float]) -> dict[str, float | None]:
    """mean, p50, p90 (numpy's linear interpolation)."""
    import numpy as np

    if not values:
        return {"mean": None, "p50": None, "p90": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"mean": float(np.mean(values)), "p50": float(p50), "p90": float(p90)}


def keyword_coverage(keywords: list[str], match: str, texts: list[str]) -> float | None:
    """Share of keywords found (by the run's own match rule) in at least one of the texts."""
    keywords = [str(w) for w in keywords if str(w)]
    if not keywords:
        return None
    blob = "\n\n".join(texts)
    return sum(selection.keyword_matcher([w], match)(blob) for w in keywords) / len(keywords)


# --- per-run numbers ---------------------------------------------------------------------------


def question_tokens(run: Run, row: dict) -> float:
    """A list prompt generates a chunk's questions in one call: each gets an equal share."""
    per_call = 1
    if prompting.asks_for_list(str(run.config.get("prompt.question", ""))):
        per_call = int(run.config.get("prompt.questions_per_chunk", 1) or 1)
    return row.get("tokens", {}).get("question", 0) / per_call


def split_counts(run: Run) -> list[dict[str, Any]]:
    """Per split: corpus counts from summary.json, rows and rejects from the run's files."""
    out = []
    for s in SPLITS:
        info = run.summary.get("splits", {}).get(s, {})
        rej = Counter(f"{r['stage']}:{r['reason']}" for r in run.rejected if r["split"] == s)
        rows = len(run.rows.get(s, []))
        slots = info.get("slots", rows + sum(rej.values()))
        out.append(
            {
                "split": s,
                "files_read": info.get("files_read"),
                "files_skipped": len(info.get("files_skipped", [])),
                "chunks_total": info.get("chunks_total"),
                "chunks_kept": info.get("chunks_kept"),
                "chunks_used": info.get("chunks_used"),
                "slots": slots,
                "rows": rows,
                "rejected": sum(rej.values()),
                **{f"rejected {k}": v for k, v in sorted(rej.items())},
            }
        )
    return out


def run_metrics(run: Run, opts: Options) -> dict[str, Any]:
    """The headline numbers of one complete run (retrieval is added by retrieval_scores)."""
    rows = [r for s in SPLITS for r in run.rows.get(s, [])]
    counts = split_counts(run)
    slots = sum(c["slots"] for c in counts)
    reasons = Counter(r["reason"] for r in run.rejected)

    def rate(n: int) -> float | None:
        return n / slots if slots else None

    questions = [r["question"] for r in rows]
    q_tok = length_stats([question_tokens(run, r) for r in rows])
    # questions-only and qa_pair rows have no answer call of their own: no answer length
    a_tok = length_stats([r["tokens"]["answer"] for r in rows if "answer" in r.get("tokens", {})])
    shared, top = openings(questions)
    asked = {(r["split"], r["chunk_id"]) for r in [*rows, *run.rejected]}
    chunk_texts = [run.corpus.get(s, {}).get(cid, "") for s, cid in sorted(asked)]
    kws = run.config.get("keywords.words") or []
    match = run.config.get("keywords.match", "word")
    gen = run.summary.get("generation") or run.summary.get("this_session") or {}
    return {
        "rows_train": len(run.rows.get("train", [])),
        "rows_val": len(run.rows.get("val", [])),
        "slots": slots,
        "reject_rate": rate(len(run.rejected)),
        "duplicate_rate": rate(reasons.get("duplicate", 0)),
        "parse_failure_rate": rate(sum(reasons.get(x, 0) for x in PARSE_REASONS)),
        "gate_reject_rate": rate(sum(reasons.get(x, 0) for x in filters.REASONS)),
        **{f"q_tokens_{k}": v for k, v in q_tok.items()},
        **{f"a_tokens_{k}": v for k, v in a_tok.items()},
        "distinct_2": distinct_n(questions, 2),
        "distinct_3": distinct_n(questions, 3),
        "copy_rate": (
            sum(copies_span(r["question"], r["doc"], opts.copy_span) for r in rows) / len(rows)
            if rows
            else None
        ),
        "same_start_rate": shared,
        "top_start": top,
        "kw_chunks": keyword_coverage(kws, match, chunk_texts),
        "kw_questions": keyword_coverage(kws, match, questions),
        "tokens_per_second": gen.get("tokens_per_second"),
        "cost_usd": usd((gen.get("usage") or {}).get("cost_usd")),
        "generate_seconds": gen.get("generate_seconds"),
        "wall_seconds": run.summary.get("seconds", {}).get("total"),
    }


def usd(cost: float | None) -> str | None:
    return None if cost is None else f"{cost:.6f}"


def reject_shares(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per 'stage:reason' seen in any complete run: each run's share of its slots."""
    ok = [r for r in runs if r.ok]
    slots = {r.label: sum(c["slots"] for c in split_counts(r)) for r in ok}
    counts = {r.label: Counter(f"{x['stage']}:{x['reason']}" for x in r.rejected) for r in ok}
    keys = sorted(set().union(*counts.values())) if counts else []
    return [
        {
            "reason": k,
            "gate": k.split(":", 1)[1] in filters.REASONS,
            **{
                label: (counts[label][k] / slots[label] if slots[label] else None)
                for label in counts
            },
        }
        for k in keys
    ]


# --- retrieval difficulty ----------------------------------------------------------------------


class CachedEncoder:
    """A sentence-transformers model whose outputs are kept per text: runs that share a val
    corpus (same corpus and chunking) embed its chunks once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[str, Any] = {}

    def encode(self, texts: list[str], **kw: Any) -> Any:
        import torch

        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            kw["convert_to_tensor"] = True
            for t, e in zip(missing, self.model.encode(missing, **kw), strict=True):
                self.cache[t] = e
        return torch.stack([self.cache[t] for t in texts])


def val_task(run: Run) -> tuple[list[str], list[set[str]], list[str], list[str]]:
    """Each val question is a query over ALL val chunks; its own chunk is the relevant one."""
    rows = run.rows.get("val", [])
    corpus = run.corpus.get("val", {})
    queries = [r["question"] for r in rows]
    relevant = [{r["chunk_id"]} for r in rows]
    return queries, relevant, list(corpus), list(corpus.values())


def load_embedder(opts: Options) -> tuple[Any | None, str]:
    """(model or None, a line for the report saying what was used or why nothing was)."""
    if opts.embedder is None:
        return None, "embedding retrieval skipped (compare.embedder=null)"
    try:
        from sentence_transformers import SentenceTransformer

        from synthgen.backends import models

        # a hub id with the hub unreachable: the cached copy, or one line at once (no retries)
        name = models.resolve(str(opts.embedder), key="compare.embedder")
        model = SentenceTransformer(name, device=opts.device)
    except Exception as e:  # offline, a wrong name, no weights: the rest of the report stands
        msg = " ".join(str(e).split())[:300].rstrip(".")
        log.warning("compare: embedder %s not loaded: %s", opts.embedder, msg)
        return None, (
            f"embedding retrieval not computed: {opts.embedder} could not be loaded "
            f"({type(e).__name__}: {msg})"
        )
    return CachedEncoder(model), f"embedding retrieval with {opts.embedder}"


def retrieval_scores(runs: list[Run], opts: Options) -> tuple[list[dict[str, Any]], str]:
    """One row per (run, method) with hit@k, MRR, NDCG over the run's val split."""
    out: list[dict[str, Any]] = []
    ok = [r for r in runs if r.ok]
    k = max(*HITS, AT)
    for run in ok:
        queries, relevant, ids, texts = val_task(run)
        ranked = retrieval.rank_bm25(queries, ids, texts, k=k)
        out.append(_retrieval_row(run, "bm25", "bm25s", ranked, relevant, len(ids)))
    model, note = load_embedder(opts) if ok else (None, "no complete run")
    if model is not None:
        try:
            for run in ok:
                queries, relevant, ids, texts = val_task(run)
                ranked = retrieval.rank_embeddings(
                    model, queries, ids, texts, k, opts.query_prefix, opts.batch_size
                )
                row = _retrieval_row(
                    run, "embedding", str(opts.embedder), ranked, relevant, len(ids)
                )
                out.append(row)
        except Exception as e:  # e.g. out of memory: keep BM25 and say why
            out = [r for r in out if r["method"] != "embedding"]
            note = f"embedding retrieval failed: {type(e).__name__}: {' '.join(str(e).split())}"
            log.warning("compare: %s", note)
    return out, note


def _retrieval_row(
    run: Run, method: str, model: str, ranked: list[list[str]], relevant: list[set[str]], n: int
) -> dict[str, Any]:
    m = retrieval.metrics(ranked, relevant, hits=HITS, at=AT)
    scores = {key: (v if m["queries"] else None) for key, v in m.items() if key != "queries"}
    return {
        "run": run.label,
        "method": method,
        "model": model,
        "queries": int(m["queries"]),
        "val_chunks": n,
        **scores,
    }


# --- side by side ------------------------------------------------------------------------------


def examples(runs: list[Run], n: int) -> list[dict[str, Any]]:
    """The same (chunk, question index) from each run; the chunks most runs have first."""
    by_key: dict[tuple[str, str, int], dict[str, dict]] = {}
    pos: dict[tuple[str, str, int], tuple[int, int]] = {}
    for run in runs:
        if not run.ok:
            continue
        for si, s in enumerate(("val", "train")):
            order = {cid: i for i, cid in enumerate(run.corpus.get(s, {}))}
            for r in run.rows.get(s, []):
                key = (s, r["chunk_id"], r["q_index"])
                by_key.setdefault(key, {})[run.label] = r
                pos.setdefault(key, (si, order.get(r["chunk_id"], len(order))))
    keys = sorted(by_key, key=lambda k: (-len(by_key[k]), pos[k], k[2]))[:n]
    out = []
    for key in keys:
        first = next(iter(by_key[key].values()))
        out.append(
            {
                "split": key[0],
                "chunk_id": key[1],
                "q_index": key[2],
                "source": first["source"],
                "chunk": first["doc"],
                "runs": {
                    run.label: {
                        "question": by_key[key][run.label]["question"],
                        "answer": by_key[key][run.label]["answer"],
                    }
                    for run in runs
                    if run.label in by_key[key]
                },
            }
        )
    return out


def verdict(metrics: list[dict[str, Any]], note: str) -> list[str]:
    """Plain sentences a reader looks for first: hardest questions, most varied, fewest rejects."""
    lines = []
    ok = [m for m in metrics if m.get("status") == "complete"]
    if len(ok) < 2:
        return ["Only one complete run: nothing to rank."] if ok else ["No complete run."]
    emb = f"embedding_mrr@{AT}"
    key = emb if any(m.get(emb) is not None for m in ok) else f"bm25_mrr@{AT}"
    scored = [m for m in ok if m.get(key) is not None]
    if len(scored) >= 2:
        low = min(m[key] for m in scored)
        hardest = [m["run"] for m in scored if m[key] == low]
        others = ", ".join(f"{m['run']} {m[key]:.3f}" for m in scored if m[key] != low)
        lines.append(
            f"Hardest questions to retrieve (lowest {METRIC_BY_KEY[key].title}): "
            f"{', '.join(hardest)} ({low:.3f}"
            + (f"; {others})" if others else ", all runs tie)")
            + ". Check copy rate and parse failures too: a vague or broken question is also "
            "hard to retrieve."
        )
    for key, word, pick in (
        ("distinct_2", "Most varied questions (highest distinct-2)", max),
        ("copy_rate", "Least copying of the chunk", min),
        ("reject_rate", "Fewest rejected slots", min),
    ):
        scored = [m for m in ok if m.get(key) is not None]
        if len(scored) < 2:
            continue
        best = pick(m[key] for m in scored)
        tied = [m["run"] for m in scored if m[key] == best]
        who = "all runs tie" if len(tied) == len(scored) else ", ".join(tied)
        lines.append(f"{word}: {who} ({_short(best, key)}).")
    sizes = {m.get("val_chunks") for m in ok} - {None}
    if len(sizes) > 1:
        lines.append(
            "The runs' val corpora differ in size (other corpus or chunking): a larger corpus "
            "makes retrieval harder by itself."
        )
    if "not computed" in note or "failed" in note:
        lines.append(note[0].upper() + note[1:].rstrip(".") + ".")
    return lines


def _short(v: float, key: str) -> str:
    return f"{v:.1%}" if METRIC_BY_KEY[key].kind == "rate" else f"{v:.3f}"


# --- the task ----------------------------------------------------------------------------------


def build_report(paths: Iterable[str | Path], out: Path, opts_node: Any) -> dict[str, Any]:
    """Compare the runs in `paths` and write compare.{xlsx,md,html,json} and plots into `out`."""
    from synthgen.compare import report

    opts = Options.from_cfg(opts_node)
    paths = list(paths)
    runs = [load_run(d) for d in find_runs(paths)]
    assign_labels(runs)
    log.info("compare: %d runs: %s", len(runs), ", ".join(r.label for r in runs))
    table = []
    for r in runs:
        row = {"run": r.label, "dir": str(r.path), "status": r.status, "error": r.error}
        table.append({**row, **(run_metrics(r, opts) if r.ok else {})})
    scores, note = retrieval_scores(runs, opts)
    by_label = {m["run"]: m for m in table}
    for s in scores:
        by_label[s["run"]]["val_chunks"] = s["val_chunks"]
        for k in [*(f"hit@{h}" for h in HITS), f"mrr@{AT}", f"ndcg@{AT}"]:
            by_label[s["run"]][f"{s['method']}_{k}"] = s[k]
    result = {
        "created": _now(),
        "inputs": [str(p) for p in paths],
        "out": str(out),
        "options": {f.name: getattr(opts, f.name) for f in fields(opts)},
        "runs": [m["run"] for m in table],
        "metrics": table,
        "config_diff": config_diff(runs),
        "splits": [{"run": r.label, **c} for r in runs if r.ok for c in split_counts(r)],
        "rejects": reject_shares(runs),
        "retrieval": scores,
        "embedder": note,
        "verdict": verdict(table, note),
        "examples": examples(runs, opts.examples),
        "lengths": {
            r.label: {
                "question": [question_tokens(r, x) for s in SPLITS for x in r.rows.get(s, [])],
                "answer": [
                    x["tokens"]["answer"]
                    for s in SPLITS
                    for x in r.rows[s]
                    if "answer" in x.get("tokens", {})
                ],
            }
            for r in runs
            if r.ok
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    files = report.write_report(out, result)
    log.info("compare: wrote %s and %d plots into %s", ", ".join(files[:4]), len(files) - 4, out)
    return {"task": "compare", "status": "complete", "out": str(out), "files": files, **result}


def compare(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """task=compare: compare.runs -> report in compare.out (default: the one sweep dir given,
    else this run's dir)."""
    node = cfg.get("compare") or {}
    runs = node.get("runs")
    paths = [runs] if isinstance(runs, str) else list(runs or [])
    if not paths:
        raise ConfigError(
            "compare.runs: give run dirs or sweep dirs, e.g. compare.runs='[outputs/multirun/X]'"
        )
    out = node.get("out")
    if not out:
        one_sweep = len(paths) == 1 and not is_run_dir(Path(paths[0]).expanduser())
        out = Path(paths[0]).expanduser() if one_sweep else run_dir
    result = build_report(paths, Path(out), node)
    print(f"comparison of {len(result['runs'])} runs: {Path(out) / 'compare.html'}", flush=True)
    keep = ("task", "status", "out", "files", "runs", "embedder", "verdict")
    return {k: result[k] for k in keep}


def _now() -> str:
    from synthgen.dataset.pipeline import now

    return now()

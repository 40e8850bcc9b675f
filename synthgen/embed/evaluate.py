"""Retrieval on one split: BM25 as the floor, the base embedder, and the tuned one.

Queries are the split's questions, the corpus is every chunk of the split, and the one relevant
chunk is the question's source. Embedding models are scored by sentence-transformers'
InformationRetrievalEvaluator; its per-query rankings are scored again by
synthgen.embed.retrieval.metrics (the function BM25 goes through), and the two must agree.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthgen.embed import embedding, retrieval
from synthgen.errors import ConfigError
from synthgen.rundir import CONFIG, SPLITS, SUMMARY, writing
from synthgen.rundir.reading import Split, check_out_dir, load_split, run_dir_arg
from synthgen.tasks import TaskRun, task

log = logging.getLogger(__name__)

HITS, AT = retrieval.HITS, retrieval.AT
METRICS = retrieval.KEYS
LABELS = {"bm25": "BM25", "base": "base", "tuned": "tuned"}


def score_model(
    model: Any, split: Split, query_prefix: str, batch_size: int, out_dir: Path | None = None
) -> dict[str, Any]:
    """hit@1/5/10, MRR@10, NDCG@10 by InformationRetrievalEvaluator, checked against ours.

    hit@k is the evaluator's accuracy@k (a relevant chunk in the top k). With out_dir, the
    top-10 ranking of every query is kept there (predictions.jsonl) for error analysis.
    """
    import tempfile

    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )
    from sentence_transformers.util import cos_sim

    evaluator = InformationRetrievalEvaluator(
        queries=split.queries,
        corpus=split.corpus,
        relevant_docs=split.relevant,
        accuracy_at_k=list(HITS),
        precision_recall_at_k=[AT],
        mrr_at_k=[AT],
        ndcg_at_k=[AT],
        map_at_k=[AT],
        batch_size=batch_size,
        name=split.name,
        write_csv=False,
        write_predictions=True,
        score_functions={"cosine": cos_sim},
        main_score_function="cosine",
        query_prompt=query_prefix,  # "" = no prefix, also not the model's own "query" prompt
    )
    with tempfile.TemporaryDirectory() as tmp:
        where = out_dir or Path(tmp)
        res = evaluator(model, output_path=str(where))
        pred = next(where.glob("*predictions_cosine.jsonl"))
        preds = [json.loads(x) for x in pred.read_text(encoding="utf-8").splitlines() if x]
        if out_dir is not None:
            pred.replace(out_dir / "predictions.jsonl")
    p = f"{split.name}_cosine_"
    out: dict[str, Any] = {f"hit@{k}": float(res[f"{p}accuracy@{k}"]) for k in HITS}
    out[f"mrr@{AT}"] = float(res[f"{p}mrr@{AT}"])
    out[f"ndcg@{AT}"] = float(res[f"{p}ndcg@{AT}"])
    out[f"map@{AT}"] = float(res[f"{p}map@{AT}"])
    out["queries"] = len(evaluator.queries)

    # the same rankings through synthgen.embed.retrieval.metrics: names and values must agree
    ranked = [[h["corpus_id"] for h in q["results"]] for q in preds]
    ours = retrieval.metrics(ranked, [split.relevant[q["query_id"]] for q in preds], HITS, AT)
    diff = max(abs(ours[m] - out[m]) for m in METRICS)
    if diff > 1e-9:  # never expected: a change in either implementation
        log.warning("evaluator and synthgen.embed.retrieval.metrics differ by %.3g", diff)
    out["check_max_diff"] = diff
    return out


def score_bm25(split: Split) -> dict[str, Any]:
    queries, relevant = [r["question"] for r in split.rows], [{r["chunk_id"]} for r in split.rows]
    return retrieval.score_bm25(queries, relevant, list(split.corpus), list(split.corpus.values()))


def run_eval(
    cfg: DictConfig,
    split: Split,
    run_dir: Path,
    base: Any | None,
    tuned: Any | None,
    names: dict[str, str],
    precomputed: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """Score BM25 and the given models on `split`; write eval.json, eval.md and eval.png."""
    prefix, bs = embedding.query_prefix(cfg), int(cfg.embedder.batch_size)
    t = time.perf_counter()
    results: dict[str, dict] = dict(precomputed or {})
    results.setdefault("bm25", score_bm25(split))
    for key, model in (("base", base), ("tuned", tuned)):
        if model is not None and key not in results:
            d = run_dir / "predictions" / key
            d.mkdir(parents=True, exist_ok=True)
            results[key] = score_model(model, split, prefix, bs, d)
    for key, res in results.items():
        res["model"] = names.get(key, LABELS[key])
    out: dict[str, Any] = {
        "split": split.name,
        "queries": len(split.rows),
        "corpus_chunks": len(split.corpus),
        "query_prefix": prefix,
        **{k: results[k] for k in ("bm25", "base", "tuned") if k in results},
    }
    if "base" in results and "tuned" in results:
        out["delta"] = {m: results["tuned"][m] - results["base"][m] for m in METRICS}
    out["seconds"] = round(time.perf_counter() - t, 3)
    writing.write_json(run_dir / "eval.json", out)
    (run_dir / "eval.md").write_text(table(out), encoding="utf-8")
    chart(out, run_dir / "eval.png")
    log.info("\n%s", table(out))
    return out


def table(ev: dict[str, Any]) -> str:
    """The before/after table in Markdown."""
    head = "| model | " + " | ".join(METRICS) + " |"
    lines = [
        f"Retrieval on the {ev['split']} split: {ev['queries']} questions over all "
        f"{ev['corpus_chunks']} chunks of the split (one relevant chunk each).",
        "",
        head,
        "|" + "---|" * (len(METRICS) + 1),
    ]
    for key in ("bm25", "base", "tuned"):
        if key in ev:
            name = f"{LABELS[key]} ({ev[key]['model']})" if key != "bm25" else "BM25"
            lines.append(f"| {name} | " + " | ".join(f"{ev[key][m]:.3f}" for m in METRICS) + " |")
    if "delta" in ev:
        lines.append(
            "| tuned - base | " + " | ".join(f"{ev['delta'][m]:+.3f}" for m in METRICS) + " |"
        )
    return "\n".join(lines) + "\n"


def chart(ev: dict[str, Any], path: Path) -> None:
    """Grouped bars: one group per metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("bm25", "base", "tuned") if k in ev]
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for i, key in enumerate(keys):
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(METRICS))]
        bars = ax.bar(xs, [ev[key][m] for m in METRICS], width, label=LABELS[key])
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(METRICS)), METRICS)
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("score")
    ax.set_title(
        f"retrieval on {ev['split']}: {ev['queries']} questions, {ev['corpus_chunks']} chunks"
    )
    ax.legend(loc="upper center", ncol=len(keys), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- the evaluate task ---------------------------------------------------------------------------


@task("evaluate")
def evaluate(t: TaskRun) -> dict[str, Any]:
    """task=evaluate: BM25, the base embedder and optionally a tuned model on one split."""
    cfg, run_dir = t.cfg, t.run_dir
    ev_cfg = cfg.evaluate
    data = run_dir_arg(ev_cfg.data, "evaluate.data")
    split_name = str(ev_cfg.split)
    if split_name not in SPLITS:
        raise ConfigError(f"evaluate.split: must be 'train' or 'val', got {split_name!r}")
    split = load_split(data, split_name, "evaluate.data")
    embedding.check_embedder(cfg)
    embedding.require("evaluate", "sentence_transformers", "matplotlib")
    tuned_dir = embedding.tuned_path(ev_cfg.tuned, "evaluate.tuned") if ev_cfg.tuned else None
    run_dir.mkdir(parents=True, exist_ok=True)
    check_out_dir(run_dir, data, "evaluate.data")
    t.save_config()

    base = embedding.load_embedder(cfg)
    tuned = embedding.load_embedder(cfg, tuned_dir, "evaluate.tuned") if tuned_dir else None
    names = {"base": str(cfg.embedder.name_or_path), "tuned": str(tuned_dir)}
    ev = run_eval(cfg, split, run_dir, base, tuned, names)
    return t.finish(
        {
            "data": str(data),
            "embedder": str(cfg.embedder.name_or_path),
            "tuned": str(tuned_dir) if tuned_dir else None,
            "eval": ev,
            "files": [CONFIG, "eval.json", "eval.md", "eval.png", "predictions/", SUMMARY],
        }
    )

"""What a reader looks at first: a few plain sentences, and the same slot side by side."""

from __future__ import annotations

from typing import Any

from synthgen.compare.catalogue import METRIC_BY_KEY
from synthgen.compare.runs import Run
from synthgen.embed.retrieval import AT


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

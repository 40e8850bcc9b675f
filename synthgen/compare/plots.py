"""The comparison's charts: one bar chart per headline metric, a length histogram each for
questions and answers (compare_plots/*.png beside compare.md)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from synthgen.compare.catalogue import METRICS, Metric, fmt

PLOTS = "compare_plots"  # folder of the PNGs, next to compare.md


def make_plots(out: Path, result: dict[str, Any]) -> dict[str, str]:
    """One horizontal bar chart per headline metric and a length histogram each for
    questions and answers; titles say which way is better. Returns {title: relative path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = [m for m in result["metrics"] if m["status"] == "complete"]
    if not complete:
        return {}
    folder = out / PLOTS
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # a rerun may plot fewer metrics: no stale charts
        old.unlink()
    labels = ["\n".join(textwrap.wrap(m["run"], 30)) or m["run"] for m in complete]
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(complete))]
    charts: dict[str, str] = {}
    for metric in METRICS:
        values = [m.get(metric.key) for m in complete]
        if not metric.plot or all(v is None for v in values):
            continue
        charts[_plot_title(metric)] = _bar_chart(plt, folder, metric, values, labels, colors)
    for part in ("question", "answer"):
        series = [
            (lab, result["lengths"][m["run"]][part])
            for lab, m in zip(labels, complete, strict=True)
        ]
        if any(vals for _, vals in series):
            charts[f"{part.capitalize()} length per run"] = _length_hist(
                plt, folder, part, series, colors
            )
    return charts


def _bar_chart(
    plt: Any, folder: Path, metric: Metric, values: list, labels: list[str], colors: list
) -> str:
    """One metric's bar per run, each annotated with its value; rates in %. Returns the PNG's
    path relative to compare.md's folder."""
    scale = 100 if metric.kind == "rate" else 1
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.5 * len(values)))
    y = range(len(values))
    ax.barh(y, [(v or 0) * scale for v in values], color=colors)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.annotate(
            fmt(v, metric.kind),
            ((v or 0) * scale, i),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel(_unit(metric))
    ax.set_title(_plot_title(metric), fontsize=10)
    ax.margins(x=0.15)
    if metric.kind in ("rate", "score") and max((v or 0) for v in values) <= 1:
        ax.set_xlim(0, 100 * 1.15 if metric.kind == "rate" else 1.15)
    fig.tight_layout()
    name = f"{PLOTS}/{re.sub(r'[^A-Za-z0-9_]+', '_', metric.key)}.png"
    fig.savefig(folder.parent / name, dpi=100)
    plt.close(fig)
    return name


def _length_hist(
    plt: Any, folder: Path, part: str, series: list[tuple[str, list]], colors: list
) -> str:
    """The lengths of one part (question or answer) as a step histogram per run, on shared
    bins. Returns the PNG's path relative to compare.md's folder."""
    allv = [v for _, vals in series for v in vals]
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = min(30, max(5, int(max(allv) - min(allv)) + 1))
    edges = list(_linspace(min(allv), max(allv) + 1, bins + 1))
    for (lab, vals), c in zip(series, colors, strict=True):
        if vals:
            ax.hist(vals, bins=edges, histtype="step", linewidth=1.8, color=c, label=lab)
    ax.set_xlabel(f"{part} length (generated tokens)")
    ax.set_ylabel("rows")
    ax.set_title(f"{part.capitalize()} length per run", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = f"{PLOTS}/{part}_length_hist.png"
    fig.savefig(folder.parent / name, dpi=100)
    plt.close(fig)
    return name


def _plot_title(m: Metric) -> str:
    if "hit@" in m.key or "mrr@" in m.key:
        return f"{m.title}: lower = harder questions"
    if m.better:
        return f"{m.title}: {m.better} is better"
    return m.title


def _unit(m: Metric) -> str:
    return {
        "rate": "% of "
        + (
            "keywords"
            if m.key.startswith("kw_")
            else "slots"
            if m.key in ("reject_rate", "duplicate_rate", "parse_failure_rate", "gate_reject_rate")
            else "questions"
        ),
        "score": "score (0-1)",
        "tokens": "tokens",
        "seconds": "seconds",
        "speed": "output tokens per second",
        "count": "rows",
    }.get(m.kind, "")


def _linspace(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / (n - 1) for i in range(n)]

"""The comparison as files: compare.json (every number), compare.xlsx (one sheet per table),
compare.md and compare.html (the same sections; the HTML carries its plots inline so it can
be sent as one file) and compare_plots/*.png.

The Markdown and HTML are rendered from one list of blocks, so they never disagree.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from synthgen.compare.catalogue import METRICS, Metric, fmt
from synthgen.compare.plots import make_plots
from synthgen.embed.retrieval import AT, HITS, KEYS
from synthgen.rundir import writing

CELL = 90  # characters of a config value or example text shown in Markdown/HTML tables
CHUNK = 600  # characters of an example's chunk shown in Markdown/HTML

# ("h1"|"h2"|"h3", text) | ("p"|"quote", text) | ("ul", [text]) | ("table", headers, rows)
# | ("img", title, file)
Block = tuple


def short(value: Any, n: int = CELL) -> str:
    if value is None:
        value = "null"
    elif isinstance(value, list | tuple):
        value = "[" + ", ".join(map(str, value)) + "]"
    s = " ".join(str(value).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def write_report(out: Path, result: dict[str, Any]) -> list[str]:
    """Write every report file into `out`; returns their names relative to it."""
    plots = make_plots(out, result)
    blocks = sections(result, plots)
    writing.write_json(out / "compare.json", result)
    write_xlsx(out / "compare.xlsx", result)
    (out / "compare.md").write_text(to_markdown(blocks), encoding="utf-8")
    (out / "compare.html").write_text(to_html(blocks, out), encoding="utf-8")
    return ["compare.json", "compare.xlsx", "compare.md", "compare.html", *plots.values()]


# --- sections ----------------------------------------------------------------------------------


def sections(result: dict[str, Any], plots: dict[str, str]) -> list[Block]:
    """The report top to bottom; each part is one function below."""
    complete = [m for m in result["metrics"] if m["status"] == "complete"]
    return [
        *_overview(result),
        *_headline(complete),
        *_retrieval(result),
        *_rejects(result, complete),
        *_splits(result),
        *_plots(plots),
        *_examples(result),
        ("h2", "What the numbers mean"),
        ("ul", [f"{m.title}: {m.help}" for m in METRICS if m.key != "top_start" and not _minor(m)]),
    ]


def _overview(result: dict[str, Any]) -> list[Block]:
    runs, metrics = result["runs"], result["metrics"]
    b: list[Block] = [
        ("h1", f"synthgen comparison of {len(runs)} runs"),
        (
            "p",
            f"Created {result['created']} from {', '.join(result['inputs'])}. "
            f"{result['embedder']}.",
        ),
        ("h2", "What stands out"),
        ("ul", result["verdict"]),
        ("h2", "Runs"),
        (
            "table",
            ["run", "status", "dir", "error"],
            [[m["run"], m["status"], m["dir"], m.get("error") or ""] for m in metrics],
        ),
        ("h2", "Config keys that differ"),
    ]
    diff = result["config_diff"]
    if diff:
        b.append(
            ("table", ["key", *runs], [[k, *(short(v) for v in vs)] for k, vs in diff.items()])
        )
    else:
        b.append(("p", "None: the runs share one config."))
    return b


def _headline(complete: list[dict[str, Any]]) -> list[Block]:
    if not complete:
        return [("h2", "Headline numbers"), ("p", "No complete run.")]
    rows = []
    for m in METRICS:
        if all(x.get(m.key) is None for x in complete):
            continue
        better = {"higher": "higher is better", "lower": "lower is better"}.get(m.better, "")
        if "hit@" in m.key or "mrr@" in m.key or "ndcg@" in m.key:
            better = "lower = harder questions"
        rows.append([m.title, *(fmt(x.get(m.key), m.kind) for x in complete), better])
    return [
        ("h2", "Headline numbers"),
        ("table", ["metric", *(x["run"] for x in complete), "reading"], rows),
    ]


def _retrieval(result: dict[str, Any]) -> list[Block]:
    b: list[Block] = [
        ("h2", "Retrieval difficulty on val"),
        (
            "p",
            "Each val question is a query over all val chunks of its run; its own chunk is the "
            "one relevant document. Lower scores = harder questions (or vaguer ones). Runs with "
            f"other chunking have other val corpora: compare val chunks too. {result['embedder']}.",
        ),
    ]
    if result["retrieval"]:
        head = ["run", "method", "model", "queries", "val chunks", *KEYS]
        rows = [
            [
                r["run"],
                r["method"],
                r["model"],
                r["queries"],
                r["val_chunks"],
                *(fmt(r[k], "score") for k in KEYS),
            ]
            for r in result["retrieval"]
        ]
        b.append(("table", head, rows))
    return b


def _rejects(result: dict[str, Any], complete: list[dict[str, Any]]) -> list[Block]:
    if not result.get("rejects"):
        return []
    labels = [m["run"] for m in complete]
    rows = [
        [r["reason"], "yes" if r["gate"] else "", *(fmt(r.get(x) or 0.0, "rate") for x in labels)]
        for r in result["rejects"]
    ]
    return [
        ("h2", "Rejects by reason"),
        (
            "p",
            "Share of each run's slots rejected for each reason (stage:reason). Gate = a "
            "quality gate of conf/filters dropped it; the others are parsing and duplicate "
            "questions. A reason a run never gave shows 0.0%.",
        ),
        ("table", ["reason", "gate", *labels], rows),
    ]


def _splits(result: dict[str, Any]) -> list[Block]:
    if not result["splits"]:
        return []
    cols: list[str] = []
    for s in result["splits"]:
        cols += [k for k in s if k not in cols]
    rows = [
        [s.get(c, 0) if c.startswith("rejected") else s.get(c) for c in cols]
        for s in result["splits"]
    ]
    return [("h2", "Per split"), ("table", cols, rows)]


def _plots(plots: dict[str, str]) -> list[Block]:
    if not plots:
        return []
    return [("h2", "Plots"), *(("img", title, file) for title, file in plots.items())]


def _examples(result: dict[str, Any]) -> list[Block]:
    if not result["examples"]:
        return []
    b: list[Block] = [
        ("h2", "Side by side"),
        ("p", "The same chunk and question index in each run (all of them in compare.xlsx)."),
    ]
    for ex in result["examples"]:
        title = (
            f"{ex['split']} · {ex['source']} · chunk {ex['chunk_id']} · question {ex['q_index']}"
        )
        rows = [
            [label, short(qa["question"], 300), short(qa["answer"], 300)]
            for label, qa in ex["runs"].items()
        ]
        b += [
            ("h3", title),
            ("quote", short(ex["chunk"], CHUNK)),
            ("table", ["run", "question", "answer"], rows),
        ]
    return b


def _minor(m: Metric) -> bool:
    """Percentiles and hit@10/NDCG share their definition with the line above them."""
    return m.key.endswith(("_p50", "_p90")) or m.key.endswith((f"hit@{HITS[-1]}", f"ndcg@{AT}"))


def to_markdown(blocks: list[Block]) -> str:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + rest[0], ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "quote":
            lines += ["> " + rest[0], ""]
        elif kind == "ul":
            lines += [f"- {x}" for x in rest[0]] + [""]
        elif kind == "table":
            headers, rows = rest
            lines.append("| " + " | ".join(cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{rest[0]}]({rest[1]})", ""]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} tr:nth-child(even) td{background:#fafafa}
blockquote{color:#555;border-left:3px solid #ccc;margin:.5em 0;padding:.2em 1em;font-size:.9em}
.plots{display:flex;flex-wrap:wrap;gap:1em} .plots figure{margin:0}
.plots img{max-width:560px;border:1px solid #eee}
"""


def to_html(blocks: list[Block], out: Path) -> str:
    e = html.escape
    parts = ['<!doctype html><html><head><meta charset="utf-8">']
    title = next((b[1] for b in blocks if b[0] == "h1"), "synthgen comparison")
    parts += [f"<title>{e(title)}</title><style>{CSS}</style></head><body>"]
    in_plots = False
    for kind, *rest in blocks:
        if kind != "img" and in_plots:
            parts.append("</div>")
            in_plots = False
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(rest[0])}</p>")
        elif kind == "quote":
            parts.append(f"<blockquote>{e(rest[0])}</blockquote>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{e(str(x))}</li>" for x in rest[0]) + "</ul>")
        elif kind == "table":
            headers, rows = rest
            head = "".join(f"<th>{e(str(h))}</th>" for h in headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            if not in_plots:
                parts.append('<div class="plots">')
                in_plots = True
            data = base64.b64encode((out / rest[1]).read_bytes()).decode()
            parts.append(
                f'<figure><img alt="{e(rest[0])}" src="data:image/png;base64,{data}"></figure>'
            )
    if in_plots:
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- spreadsheet -------------------------------------------------------------------------------


def write_xlsx(path: Path, result: dict[str, Any]) -> None:
    """Sheets: metrics, config, splits, rejects, retrieval, examples, definitions, notes."""
    import pandas as pd

    runs = result["runs"]
    metric_cols = [
        "run",
        "dir",
        "status",
        "error",
        "slots",
        "val_chunks",
        *(m.key for m in METRICS),
    ]
    sheets = {
        "metrics": pd.DataFrame(result["metrics"], columns=metric_cols),
        "config": pd.DataFrame(
            [[k, *(_cell(v) for v in vs)] for k, vs in result["config_diff"].items()],
            columns=["key", *runs],
        ),
        "splits": pd.DataFrame(result["splits"]),
        "rejects": pd.DataFrame(result.get("rejects", [])),
        "retrieval": pd.DataFrame(result["retrieval"]),
        "examples": pd.DataFrame(
            [
                {
                    "split": ex["split"],
                    "chunk_id": ex["chunk_id"],
                    "q_index": ex["q_index"],
                    "source": ex["source"],
                    "chunk": ex["chunk"],
                    **{
                        f"{label}: {part}": ex["runs"].get(label, {}).get(part)
                        for label in runs
                        for part in ("question", "answer")
                    },
                }
                for ex in result["examples"]
            ]
        ),
        "definitions": pd.DataFrame(
            [[m.key, m.title, m.better or "", m.help] for m in METRICS],
            columns=["key", "title", "better", "meaning"],
        ),
        "notes": pd.DataFrame({"note": [result["embedder"], *result["verdict"]]}),
    }
    tmp = path.with_name(path.stem + ".tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        for name, df in sheets.items():
            df.map(writing.excel_safe).to_excel(xw, sheet_name=name, index=False)
    tmp.replace(path)


def _cell(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)

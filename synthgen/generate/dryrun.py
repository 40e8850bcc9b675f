"""`dry_run=true`: counts per stage, what resume would skip, and the first prompts as the
model will see them; nothing is generated and no weights load."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthgen import backends
from synthgen.corpus.load import Corpus, prepared_record, warnings
from synthgen.errors import SynthgenError
from synthgen.generate import prompting
from synthgen.generate.llm import load_model_part, stage_params
from synthgen.records import Slot
from synthgen.rundir import SPLITS
from synthgen.rundir.state import RunState, check_resume
from synthgen.scale import sharding
from synthgen.settings import Settings


def dry_run(
    cfg: DictConfig,
    st: Settings,
    corpus: Corpus,
    slots: dict[str, list[Slot]],
    run_dir: Path,
    leak: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per stage and what resume would skip, then the first prompts as the model will
    see them. The counts need no model, so they are printed first: a model that cannot load
    here (offline, not installed) costs only the preview, said in one line."""
    lines = ["dry run: nothing is generated, no weights are loaded", ""]
    if (got := corpus["train"].prepared) is not None:
        lines.append(f"corpus: the chunks of {got['dir']} (task=prepare); no file read")
    for s in SPLITS:
        lines += split_lines(s, corpus[s].counts().to_dict(), len(slots[s]))
    warned = warnings(st, corpus)
    lines += warned
    for p in (leak or {}).get("pairs", []):
        lines.append(
            f"leak: val {p['val_source']} chunk {p['val_id']} ~ train {p['train_source']} "
            f"chunk {p['train_id']} (overlap {p['similarity']}); corpus.leak={leak['action']}"
        )
    pr = st.prompt
    n_q = sum(len({x.chunk.id for x in ss}) if pr.list_mode else len(ss) for ss in slots.values())
    n_a = sum(len(ss) for ss in slots.values()) if pr.answers else 0
    if st.shard.count > 1:
        lines.append(
            f"shard {st.shard.index} of {st.shard.count}: the slots above are this shard's part"
        )
    how = (
        f"up to {n_a} answer"
        if pr.answers
        else "no answer prompts (prompt.reply=qa_pair: each reply holds its answer)"
        if pr.pair
        else "no answer prompts (prompt.answer=null: questions only)"
    )
    lines.append(f"prompts to run: {n_q} question + {how}")
    if pr.example_passages:
        lines.append(
            f"prompt.examples: {len(pr.example_passages)} worked examples before every chunk "
            "(shown in the prompts below)"
        )
    resume, todo = resume_report(cfg, run_dir, slots)
    lines.append(resume)
    print("\n".join(lines), file=sys.stdout, flush=True)  # before anything loads

    preview, why = prompt_preview(cfg, st, slots)
    print(preview if preview else f"\nno prompt preview: {why}", file=sys.stdout, flush=True)
    return {
        "status": "dry_run",
        "corpus": prepared_record(corpus),
        "leak": leak or {},
        "splits": {s: corpus[s].counts().corpus() for s in SPLITS},
        "warnings": warned,
        "slots": {s: len(slots[s]) for s in SPLITS},
        "prompts": {"question": n_q, "answer": n_a},
        "to_generate": todo,
        "preview": why is None,
    }


def split_lines(split: str, c: dict[str, Any], n_slots: int) -> list[str]:
    """One split's corpus counts, then each skipped file, note, cleaning and copy."""
    lines = [
        f"[{split}] files {c['files_read']} read, {len(c['files_skipped'])} skipped; "
        f"{c['docs']} docs; chunks {c['chunks_total']} total, {c['chunks_kept']} kept, "
        f"rejected {c['chunks_rejected'] or '{}'}; {c['chunks_used']} used -> "
        f"{n_slots} question slots"
    ]
    for sk in c["files_skipped"]:
        lines.append(f"    skipped {sk['file']}: {sk['reason']}")
    for f, note in c["file_notes"].items():
        lines.append(f"    note {f}: {note}")
    for f, counts in c["cleaning"].items():
        done = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("furniture",))
        lines.append(f"    cleaned {f}: {done}")
        for h in counts.get("furniture", []):
            lines.append(f"      header/footer: {h!r}")
    for m in c["duplicate_chunks"]:
        lines.append(
            f"    copy {m['chunk_source']} chunk {m['chunk_id']} = {m['copy_of_source']} "
            f"chunk {m['copy_of_id']} (similarity {m['similarity']}): generated once"
        )
    return lines


def resume_report(
    cfg: DictConfig, run_dir: Path, slots: dict[str, list[Slot]]
) -> tuple[str, int | None]:
    """One line on what a real run in `run_dir` would skip (or why it would refuse), and the
    number of slots it would generate (None if refused)."""
    n = sum(len(ss) for ss in slots.values())
    try:
        state = RunState.load(run_dir, repair=False) if run_dir.is_dir() else RunState()
        check_resume(cfg, run_dir, state)
        others, dirs = sharding.sibling_state(cfg, run_dir)
    except SynthgenError as e:
        return f"resume: a real run would stop here: {e}", None
    own = state.done_keys()
    done = RunState.union([state, others]).done_keys()
    keys = [x.key for ss in slots.values() for x in ss]
    todo = sum(k not in done for k in keys)
    if todo == n:
        return f"resume: no slot done yet in the run dir: all {n} to generate", todo
    elsewhere = sum(k in done and k not in own for k in keys)
    where = f" ({elsewhere} of them in {len(dirs)} sibling shard dirs)" if elsewhere else ""
    return (
        f"resume: {n - todo} of {n} slots already done in {run_dir}{where}, {todo} to generate",
        todo,
    )


def prompt_preview(
    cfg: DictConfig, st: Settings, slots: dict[str, list[Slot]]
) -> tuple[str | None, str | None]:
    """The first question and answer prompts, rendered by the model's tokenizer, or (None,
    why) when the tokenizer cannot load here. cfg: for the model's spec (its tokenizer)."""
    from synthgen.backends.base import load_tokenizer, render

    first = next((ss[0] for ss in (slots["train"], slots["val"]) if ss), None)
    if first is None:
        return None, "no slot to fill, so no prompt"
    spec = backends.spec_of(cfg.model)
    endpoint = spec.backend == "openai"  # the server renders the chat: show the messages sent
    try:
        tok = None if endpoint else load_model_part(spec.name_or_path, lambda: load_tokenizer(spec))
    except SynthgenError as e:
        return None, str(e)
    pr = st.prompt
    msgs = lambda u: prompting.messages(pr.system, u, spec.system_role)  # noqa: E731
    k = pr.questions_per_chunk if pr.list_mode else 1
    q = prompting.question_prompt(
        pr.question, first.chunk.text, num_questions=k, examples=pr.examples
    )
    shown = [("question", q)]
    if pr.answers and pr.answer is not None:  # questions-only and qa_pair: no answer prompt
        a = prompting.answer_prompt(
            pr.answer, first.chunk.text, "<the parsed question>", pr.examples
        )
        shown.append(("answer", a))
    out: list[str] = []
    params = stage_params(st, spec)
    for stage, user in shown:
        if endpoint:
            text = json.dumps(msgs(user), ensure_ascii=False, indent=1)
            size = "the chat messages the endpoint gets"
        else:
            text = render(tok, msgs(user), spec, stage)
            size = f"{len(tok(text, add_special_tokens=False)['input_ids'])} tokens"
        p = params[stage]
        ends = f", reply ends at {p.stop_strings!r}" if p.stop_strings else ""
        ends += f", at most {p.max_new_tokens} new tokens"
        out += [
            "",
            f"--- first {stage} prompt ({first.split} {first.chunk.source}, chunk "
            f"{first.chunk.id}, {size}{ends}) ---",
            text,
        ]
    return "\n".join(out), None

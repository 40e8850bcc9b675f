"""The plain vLLM script beside `python run.py` (issue 21, item 3): the same prompts, same model.

Reads a finished run dir (its config.yaml and summary.json), makes the run's jobs again with the
pipeline's own RowMaker (the corpus read and chunked the same way, the same chat/plain
encoding, stop strings, lengths and gates), and runs them the way a plain vLLM script would:
`vllm.LLM(model=...)` with vLLM's defaults (prefix caching on, as there), then every pending
prompt in one `llm.generate` per wave: the questions, then the answers their accepted
questions open (and follow-ups, where the prompt asks for more). The rows RowMaker writes from
those replies are this script's rows.

One JSON line goes to DIR/results.jsonl (--out, or $OUT) and benchmarks/results.jsonl: way
e2e_raw, rows, generate seconds (the llm.generate calls) and wall seconds (with RowMaker's
parsing and gates between waves), rows/hour of each, output tok/s, and the run dir's own
figures beside them (run.py's rows, generate_seconds, rows/hour, tok/s) with the ratio the
issue asks for: run.py's rows/hour over this script's.

    python benchmarks/gpu/e2e_raw.py /tmp/e2e/default --invocation issue21-gpu   # GPU machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")


def run_dir_figures(run_dir: Path) -> dict:
    """run.py's own figures from its summary.json (this session's)."""
    s = json.loads((run_dir / "summary.json").read_text())
    ses = s["this_session"]
    rows = sum(s["rows"].values())
    gen_s = ses["generate_seconds"]
    return {
        "run_py_rows": rows,
        "run_py_generate_s": gen_s,
        "run_py_total_s": s.get("seconds", {}).get("total"),
        "run_py_rows_h": round(rows / gen_s * 3600) if gen_s else None,
        "run_py_tok_s": ses["tokens_per_second"],
        "run_py_prompt_tokens": ses["prompt_tokens"],
        "run_py_prompt_tokens_cached": ses.get("prompt_tokens_cached"),
        "run_py_most_in_flight": ses.get("most_in_flight"),
        "run_py_kv_cache_tokens": ses.get("kv_cache_tokens"),
        "run_py_engine": ses.get("engine", {}).get("name"),
        "run_py_notes": ses.get("engine", {}).get("notes"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a finished `python run.py` run dir")
    ap.add_argument("--out", default=os.environ.get("OUT") or None)
    ap.add_argument("--invocation", default="e2e")
    args = ap.parse_args()

    from omegaconf import OmegaConf

    from synthgen.backends import models
    from synthgen.backends.base import (
        ModelSpec,
        encode,
        eos_ids,
        generation_config,
        load_tokenizer,
    )
    from synthgen.backends.vllm_engine import sampling_params, spawn_workers, to_generated
    from synthgen.corpus.load import corpus_texts, load_corpus, make_slots
    from synthgen.gates import filters
    from synthgen.generate.feed import for_stage
    from synthgen.generate.llm import stage_params
    from synthgen.generate.rows import RowMaker
    from synthgen.rundir import SPLITS, load_config
    from synthgen.rundir.state import RunState
    from synthgen.settings import Settings

    cfg = load_config(args.run_dir)  # upgraded: a run dir of an older synthgen reads the same
    st = Settings.from_cfg(cfg)
    spec = ModelSpec.from_kwargs(OmegaConf.to_container(cfg.model, resolve=True))
    path = models.resolve(spec.name_or_path)
    tok = load_tokenizer(dataclasses.replace(spec, name_or_path=path))
    eos = eos_ids(tok, spec, generation_config(path))
    corpus = load_corpus(st, Counter())
    slots = make_slots(st, corpus)
    gates = filters.Gates(cfg, cfg.prompt)
    scratch = Path(tempfile.mkdtemp(prefix="e2e-raw-"))
    state = RunState.load(scratch, repair=False)
    maker = RowMaker(
        st,
        scratch,
        lambda m, stage: encode(tok, m, spec, stage),
        state,
        gates,
        scorer=gates.scorer(corpus_texts(corpus)),
    )
    params = stage_params(st, spec)
    jobs = [j for s in SPLITS for j in maker.initial_jobs(slots[s], state, set())]

    spawn_workers()
    from vllm import LLM

    t = time.time()
    llm = LLM(
        model=path,
        max_model_len=int(spec.max_seq_length),
        gpu_memory_utilization=float(st.engine.gpu_memory_utilization),
    )
    start_s = round(time.time() - t, 1)
    gen_s, out_tokens, prompt_tokens, cached, waves, prompts = 0.0, 0, 0, 0, 0, Counter()
    t_wall = time.time()
    while jobs:
        ps = [j.params or for_stage(params, j.stage) for j in jobs]
        sps = [sampling_params(p, eos, j.ids) for p, j in zip(ps, jobs, strict=True)]
        t = time.time()
        outs = llm.generate([{"prompt_token_ids": j.ids} for j in jobs], sps, use_tqdm=False)
        gen_s += time.time() - t
        waves += 1
        nxt = []
        for j, o, p in zip(jobs, outs, ps, strict=True):
            c = o.outputs[0]
            g = to_generated(
                list(c.token_ids),
                c.finish_reason,
                set(eos),
                lambda ids: tok.decode(ids, skip_special_tokens=True),
                p.stop_strings,
                getattr(o, "num_cached_tokens", 0),
                getattr(c, "logprobs", None),
            )
            out_tokens += g.tokens
            prompt_tokens += len(j.ids)
            cached += g.cached_tokens
            prompts[j.stage] += 1
            nxt += maker.on_result(j, g)
        maker.sync()
        jobs = nxt
    wall_s = time.time() - t_wall
    maker.close()
    rows = sum(len((scratch / f"{s}.jsonl").read_text().splitlines()) for s in SPLITS)
    raw_rows_h = round(rows / gen_s * 3600) if gen_s else None
    line = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "invocation": args.invocation,
        "workload": "e2e",
        "way": "e2e_raw",
        "model": spec.name_or_path,
        "engine": "vllm.LLM.generate, waves",
        "enable_prefix_caching": "vLLM default",
        "rows": rows,
        "waves": waves,
        "prompts_by_stage": dict(prompts),
        "generate_s": round(gen_s, 2),
        "wall_s": round(wall_s, 2),
        "start_s": start_s,
        "rows_h": raw_rows_h,
        "rows_h_wall": round(rows / wall_s * 3600) if wall_s else None,
        "tok_s": round(out_tokens / gen_s, 1) if gen_s else None,
        "out_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "cached_tokens": cached,
        **run_dir_figures(args.run_dir),
    }
    if line["run_py_rows_h"] and raw_rows_h:
        line["run_py_vs_raw"] = round(line["run_py_rows_h"] / raw_rows_h, 3)
    try:
        import generation as g  # benchmarks/generation.py: the GPU's name and versions

        line |= {"gpu": g.gpu_info(), "versions": g.versions()}
    except Exception as e:  # the figures above matter more than these
        line["info_error"] = str(e)[:200]
    text = json.dumps(line)
    print(text)
    for out in [
        REPO / "benchmarks" / "results.jsonl",
        *([Path(args.out) / "results.jsonl"] if args.out else []),
    ]:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`benchmarks/generation.py --workload pipeline`: finished rows per GPU-hour on the real workload.

What a user buys is rows, not output tokens per second. Every chunk gets a question call and
then an answer call, as the pipeline makes them: the shipped prompt configs around chunks of the
sample corpus, synthgen's chat-template encoding, and for synthgen's ways its own
rows.RowMaker (prompts, parsing, dedup, follow-ups, rows written to a run dir as they
finish) fed through synthgen.generate.feed.drive, exactly as `python run.py` runs them.

Lengths: each row's question and answer lengths are drawn per chunk (uniform integers in
--lengths, default questions 15-60 and answers 40-250 new tokens, from a hash of the chunk id
and --seed: the same lengths in every way) and forced (min = max new tokens: vLLM's
min_tokens = max_tokens per request, the continuous engine per request, the static engine a
logits processor that ends each row at its own length), so random weights end rows where a
real model would. Random weights write the same garbage for every chunk, so the parse/dedup
gates would reject most questions and no answer call would follow: synthgen's ways run
rows.RowMaker with the reject policy forcing.AcceptAll, which runs the real parsers and counts
what they would have rejected (`overridden` in the line) but keeps the text, as for a model that
passes the gates (benchmarks/forcing.py: the policy, the forced lengths, the cache salt).

Chunks: the sample corpus read, chunked and selected by the pipeline's own stages
(chunking=notebook, keywords=film), each selected chunk in --chunks variants with "(k) " in
front of every paragraph (as benchmarks/make_corpus.py does), so every prompt is distinct.

Ways (`--ways`, each in its own child process; a way's runs after a colon, joined by "+"):
  vllm_raw     the anchor: a plain vLLM script, prefix caching off: every question prompt in one
               llm.generate, then every answer prompt (built from the decoded questions) in a
               second. Its rows are sized from a calibration pass of 256 chunks.
  vllm         synthgen engine=vllm, streamed, one engine (prefix caching on) for all its runs
  continuous   synthgen engine=continuous (the new static-cache engine), one model for its runs
  static       synthgen engine=static (the old path: generate with a static cache)
  notebook     the notebook's code: Unsloth 4-bit, one prompt at a time, TextStreamer,
               --notebook-rows chunks, each its question then its answer
Runs:
  reuse          prompt=notebook, prefix reuse on (vLLM's prefix cache, the continuous engine's
                 slot reuse): a chunk's answer prefills only what follows the chunk
  reuse_fifo     reuse as the feed was before issue 21: first come first served (no answer
                 goes ahead of the questions queued before it) and, for vLLM, as many in
                 flight as the count limit allows whatever its KV cache holds (same engine)
  no_reuse       the same with reuse off: vLLM requests each get their own cache_salt
                 (forcing.NoReuse: same engine, no hit possible), the continuous engine's
                 reuse switched off
  questions_only prompt=questions_only: no answer stage
  qa_pair        prompt=qa_pair: one call writes both (its forced length = question + answer + 4)
Each run: a warm-up (not timed: graphs, compilation), the prefix caches cleared, then a timed
run that starts no new chunk after --run-seconds (what started, answers included, finishes).

Every run is one JSON line in results.jsonl as soon as it ends (workload "pipeline"): rows,
seconds, rows_h (rows per hour), gpu_s_per_1k_rows (GPU-seconds per 1,000 rows, one GPU),
tok_s (output tokens/s), prompt_tok_s, cached_tokens (prompt tokens a prefix cache supplied),
most_in_flight and kv_cache_tokens (the stream feed's requests in flight and the KV cache that
bounded them), start_s (engine start, measured apart), warmup_s, the engine's notes. --budget caps the whole
command (the session's device time is scarce): a way or run that no longer fits is one line
saying so.

    python benchmarks/generation.py --workload pipeline                  # GPU machine, ~9 min
    python benchmarks/generation.py --workload pipeline --tiny --ways continuous:reuse+no_reuse,static
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

import forcing  # benchmarks/forcing.py: the reject policy, forced lengths, the cache salt
import generation as g  # benchmarks/generation.py: checkpoint, Recorder, result lines, tables

REPO = g.REPO
RUNS = ("reuse", "reuse_fifo", "no_reuse", "questions_only", "qa_pair")
PROMPT = {"reuse": "notebook", "reuse_fifo": "notebook", "no_reuse": "notebook"}
PROMPT["questions_only"] = "questions_only"
PROMPT["qa_pair"] = "qa_pair"
# way -> (runs it can do, default runs, timeout s): timeouts are H200 estimates with room
WAYS = {
    "vllm_raw": (("no_reuse",), ("no_reuse",), 170),
    "vllm": (RUNS, ("reuse", "reuse_fifo", "questions_only", "qa_pair", "no_reuse"), 320),
    "continuous": (RUNS, ("reuse", "no_reuse"), 170),
    "static": (("no_reuse", "questions_only", "qa_pair"), ("no_reuse",), 190),
    "notebook": (("no_reuse",), ("no_reuse",), 120),
}
DEFAULT_WAYS = (
    "vllm_raw,vllm:reuse+reuse_fifo+questions_only+qa_pair+no_reuse,continuous:reuse+no_reuse,"
    "static,notebook"
)
log = g.log


def parse_ways(spec: str) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for item in [x for x in spec.split(",") if x]:
        way, _, runs = item.partition(":")
        if way not in WAYS:
            raise SystemExit(f"error: --ways: unknown way {way!r} (pipeline: {', '.join(WAYS)})")
        can, default, _ = WAYS[way]
        chosen = tuple(r for r in runs.split("+") if r) or default
        bad = [r for r in chosen if r not in can]
        if bad:
            raise SystemExit(
                f"error: --ways: {way} cannot run {', '.join(bad)} (it can: {', '.join(can)})"
            )
        out.append((way, chosen))
    return out


# --- chunks, lengths, config ----------------------------------------------------------------


def chunk_pool(n: int) -> list[dict]:
    """n distinct chunks of the pipeline's shape: the sample corpus' selected chunks, in variants."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from synthgen.corpus import chunking, reading, selection
    from synthgen.records import short_hash

    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_corpus import tagged

    # the default config's corpus, chunking and keywords (each option holds only what differs
    # from its schema, so they are composed, not read from their files)
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("config")
    corpus, cc, kw = cfg.corpus, cfg.chunking, cfg.keywords
    d = REPO / corpus.dir
    files = reading.resolve_files(d, list(corpus.train_files) + list(corpus.val_files), "corpus")
    docs, _, _ = reading.read_files(d, files)
    chunks = chunking.chunk_docs(docs, cc.chunk_size, cc.chunk_overlap)
    kept, _ = selection.select(chunks, cc.min_chars, cc.max_chars, list(kw.words), kw.match)
    out: list[dict] = []
    k = 0
    while len(out) < n:
        for c in kept[: n - len(out)]:
            text = tagged(c.text, k)
            out.append(
                {"id": short_hash(c.source, text), "source": f"{c.source}#{k}", "text": text}
            )
        k += 1
    return out


def lengths(spec: str) -> tuple[tuple[int, int], tuple[int, int]]:
    q, a = (tuple(int(x) for x in part.split("-")) for part in spec.split(","))
    return (q[0], q[1]), (a[0], a[1])  # type: ignore[return-value]


def draw(chunk_id: str, stage: str, lo: int, hi: int, seed: int) -> int:
    """A length in [lo, hi] from the chunk id: the same row gets it in every way."""
    h = int(hashlib.sha1(f"{seed}:{stage}:{chunk_id}".encode()).hexdigest()[:12], 16)
    return lo + h % (hi - lo + 1)


def row_lengths(args: argparse.Namespace, chunk_id: str, run: str) -> tuple[int, int]:
    (q_lo, q_hi), (a_lo, a_hi) = lengths(args.lengths)
    return draw(chunk_id, "question", q_lo, q_hi, args.seed), draw(
        chunk_id, "answer", a_lo, a_hi, args.seed
    )


def params_for(args: argparse.Namespace, run: str):
    """forcing.Forced's params_for: each prompt's forced length."""
    from synthgen.backends.base import GenParams

    def forced(stage: str, slot) -> GenParams:
        q, a = row_lengths(args, slot.chunk.id, run)
        n = q + a + 4 if run == "qa_pair" else (q if stage == "question" else a)
        return GenParams(max_new_tokens=n, min_new_tokens=n, do_sample=False)

    return forced


def compose(args: argparse.Namespace, prompt: str) -> object:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = [
        f"prompt={prompt}",
        "model=llama31_8b",
        f"model.name_or_path={args.ckpt}",
        "model.load_in_4bit=false",
        f"model.max_seq_length={args.max_seq_length}",
        "generation.max_new_tokens=320",  # the longest forced reply (qa_pair: 60 + 250 + 4)
    ]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


# --- one timed pass through the pipeline's RowMaker ----------------------------------------


def pipeline_pass(
    args: argparse.Namespace,
    backend: object,
    run: str,
    chunks: list[dict],
    size: int,
    seconds: float | None,
) -> dict:
    """Rows of `chunks` made by rows.RowMaker + drive, as run.py makes them."""
    from synthgen.backends.base import GenParams, encode
    from synthgen.gates import filters
    from synthgen.generate.feed import Feed, Stats, drive
    from synthgen.generate.rows import RowMaker
    from synthgen.records import Chunk, Slot
    from synthgen.rundir.state import RunState
    from synthgen.settings import Settings

    cfg = compose(args, PROMPT[run])
    run_dir = Path(tempfile.mkdtemp(prefix=f"wl-{run}-", dir=args.scratch))
    state = RunState.load(run_dir, repair=False)
    policy = forcing.AcceptAll()
    maker = RowMaker(
        Settings.from_cfg(cfg),
        run_dir,
        lambda m, stage: encode(backend.tokenizer, m, backend.spec, stage),
        state,
        filters.Gates(cfg, cfg.prompt),
        policy=policy,
    )
    gen = forcing.Forced(maker, params_for(args, run))
    slots = [Slot("train", Chunk(**c), 0, cfg.prompt.name, str(args.ckpt)) for c in chunks]
    jobs = gen.initial_jobs(slots, state, set())
    stats = Stats()
    t = time.perf_counter()
    stop = (lambda: time.perf_counter() - t > seconds) if seconds else None
    try:
        feed = Feed(gen.on_result, GenParams(max_new_tokens=320), size, None, stats, gen.sync, stop)
        drive(backend, jobs, feed)
    finally:
        gen.close()
    dt = time.perf_counter() - t
    rows = len((run_dir / "train.jsonl").read_text().splitlines())
    rejected = len((run_dir / "rejected.jsonl").read_text().splitlines())
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "rows": rows,
        "seconds": round(dt, 2),
        "stats": stats,
        "overridden": dict(policy.overridden),
        "rejected": rejected,
        "first_row_s": round(gen.first_row_at - t, 2) if gen.first_row_at else None,
    }


def rates(rows: int, seconds: float, out_tokens: int, prompt_tokens: int) -> dict:
    return {
        "rows_h": round(rows / seconds * 3600) if seconds else None,
        "gpu_s_per_1k_rows": round(seconds / rows * 1000, 1) if rows else None,
        "tok_s": round(out_tokens / seconds, 1) if seconds else None,
        "prompt_tok_s": round(prompt_tokens / seconds) if seconds else None,
    }


def common(args: argparse.Namespace, way: str, run: str) -> dict:
    return {
        "workload": "pipeline",
        "way": way,
        "run": run,
        "prompt": PROMPT[run],
        "new_tokens": f"q{args.lengths.replace(',', '/a')}",
        "lengths": args.lengths,
        "seed": args.seed,
    }


def out_of_time(args: argparse.Namespace, need: float) -> bool:
    return args.deadline is not None and time.time() + need > args.deadline


def skipped(args: argparse.Namespace, rec: g.Recorder, way: str, run: str, why: str) -> None:
    log(f"{way}/{run}: skipped, {why}")
    rec.record(**common(args, way, run), skipped=why)


# --- synthgen's engines -------------------------------------------------------------------


def way_synthgen(
    args: argparse.Namespace, plan: list[tuple[str, tuple[str, ...]]], rec: g.Recorder
) -> None:
    """synthgen's engines through rows.RowMaker + drive. plan: [(way, runs)], one engine
    start for all: vllm alone, or continuous then static on the same loaded weights."""
    chunks = json.loads(Path(args.chunks_file).read_text())
    options = {
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "enable_prefix_caching": True,
        "feed": "stream",
        "seed": 0,
    }
    t = time.time()
    spec = {**g.spec_of(args, "hf_bf16"), "eos_tokens": ["<|eot_id|>", "<|eom_id|>"]}
    backend = g.backend_class("transformers")(engine=plan[0][0], vllm=options, **spec)
    start_s = round(time.time() - t, 1)
    load_s = round(time.time() - rec.t0, 1)
    for k, (way, runs) in enumerate(plan):
        if way == "static" and backend.engine != "static":
            backend.switch_engine("static")  # start_s below: the one load both ran on
        timed_runs(args, backend, way, runs, chunks, rec, start_s, load_s, shared=k > 0)
    backend.close()


def timed_runs(
    args: argparse.Namespace,
    backend: object,
    way: str,
    runs: tuple[str, ...],
    chunks: list[dict],
    rec: g.Recorder,
    start_s: float,
    load_s: float,
    shared: bool = False,
) -> None:
    """A warm-up, then each run timed, one line each."""
    engine = backend.engine
    notes_from = len(backend.notes) if shared else 0  # this engine's notes only
    size = backend.auto_batch_size(320, 1024) if args.batch == "auto" else int(args.batch)
    warm_n = size if engine == "static" else min(64, size)
    if out_of_time(args, args.run_seconds + 30):
        for run in runs:
            skipped(args, rec, way, run, "no time left in --budget")
        return
    t = time.time()
    warm = pipeline_pass(args, backend, runs[0], chunks[:warm_n], size, None)
    warmup_s = round(time.time() - t, 1)
    if warm["first_row_s"] is not None and rec.first_row_s is None:
        rec.first_row_s = round(t - rec.t0 + warm["first_row_s"], 1)
    rate = warm["rows"] / warm["seconds"] if warm["seconds"] else 1.0
    for i, run in enumerate(runs):
        if out_of_time(args, args.run_seconds + 15):
            skipped(args, rec, way, run, "no time left in --budget")
            continue
        if engine == "vllm":
            backend.runner.llm.reset_prefix_cache()
            backend.runner.answers_first = backend.runner.kv_budget = run != "reuse_fifo"
        if engine == "continuous":
            eng = backend.streamer(size)
            eng.reset_prefix()
            eng.reuse = run != "no_reuse"
            eng.priorities = run != "reuse_fifo"
        cap = min(len(chunks), max(256, int(rate * args.run_seconds * 3)))
        offset = (warm_n + i * 97) % max(1, len(chunks) - cap) if len(chunks) > cap else 0
        g.reset_peak()
        slots_engine = backend.slots_engine
        before = dict(slots_engine.stats) if slots_engine is not None else {}
        salted = forcing.NoReuse(backend) if engine == "vllm" and run == "no_reuse" else backend
        r = pipeline_pass(args, salted, run, chunks[offset : offset + cap], size, args.run_seconds)
        st = r["stats"]
        eng_stats = (
            {k: v - before.get(k, 0) for k, v in slots_engine.stats.items()}
            if slots_engine
            else None
        )
        eng_notes = list(slots_engine.notes) if slots_engine is not None else []
        rec.record(
            **common(args, way, run),
            engine=backend.engine,
            feed=st.feed,
            quantization="bf16",
            batch=st.batch_size,
            prefix_reuse=run != "no_reuse" and engine != "static",
            rows=r["rows"],
            chunks_offered=cap,
            chunks_dropped=st.dropped,
            prompts=sum(st.prompts.values()),
            prompts_by_stage=st.prompts,
            seconds=r["seconds"],
            out_tokens=st.output_tokens,
            prompt_tokens=st.prompt_tokens,
            cached_tokens=st.cached_tokens,
            most_in_flight=st.most_in_flight,
            kv_cache_tokens=st.kv_tokens,
            cached_share=round(st.cached_tokens / st.prompt_tokens, 3)
            if st.prompt_tokens
            else None,
            **rates(r["rows"], r["seconds"], st.output_tokens, st.prompt_tokens),
            prompts_s=round(sum(st.prompts.values()) / r["seconds"], 2),
            overridden=r["overridden"],
            rejected=r["rejected"],
            first_result_s=r["first_row_s"],
            start_s=start_s,
            load_s=load_s,
            warmup_s=warmup_s,
            warmup_rows=warm["rows"],
            engine_stats=eng_stats,
            oom_retries=st.oom_retries,
            notes=list(backend.notes[notes_from:]) + eng_notes,
            load_shared=shared,
            **g.memory(),
        )


# --- the anchor: a plain vLLM script --------------------------------------------------------


def way_vllm_raw(
    args: argparse.Namespace, way: str, runs: tuple[str, ...], rec: g.Recorder
) -> None:
    from synthgen.backends.base import ModelSpec, encode, load_tokenizer
    from synthgen.backends.vllm_engine import spawn_workers
    from synthgen.generate import prompting

    spawn_workers()  # before vLLM's engine: CUDA may be initialised in this process
    from vllm import LLM, SamplingParams

    chunks = json.loads(Path(args.chunks_file).read_text())
    pr = compose(args, "notebook").prompt
    t = time.time()
    llm = LLM(
        model=args.ckpt,
        dtype="bfloat16",
        max_model_len=args.max_seq_length,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enable_prefix_caching=False,
    )
    start_s = round(time.time() - t, 1)
    load_s = round(time.time() - rec.t0, 1)
    tok = load_tokenizer(ModelSpec(name_or_path=args.ckpt))

    def user(text: str) -> list[int]:
        return encode(tok, [{"role": "user", "content": text}])

    def sp(n: int) -> SamplingParams:
        return SamplingParams(
            temperature=0, max_tokens=n, min_tokens=n, ignore_eos=True, detokenize=False
        )

    def rows_of(part: list[dict]) -> tuple[int, int, int]:
        """Questions of every chunk, then answers to them: (rows, out tokens, prompt tokens)."""
        q_ids = [user(prompting.question_prompt(pr.question, c["text"])) for c in part]
        qs = llm.generate(
            [{"prompt_token_ids": x} for x in q_ids],
            [sp(row_lengths(args, c["id"], "no_reuse")[0]) for c in part],
            use_tqdm=False,
        )
        questions = [
            tok.decode(o.outputs[0].token_ids, skip_special_tokens=True).strip() for o in qs
        ]
        a_ids = [
            user(prompting.answer_prompt(pr.answer, c["text"], q))
            for c, q in zip(part, questions, strict=True)
        ]
        ans = llm.generate(
            [{"prompt_token_ids": x} for x in a_ids],
            [sp(row_lengths(args, c["id"], "no_reuse")[1]) for c in part],
            use_tqdm=False,
        )
        out = sum(len(o.outputs[0].token_ids) for o in [*qs, *ans])
        return len(part), out, sum(map(len, q_ids)) + sum(map(len, a_ids))

    llm.generate([{"prompt_token_ids": user(chunks[0]["text"])}] * 32, sp(8), use_tqdm=False)
    t = time.time()
    calib = rows_of(chunks[:256])
    warmup_s = round(time.time() - t, 1)
    rec.first_row()
    rate = calib[0] / warmup_s
    n = min(len(chunks) - 256, max(256, int(rate * args.run_seconds)))
    if out_of_time(args, n / rate + 10):
        n = max(64, int(rate * max(5.0, args.deadline - time.time() - 15)))
    t = time.time()
    rows, out_tokens, prompt_tokens = rows_of(chunks[256 : 256 + n])
    dt = round(time.time() - t, 2)
    rec.record(
        **common(args, way, "no_reuse"),
        engine="vllm.LLM.generate",
        feed="two llm.generate calls (questions, then answers)",
        quantization="bf16",
        batch="vllm",
        prefix_reuse=False,
        rows=rows,
        prompts=2 * rows,
        seconds=dt,
        out_tokens=out_tokens,
        prompt_tokens=prompt_tokens,
        cached_tokens=0,
        **rates(rows, dt, out_tokens, prompt_tokens),
        prompts_s=round(2 * rows / dt, 2),
        start_s=start_s,
        load_s=load_s,
        warmup_s=warmup_s,
        warmup_rows=calib[0],
        max_model_len=args.max_seq_length,
        **g.memory(),
    )


# --- the notebook's code --------------------------------------------------------------------


def pickup_result(str_cut: str, result: str) -> str:
    """The notebook's own parsing of a reply, unchanged."""
    index_cut = result.index(str_cut)
    result = result[index_cut:].replace(str_cut, "")
    result = result.replace("<|eot_id|>", "")
    return result.replace("\n", "")


def way_notebook(
    args: argparse.Namespace, way: str, runs: tuple[str, ...], rec: g.Recorder
) -> None:
    """The notebook's generate_queries / generate_answers cells, one chunk after the other."""
    from synthgen.generate import prompting

    chunks = json.loads(Path(args.chunks_file).read_text())[: args.notebook_rows]
    pr = compose(args, "notebook").prompt
    t = time.time()
    from transformers import TextStreamer
    from unsloth import FastLanguageModel
    from unsloth.chat_templates import get_chat_template

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(args.ckpt), max_seq_length=4096, load_in_4bit=True
    )
    tokenizer = get_chat_template(
        tokenizer,
        chat_template="llama-3.1",
        mapping={"role": "from", "content": "value", "user": "human", "assistant": "gpt"},
    )
    FastLanguageModel.for_inference(model)
    start_s = round(time.time() - t, 1)

    def ask(query: str, n: int) -> tuple[str, int]:
        inputs = tokenizer.apply_chat_template(
            [{"from": "human", "value": query}],
            tokenize=True,
            add_generation_prompt=True,
            return_tensors="pt",
        ).to("cuda")
        if not hasattr(inputs, "shape"):
            inputs = inputs["input_ids"]
        response = model.generate(
            input_ids=inputs,
            streamer=TextStreamer(tokenizer),
            max_new_tokens=n,
            min_new_tokens=n,
            use_cache=True,
        )
        result = str(tokenizer.batch_decode(response)[0])
        for cut in (
            "<|start_header_id|>human<|end_header_id|>",
            "<|start_header_id|>assistant<|end_header_id|>",
        ):
            if cut in result:
                result = pickup_result(cut, result)
        return result, int(response.shape[1] - inputs.shape[1])

    tokens, t = 0, time.time()
    for c in chunks:
        q_n, a_n = row_lengths(args, c["id"], "no_reuse")
        question, k = ask(prompting.question_prompt(pr.question, c["text"]), q_n)
        tokens += k
        _, k = ask(prompting.answer_prompt(pr.answer, c["text"], question), a_n)
        tokens += k
        rec.first_row()
    dt = round(time.time() - t, 2)
    rec.record(
        **common(args, way, "no_reuse"),
        engine="unsloth generate + TextStreamer",
        feed="one prompt",
        quantization="bnb 4-bit (Unsloth)",
        batch=1,
        prefix_reuse=False,
        rows=len(chunks),
        prompts=2 * len(chunks),
        seconds=dt,
        out_tokens=tokens,
        **rates(len(chunks), dt, tokens, 0),
        prompts_s=round(2 * len(chunks) / dt, 3),
        start_s=start_s,
        load_s=round(time.time() - rec.t0 - dt, 1),
        **g.memory(),
    )


FNS = {"vllm_raw": way_vllm_raw, "notebook": way_notebook}


def child(args: argparse.Namespace) -> int:
    rec = g.Recorder(args)
    plan = parse_ways(args.child.replace("/", ","))  # "continuous:...,static:...": one process
    way, runs_t = plan[0][0], tuple(r for _, runs in plan for r in runs)
    try:
        if way in FNS:
            FNS[way](args, way, plan[0][1], rec)
        else:
            way_synthgen(args, plan, rec)
        return 0
    except BaseException as e:  # noqa: BLE001  the line says what failed; the parent goes on
        tb = traceback.format_exc()
        log(tb[-3000:])
        with contextlib.suppress(Exception):
            rec.record(
                workload="pipeline",
                way=way,
                run="+".join(runs_t),
                error=tb[-3000:],
                error_line=f"{type(e).__name__}: {e}"[:300],
            )
        return 1


# --- the parent ------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    if args.child:
        return child(args)
    ways = parse_ways(args.ways)
    args.invocation = args.invocation or datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    t0 = time.time()
    deadline = t0 + args.budget
    log(
        "pipeline workload, invocation",
        args.invocation,
        "ways",
        [f"{w}:{'+'.join(r)}" for w, r in ways],
    )
    ckpt = g.build_checkpoint(args.model, Path(args.ckpt), args.tiny)
    cf = Path(ckpt) / f"chunks_{args.chunks}.json"
    if not cf.exists():
        cf.write_text(json.dumps(chunk_pool(args.chunks)))
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="wl-runs-"))
    failed = 0
    children = group(ways)
    for plan in children:
        name = "/".join(w for w, _ in plan)
        spec = "/".join(f"{w}:{'+'.join(r)}" for w, r in plan)
        left = deadline - time.time()
        before = len(g.lines_of(Path(args.results), args.invocation))
        if left < 30:
            for w, r in plan:
                parent_line(args, w, r, skipped=f"no time left in --budget {args.budget:.0f} s")
            continue
        cmd = [sys.executable, str(REPO / "benchmarks" / "generation.py"), *sys.argv[1:]]
        cmd += ["--child", spec, "--invocation", args.invocation, "--chunks-file", str(cf)]
        cmd += ["--results", args.results, "--scratch", str(scratch), "--deadline", str(deadline)]
        timeout = int(min(600 if args.tiny else sum(WAYS[w][2] for w, _ in plan), left))
        log("way", spec, f"(at most {timeout} s)")
        t = time.time()
        err = g.run_child(cmd, timeout, quiet=name == "notebook")
        got = g.lines_of(Path(args.results), args.invocation)[before:]
        if err:
            failed += 1
            if not any("error" in r for r in got):  # the child could not say it itself
                parent_line(
                    args,
                    name,
                    tuple(r for _, rs in plan for r in rs),
                    error=err,
                    error_line=err,
                    lines_written=len(got),
                )
        log(
            f"way {name}: {len(got)} lines in {time.time() - t:.0f} s" + (f", {err}" if err else "")
        )
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"pipeline workload: {time.time() - t0:.0f} s in all")
    g.write_table(args, args.invocation)
    return 1 if failed == len(children) else 0


def group(ways: list[tuple[str, tuple[str, ...]]]) -> list[list[tuple[str, tuple[str, ...]]]]:
    """One child process per way; continuous followed by static share one (one model load)."""
    out: list[list[tuple[str, tuple[str, ...]]]] = []
    for way, runs in ways:
        if way == "static" and out and out[-1][-1][0] == "continuous":
            out[-1].append((way, runs))
        else:
            out.append([(way, runs)])
    return out


def parent_line(args: argparse.Namespace, way: str, runs: tuple[str, ...], **what: object) -> None:
    g.append_line(
        args,
        {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "invocation": args.invocation,
            "workload": "pipeline",
            "way": way,
            "run": "+".join(runs),
            **what,
        },
    )


# --- the table -------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    """The invocation's pipeline lines as Markdown, ratios to the anchor (vllm_raw)."""
    rows = [r for r in rows if r.get("workload") == "pipeline"]
    if not rows:
        return ""
    head = next((r for r in rows if "versions" in r), rows[0])
    v = head.get("versions", {})
    ver = ", ".join(f"{k} {v[k]}" for k in v if v[k])
    anchor = next(
        (r["rows_h"] for r in rows if r.get("way") == "vllm_raw" and r.get("rows_h")), None
    )
    out = [
        f"### {head.get('date', '?')[:10]}, {head.get('gpu')}, {head.get('model')} shape (random weights), "
        f"pipeline workload, invocation {head.get('invocation')}",
        "",
        f"Versions: {ver}. Each row: a question call, then an answer call (questions_only: none; qa_pair: "
        f"one call for both), lengths forced per row (question/answer new tokens uniform in "
        f"{head.get('lengths')}, seed {head.get('seed')}). rows/hour = finished rows / wall seconds of the "
        "timed run x 3600; GPU-s per 1k rows = seconds / rows x 1000 (one GPU). start s = engine start "
        "(weights, graphs), not in the timed run. cached = share of prompt tokens a prefix cache supplied.",
        "",
        "| way | run | engine | prefix reuse | rows | s | rows/hour | GPU-s / 1k rows | vs anchor | output tok/s | prompt tok/s | cached | start s | warm-up s | GPU GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in rows:
        if r.get("skipped") or r.get("error") or r.get("error_line"):
            why = (
                r.get("skipped")
                or str(r.get("error_line") or r.get("error")).strip().splitlines()[-1][:160]
            )
            out.append(
                f"| {r.get('way')} | {r.get('run')} | {'skipped' if r.get('skipped') else 'failed'}: {why.replace('|', '/')} | | | | | | | | | | | | |"
            )
            continue
        ratio = f"{r['rows_h'] / anchor:.2f}x" if anchor and r.get("rows_h") else "-"
        cached = f"{r['cached_share']:.0%}" if r.get("cached_share") is not None else "-"
        out.append(
            f"| {r['way']} | {r['run']} | {r.get('engine')} | {'on' if r.get('prefix_reuse') else 'off'} | "
            f"{r['rows']} | {r['seconds']} | {r['rows_h']:,} | {r['gpu_s_per_1k_rows']} | {ratio} | "
            f"{r.get('tok_s') or 0:,.0f} | {r.get('prompt_tok_s') or 0:,} | {cached} | {r.get('start_s')} | "
            f"{r.get('warmup_s')} | {r.get('device_used_gb')} |"
        )
        if r.get("overridden"):
            notes.append(
                f"- {r['way']}/{r['run']}: kept what the gates would reject (random weights): {r['overridden']}"
            )
        if r.get("notes"):
            notes.append(f"- {r['way']}/{r['run']}: " + "; ".join(r["notes"]))
    return "\n".join(out + [""] + sorted(set(notes))) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    w = ap.add_argument_group("--workload pipeline")
    w.add_argument(
        "--run-seconds",
        type=float,
        default=25.0,
        help="each timed run starts no new chunk after this (s)",
    )
    w.add_argument("--chunks", type=int, default=3000, help="distinct chunks in the pool")
    w.add_argument(
        "--lengths",
        default="15-60,40-250",
        help="question and answer new tokens, drawn uniformly per row",
    )
    w.add_argument("--seed", type=int, default=0, help="seed of the drawn lengths")
    w.add_argument("--notebook-rows", type=int, default=2, help="rows of the notebook way (slow)")
    w.add_argument(
        "--budget",
        type=float,
        default=530.0,
        help="seconds for the whole command; what does not fit is skipped",
    )
    w.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    w.add_argument("--chunks-file", default=None, help=argparse.SUPPRESS)
    w.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)

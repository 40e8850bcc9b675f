"""Generation throughput: the notebook's way vs synthgen's engine, side by side, in one run.

Builds a random-weight checkpoint with the exact architecture of a model config (nothing is
downloaded: only the shape matters for speed), makes prompts of the pipeline's real shape
(the `prompt=notebook` question prompt around the sample corpus' 1,000-2,000 character
chunks, through the chat template) and times, each in its own process:

  notebook    the notebook's code: Unsloth 4-bit, one prompt at a time, TextStreamer
  hf_bf16     synthgen: transformers backend, bf16, through synthgen.generation.run_queue
  hf_nf4      synthgen: transformers backend, bitsandbytes nf4 4-bit, same code
  unsloth     synthgen: Unsloth backend, 4-bit, same code
  (engine and batch of each synthgen row: --engine, --batch; `auto` picks from free memory)

The output length is forced (min_new_tokens = max_new_tokens) so every way makes the same
number of tokens. tok/s = output tokens / wall seconds of the timed pass (prefill included);
the first pass (compilation, warm-up) is timed apart as seconds to the first row.

    python benchmarks/generation.py                      # GPU machine, all four ways
    python benchmarks/generation.py --tiny --variants hf_bf16 --engine dynamic   # CPU check

Rows are appended to benchmarks/RESULTS.md (and --json) with date, GPU and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Architectures of the model configs (from each model's published config.json), so a
# checkpoint of the real shape can be built offline. phi35_mini: its long-RoPE tables are
# left out (they change no matrix shape).
ARCH: dict[str, tuple[str, dict]] = {
    "llama31_8b": (
        "LlamaConfig",
        dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=131072,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            tie_word_embeddings=False,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        ),
    ),
    "llama32_3b": (
        "LlamaConfig",
        dict(
            vocab_size=128256,
            hidden_size=3072,
            intermediate_size=8192,
            num_hidden_layers=28,
            num_attention_heads=24,
            num_key_value_heads=8,
            max_position_embeddings=131072,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            tie_word_embeddings=True,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        ),
    ),
    "qwen25_7b": (
        "Qwen2Config",
        dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            max_position_embeddings=32768,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=False,
        ),
    ),
    "mistral_7b": (
        "MistralConfig",
        dict(
            vocab_size=32768,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=32768,
            rms_norm_eps=1e-5,
            rope_theta=1000000.0,
            sliding_window=None,
            tie_word_embeddings=False,
        ),
    ),
    "gemma2_9b": (
        "Gemma2Config",
        dict(
            vocab_size=256000,
            hidden_size=3584,
            intermediate_size=14336,
            num_hidden_layers=42,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=256,
            max_position_embeddings=8192,
            rms_norm_eps=1e-6,
            rope_theta=10000.0,
            tie_word_embeddings=True,
        ),
    ),
    "phi35_mini": (
        "Phi3Config",
        dict(
            vocab_size=32064,
            hidden_size=3072,
            intermediate_size=8192,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=131072,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
        ),
    ),
}
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)

# Llama-3-style special tokens and chat template, so Unsloth's "llama-3.1" template applies too
SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|finetune_right_pad_id|>",
]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --- checkpoint and prompts ---------------------------------------------------------------


def build_checkpoint(model: str, out: Path, tiny: bool) -> Path:
    """Random weights of the real shape, saved like a hub checkpoint (safetensors + tokenizer)."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        log("checkpoint exists:", out)
        return out
    t = time.time()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO / "data").rglob("*.md"))]
    trainer = trainers.BpeTrainer(
        vocab_size=16000,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
    )
    fast.chat_template = TEMPLATE
    cls_name, dims = ARCH[model]
    dims = {**dims, **TINY, "vocab_size": len(fast)} if tiny else dims
    ids = {
        t: fast.convert_tokens_to_ids(t)
        for t in ("<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>")
    }
    config = getattr(transformers, cls_name)(
        **dims,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=ids["<|eot_id|>"],
        pad_token_id=ids["<|finetune_right_pad_id|>"],
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        m = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.02)
    out.mkdir(parents=True, exist_ok=True)
    m.save_pretrained(out, max_shard_size="5GB")
    fast.save_pretrained(out)
    log(
        f"checkpoint {model} ({sum(p.numel() for p in m.parameters()) / 1e9:.2f} B params) in {time.time() - t:.0f} s"
    )
    del m
    return out


def pipeline_prompts(n: int) -> list[str]:
    """The notebook question prompt around the sample corpus' selected chunks, cycled to n."""
    from omegaconf import OmegaConf

    from synthgen import chunking, prompting, reading, selection

    corpus = OmegaConf.load(REPO / "conf/corpus/movies.yaml")
    chunk_cfg = OmegaConf.load(REPO / "conf/chunking/notebook.yaml")
    kw = OmegaConf.load(REPO / "conf/keywords/film.yaml")
    prompt = OmegaConf.load(REPO / "conf/prompt/notebook.yaml")
    d = REPO / corpus.dir
    files = reading.resolve_files(d, list(corpus.train_files) + list(corpus.val_files), "corpus")
    docs, _, _ = reading.read_files(d, files)
    chunks = chunking.chunk_docs(docs, chunk_cfg.chunk_size, chunk_cfg.chunk_overlap)
    kept, _ = selection.select(
        chunks, chunk_cfg.min_chars, chunk_cfg.max_chars, list(kw.words), kw.match
    )
    texts = [prompting.question_prompt(prompt.question, c.text) for c in kept]
    return [texts[i % len(texts)] for i in range(n)]


# --- the ways, each run in a child process ---------------------------------------------------


def gpu_info() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"gpu": "cpu"}
    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30),
    }


def peak_gb() -> float | None:
    import torch

    return (
        round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None
    )


def way_notebook(ckpt: Path, prompts: list[str], new: int, n: int) -> dict:
    """The notebook's cells, unchanged but for the forced output length and the loop size."""
    t0 = time.time()
    from unsloth import FastLanguageModel
    from unsloth.chat_templates import get_chat_template

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(ckpt), max_seq_length=4096, load_in_4bit=True
    )
    from transformers import TextStreamer

    tokenizer = get_chat_template(
        tokenizer,
        chat_template="llama-3.1",
        mapping={"role": "from", "content": "value", "user": "human", "assistant": "gpt"},
    )
    FastLanguageModel.for_inference(model)
    first_row = None
    tokens, t = 0, time.time()
    for query in prompts[:n]:
        messages = [{"from": "human", "value": query}]
        inputs = tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=True, return_tensors="pt"
        ).to("cuda")
        if not hasattr(inputs, "shape"):  # newer transformers return a BatchEncoding
            inputs = inputs["input_ids"]
        text_streamer = TextStreamer(tokenizer)
        response = model.generate(
            input_ids=inputs,
            streamer=text_streamer,
            max_new_tokens=new,
            min_new_tokens=new,
            use_cache=True,
        )
        tokens += response.shape[1] - inputs.shape[1]
        tokenizer.batch_decode(response)
        first_row = first_row or time.time() - t0
    dt = time.time() - t
    return {
        "way": "notebook",
        "engine": "unsloth generate + TextStreamer",
        "quant": "bnb 4-bit (Unsloth)",
        "batch": 1,
        "prompts": n,
        "out_tokens": tokens,
        "seconds": round(dt, 2),
        "tok_s": round(tokens / dt, 1),
        "first_row_s": round(first_row, 1),
        "peak_gb": peak_gb(),
    }


def way_engine(
    way: str, ckpt: Path, prompts: list[str], new: int, engine: str, batch: str, chunk: int
) -> dict:
    """synthgen's own code: the backend as the pipeline builds it, and run_queue."""
    t0 = time.time()
    from synthgen.backends.base import Generated, GenParams, encode
    from synthgen.generation import Job, Stats, run_queue

    spec = dict(
        name_or_path=str(ckpt),
        max_seq_length=4096,
        dtype="bfloat16",
        eos_tokens=["<|eot_id|>"],
        load_in_4bit=way in ("hf_nf4", "unsloth"),
        backend="unsloth" if way == "unsloth" else "transformers",
    )
    if way == "unsloth":
        from synthgen.backends.unsloth import Backend
    else:
        from synthgen.backends.transformers import Backend
    backend = Backend(engine=engine, prefill_chunk_size=chunk, **spec)
    load_s = time.time() - t0
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    ids = [encode(backend.tokenizer, m) for m in msgs]
    lens = sorted(len(x) for x in ids)
    size = backend.auto_batch_size(new, lens[-1]) if batch == "auto" else int(batch)
    params = GenParams(max_new_tokens=new, min_new_tokens=new, do_sample=False)
    done: list[Generated] = []

    def on_result(job: Job, out: Generated) -> list[Job]:
        done.append(out)
        return []

    # warm-up pass: compiles the static engine; its end is when the first rows would be written
    warm = Stats()
    run_queue(
        backend.generate,
        [Job("question", x, i) for i, x in enumerate(ids[:size])],
        on_result,
        params,
        size,
        stats=warm,
    )
    first_row = time.time() - t0
    warm_s = time.time() - t0 - load_s
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    stats = Stats()
    t = time.time()
    run_queue(
        backend.generate,
        [Job("question", x, i) for i, x in enumerate(ids)],
        on_result,
        params,
        warm.batch_size or size,
        stats=stats,
    )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    dt = time.time() - t
    assert all(g.tokens == new for g in done), "forced output length not met"
    quant = {"hf_bf16": "bf16", "hf_nf4": "bnb nf4 4-bit", "unsloth": "bnb 4-bit (Unsloth)"}[way]
    return {
        "way": way,
        "engine": backend.engine,
        "quant": quant,
        "batch": warm.batch_size or size,
        "prompts": len(ids),
        "out_tokens": stats.output_tokens,
        "seconds": round(dt, 2),
        "tok_s": round(stats.output_tokens / dt, 1),
        "first_row_s": round(first_row, 1),
        "load_s": round(load_s, 1),
        "warmup_s": round(warm_s, 1),
        "peak_gb": peak_gb(),
        "prompt_tokens_min_mean_max": [lens[0], round(sum(lens) / len(lens)), lens[-1]],
        "oom_retries": warm.oom_retries + stats.oom_retries,
        "notes": backend.notes,
    }


def child(args: argparse.Namespace) -> None:
    prompts = json.loads(Path(args.prompts_file).read_text())
    try:
        if args.child == "notebook":
            r = way_notebook(Path(args.ckpt), prompts, args.new_tokens, args.notebook_prompts)
        else:
            r = way_engine(
                args.child,
                Path(args.ckpt),
                prompts,
                args.new_tokens,
                args.engine,
                args.batch,
                args.prefill_chunk,
            )
    except Exception:
        r = {"way": args.child, "error": traceback.format_exc()[-3000:], "peak_gb": peak_gb()}
    Path(args.result_file).write_text(json.dumps(r))


# --- the run --------------------------------------------------------------------------------


def versions() -> dict:
    from importlib import metadata

    out = {}
    for p in ("torch", "transformers", "unsloth", "bitsandbytes"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def table(rows: list[dict], meta: dict) -> str:
    base = next((r["tok_s"] for r in rows if r.get("way") == "notebook" and "tok_s" in r), None)
    v = meta["versions"]
    ver = f"torch {v['torch']}, transformers {v['transformers']}, unsloth {v['unsloth']}, bnb {v['bitsandbytes']}"
    lines = [
        f"### {meta['date']}, {meta['gpu']}, {meta['model']} shape (random weights), {meta['new_tokens']} new tokens",
        "",
        f"Versions: {ver}. Prompts: the notebook question prompt around the sample corpus' chunks, "
        f"{meta.get('prompt_tokens', '?')} tokens (min/mean/max) through the chat template. "
        "tok/s = output tokens / wall seconds of the timed pass, prefill included; "
        "first row = seconds from process start (load, compile, first batch) to the first finished rows.",
        "",
        "| way | engine | dtype / quantization | batch | prompts | output tok/s | vs notebook | peak GPU GB | s to first row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            err = r["error"].strip().splitlines()[-1][:160].replace("|", "/")
            lines.append(f"| {r['way']} | failed: {err} | | | | | | {r.get('peak_gb')} | |")
            continue
        ratio = f"{r['tok_s'] / base:.0f}x" if base else "-"
        lines.append(
            f"| {r['way']} | {r['engine']} | {r['quant']} | {r['batch']} | {r['prompts']} | "
            f"{r['tok_s']:,.0f} | {ratio} | {r['peak_gb']} | {r['first_row_s']} |"
        )
    notes = [f"- {r['way']}: " + "; ".join(r["notes"]) for r in rows if r.get("notes")]
    notes += [f"- {r['way']}: OOM backoff {r['oom_retries']}" for r in rows if r.get("oom_retries")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="llama31_8b", choices=sorted(ARCH))
    ap.add_argument("--variants", default="notebook,hf_bf16,hf_nf4,unsloth")
    ap.add_argument("--prompts", type=int, default=768, help="prompts for each synthgen way")
    ap.add_argument(
        "--notebook-prompts", type=int, default=3, help="prompts for the notebook way (slow)"
    )
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--engine", default="auto", help="synthgen engine: auto | static | dynamic")
    ap.add_argument("--batch", default="auto", help="synthgen batch size, or auto")
    ap.add_argument("--prefill-chunk", type=int, default=0)
    ap.add_argument("--ckpt", default="/tmp/synthgen-bench-ckpt")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="a 2-layer model of the same family: checks the script on a CPU",
    )
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--json", default=os.environ.get("OUT", "/tmp") + "/bench.json")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed to each way")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--prompts-file", help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    meta = {
        "date": date.today().isoformat(),
        "model": args.model,
        "new_tokens": args.new_tokens,
        "versions": versions(),
        **gpu_info(),
    }
    ckpt = build_checkpoint(args.model, Path(args.ckpt), args.tiny)
    prompts = pipeline_prompts(args.prompts)
    pf = Path(args.ckpt) / "prompts.json"
    pf.write_text(json.dumps(prompts))
    rows: list[dict] = []
    for way in [v for v in args.variants.split(",") if v]:
        rf = Path(args.ckpt) / f"result_{way}.json"
        rf.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            __file__,
            "--child",
            way,
            "--ckpt",
            str(ckpt),
            "--prompts-file",
            str(pf),
            "--result-file",
            str(rf),
            "--new-tokens",
            str(args.new_tokens),
            "--engine",
            args.engine,
            "--batch",
            args.batch,
            "--prefill-chunk",
            str(args.prefill_chunk),
            "--notebook-prompts",
            str(args.notebook_prompts),
        ]
        log("way", way)
        try:
            p = subprocess.run(
                cmd, timeout=args.timeout, stdout=subprocess.DEVNULL if way == "notebook" else None
            )
            r = (
                json.loads(rf.read_text())
                if rf.exists()
                else {"way": way, "error": f"exit code {p.returncode}"}
            )
        except subprocess.TimeoutExpired:
            r = {"way": way, "error": f"timed out after {args.timeout} s"}
        log(
            "result",
            json.dumps({k: v for k, v in r.items() if k != "error"}),
            r.get("error", "")[-600:],
        )
        rows.append(r)
        meta.setdefault("prompt_tokens", r.get("prompt_tokens_min_mean_max"))
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = table(rows, meta)
    print(text)
    if not args.tiny:
        res = Path(args.results)
        head = (
            ""
            if res.exists()
            else "# Generation benchmark results\n\nWritten by `benchmarks/generation.py`; newest last.\n\n"
        )
        with open(res, "a", encoding="utf-8") as f:
            f.write(head + text + "\n")


if __name__ == "__main__":
    main()

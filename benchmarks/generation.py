"""Generation throughput: the notebook's way, synthgen's engines and vLLM itself, on one card.

Builds a random-weight checkpoint with the exact architecture of a model config (nothing is
downloaded: only the shape matters for speed), makes prompts of the pipeline's real shape
(the `prompt=notebook` question prompt around the sample corpus' 1,000-2,000 character
chunks, through the chat template), tokenizes them once with synthgen's own code, and times
each way in its own child process (its own timeout: one failing way loses no other):

  notebook           the notebook's code: Unsloth 4-bit, one prompt at a time, TextStreamer
  hf_bf16, hf_nf4    transformers backend, bf16 / bitsandbytes nf4, synthgen's static engine
                     (--hf-engine), fed batch by batch through synthgen.generate.feed.drive
  hf_continuous      transformers backend, bf16, engine=continuous (KV slots refilled as rows
                     finish, sub-batch prefill, CUDA-graph decode), streamed through drive
  unsloth            Unsloth backend, 4-bit, Unsloth's own generate (engine=dynamic)
  unsloth_static_4bit  Unsloth backend, 4-bit, synthgen's static engine (engine=static)
  vllm_raw           the anchor: a plain vLLM script on the same token ids, prefix caching off:
                     LLM(model=dir, dtype="bfloat16", max_model_len=1024,
                     gpu_memory_utilization=0.9, enable_prefix_caching=False).generate(...,
                     SamplingParams(temperature=0, max_tokens=N, min_tokens=N,
                     ignore_eos=True, detokenize=False))
  vllm               synthgen's engine=vllm (transformers backend, bf16) through
                     synthgen.generate.feed.drive, once per feed (--feeds: stream, waves), then
                     LLM.generate on the same engine (feed "llm.generate": our overhead there)
  vllm_4bit          the same in 4-bit (vLLM's bitsandbytes path), memory capped (--four-bit-gib)
  unsloth_vllm       Unsloth backend, engine=vllm: Unsloth's fast_inference engine, bf16
  unsloth_vllm_4bit  the same in 4-bit (vLLM's bitsandbytes path inside Unsloth), capped
  run_py             `python run.py` end to end (--run-args), read back from its summary.json;
                     run_py_novllm the same with vLLM hidden (as where it is not installed)

Every way of a child shares one loaded engine over the --new-tokens values (128,32 by
default) and feeds, with prefix caching off (the prompts repeat ~50 chunks). The output
length is forced (min = max new tokens). tok/s = output tokens / wall seconds of the timed
pass, prefill included; the warm-up before it (compilation, CUDA graphs) is counted in the
seconds to the first row instead.

Every measurement is appended at once, as one JSON line, to benchmarks/results.jsonl (and to
DIR/results.jsonl with --out DIR, or $OUT): date, gpu, versions, way, engine, feed,
quantization, batch, prompts, new_tokens, tok_s, prompts_s, peak_gb, first_row_s, load_s and
the `invocation` id shared by all ways of one invocation (pass the same --invocation to the
commands of one GPU session). At the end the invocation's table goes to RESULTS.md;
`--report ID` writes it again from results.jsonl.

    python benchmarks/generation.py --ways vllm_raw,vllm --new-tokens 128,32   # GPU machine
    python benchmarks/generation.py --tiny --ways hf_bf16 --hf-engine dynamic  # CPU check
    python benchmarks/generation.py --report 2026-12-01T10-00-00                # table again
    python benchmarks/generation.py --workload pipeline    # rows/hour on the real workload

`--workload pipeline` (benchmarks/workload.py) measures finished rows per hour instead: a question
and then an answer call per chunk through the pipeline's own RowMaker, lengths drawn per row.
See benchmarks/gpu_session.md for the GPU session that produces the issue's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # no flashinfer on the GPU machine

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


# way -> how it runs: backend, 4-bit weights, engine ("hf" follows --hf-engine)
WAYS: dict[str, dict] = {
    "notebook": {"backend": "unsloth", "four_bit": True, "engine": "notebook"},
    "hf_bf16": {"backend": "transformers", "four_bit": False, "engine": "hf"},
    "hf_nf4": {"backend": "transformers", "four_bit": True, "engine": "hf"},
    "hf_continuous": {"backend": "transformers", "four_bit": False, "engine": "continuous"},
    "unsloth": {"backend": "unsloth", "four_bit": True, "engine": "dynamic"},
    "unsloth_static_4bit": {"backend": "unsloth", "four_bit": True, "engine": "static"},
    "vllm_raw": {"backend": "vllm", "four_bit": False, "engine": "vllm_raw"},
    "vllm": {"backend": "transformers", "four_bit": False, "engine": "vllm"},
    "vllm_4bit": {"backend": "transformers", "four_bit": True, "engine": "vllm"},
    "unsloth_vllm": {"backend": "unsloth", "four_bit": False, "engine": "vllm"},
    "unsloth_vllm_4bit": {"backend": "unsloth", "four_bit": True, "engine": "vllm"},
    "run_py": {"backend": None, "four_bit": None, "engine": "run_py"},
    "run_py_novllm": {"backend": None, "four_bit": None, "engine": "run_py"},
}
QUANT = {False: "bf16", True: "bnb 4-bit"}


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
    if device == "cuda":  # the allocator's 16 GB would stay reserved: vLLM's child needs them
        torch.cuda.empty_cache()
    return out


def pipeline_prompts(n: int) -> list[str]:
    """The notebook question prompt around the sample corpus' selected chunks, cycled to n."""
    from hydra import compose, initialize_config_dir

    from synthgen.corpus import chunking, reading, selection
    from synthgen.generate import prompting

    # the default config's corpus, chunking and keywords (each option holds only what differs
    # from its schema, so they are composed, not read from their files), the notebook prompt
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["prompt=notebook"])
    corpus, chunk_cfg, kw, prompt = cfg.corpus, cfg.chunking, cfg.keywords, cfg.prompt
    d = REPO / corpus.dir
    files = reading.resolve_files(d, list(corpus.train_files) + list(corpus.val_files), "corpus")
    docs, _, _ = reading.read_files(d, files)
    chunks = chunking.chunk_docs(docs, chunk_cfg.chunk_size, chunk_cfg.chunk_overlap)
    kept, _ = selection.select(
        chunks, chunk_cfg.min_chars, chunk_cfg.max_chars, list(kw.words), kw.match
    )
    texts = [prompting.question_prompt(prompt.question, c.text) for c in kept]
    return [texts[i % len(texts)] for i in range(n)]


# --- what every result line carries ----------------------------------------------------------


def versions() -> dict:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for p in ("torch", "transformers", "vllm", "unsloth", "bitsandbytes"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    try:
        out["synthgen"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["synthgen"] = None
    return out


def gpu_info() -> dict:
    """Name and memory of the card. Called after an engine started: it initializes CUDA."""
    import torch

    if not torch.cuda.is_available():
        return {"gpu": "cpu", "gpu_gb": None}
    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30),
    }


def memory() -> dict:
    """torch's allocator peak in this process, and the card's used memory (every process: vLLM's
    engine core runs in a process of its own), both in GiB."""
    import torch

    if not torch.cuda.is_available():
        return {"peak_gb": None, "device_used_gb": None}
    free, total = torch.cuda.mem_get_info()
    return {
        "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        "device_used_gb": round((total - free) / 2**30, 1),
    }


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def result_paths(args: argparse.Namespace) -> list[Path]:
    paths = [Path(args.results)]
    if args.out:
        paths.append(Path(args.out) / "results.jsonl")
    return paths


def append_line(args: argparse.Namespace, line: dict) -> None:
    """One JSON line per measurement, on disk at once (a later way may kill the machine)."""
    text = json.dumps(line, ensure_ascii=False) + "\n"
    for path in result_paths(args):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


class Recorder:
    """The child's context: when it started, what every line carries, the lines so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.t0 = args, time.time()
        self.base: dict | None = None
        self.first_row_s: float | None = None

    def first_row(self) -> None:
        if self.first_row_s is None:
            self.first_row_s = round(time.time() - self.t0, 1)

    def record(self, **row: object) -> dict:
        a = self.args
        if self.base is None:  # after the engine started (gpu_info initializes CUDA)
            self.base = {
                "date": datetime.now().astimezone().isoformat(timespec="seconds"),
                "invocation": a.invocation,
                "model": a.model + (" (tiny)" if a.tiny else ""),
                **gpu_info(),
                "versions": versions(),
                "prefix_caching": bool(a.prefix_caching),
            }
        line = {**self.base, "first_row_s": self.first_row_s, **row}
        append_line(a, line)
        log("result", json.dumps({k: v for k, v in line.items() if k not in ("versions", "error")}))
        return line


# --- the ways, each run in a child process ----------------------------------------------------


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
        "peak_gb": memory()["peak_gb"],
    }


def load_prompts(args: argparse.Namespace, tokenizer: object) -> list[list[int]]:
    """The prompt texts through synthgen's chat-template encoding: the same ids for every way."""
    from synthgen.backends.base import encode

    texts = json.loads(Path(args.prompts_file).read_text())
    return [encode(tokenizer, [{"role": "user", "content": t}]) for t in texts]


def lengths(ids: list[list[int]]) -> list[int]:
    n = sorted(len(x) for x in ids)
    return [n[0], round(sum(n) / len(n)), n[-1]]


def spec_of(args: argparse.Namespace, way: str) -> dict:
    w = WAYS[way]
    return dict(
        name_or_path=args.ckpt,
        max_seq_length=args.max_seq_length,
        dtype="bfloat16",
        eos_tokens=["<|eot_id|>"],
        load_in_4bit=w["four_bit"],
        backend=w["backend"],
    )


def backend_class(name: str) -> type:
    if name == "unsloth":
        from synthgen.backends.unsloth import Backend
    else:
        from synthgen.backends.transformers import Backend
    return Backend


def four_bit_utilization(args: argparse.Namespace) -> float:
    """gpu_memory_utilization that keeps a 4-bit vLLM way under --four-bit-gib of the card."""
    import torch

    total = torch.cuda.mem_get_info()[1] / 2**30 if torch.cuda.is_available() else 80.0
    return round(min(args.gpu_memory_utilization, args.four_bit_gib / total), 3)


def run_jobs(backend: object, ids: list[list[int]], params: object, size: int, rec: Recorder):
    """One timed pass through synthgen.generate.feed.drive; (stats, seconds, first result s)."""
    from synthgen.generate.feed import Feed, Job, drive

    got: list[int] = []
    first: list[float] = []
    t = time.time()

    def on_result(job: Job, out: object) -> list:
        got.append(out.tokens)
        if not first:
            first.append(time.time() - t)
            rec.first_row()
        return []

    jobs = [Job("question", x, i) for i, x in enumerate(ids)]
    stats = drive(backend, jobs, Feed(on_result, params, size))
    reset_sync()
    dt = time.time() - t
    want = params.max_new_tokens
    assert len(got) == len(ids) and all(n == want for n in got), "forced output length not met"
    return stats, dt, round(first[0], 2) if first else None


def reset_sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def way_vllm(args: argparse.Namespace, way: str, rec: Recorder) -> None:
    """synthgen's engine=vllm through drive(), per feed, then LLM.generate on the same engine."""
    from synthgen.backends.base import GenParams

    w = WAYS[way]
    util = four_bit_utilization(args) if w["four_bit"] else args.gpu_memory_utilization
    options = {
        "gpu_memory_utilization": util,
        "enable_prefix_caching": bool(args.prefix_caching),
        "feed": "stream",
        "seed": 0,
    }
    backend = backend_class(w["backend"])(engine="vllm", vllm=options, **spec_of(args, way))
    load_s = round(time.time() - rec.t0, 1)
    ids = load_prompts(args, backend.tokenizer)
    size = backend.auto_batch_size(max(args.new_tokens), max(map(len, ids)))
    size = size if args.batch == "auto" else int(args.batch)
    runner = backend.runner
    asked = [f for f in args.feeds.split(",") if f]
    anchor = "llm.generate" in asked  # LLM.generate on this same engine, after synthgen's feeds
    feeds = [f for f in asked if f in ("stream", "waves")]
    if not hasattr(runner.llm, "llm_engine"):  # Unsloth gave fast_generate only
        feeds = ["waves"]
    warm = GenParams(max_new_tokens=8, min_new_tokens=8, do_sample=False)
    run_jobs(backend, ids[: min(64, len(ids))], warm, size, rec)  # first requests, lazy init
    common = {
        "way": way,
        "engine": backend.engine,
        "quantization": QUANT[bool(backend.spec.load_in_4bit)],
        "batch": size,
        "prompts": len(ids),
        "prompt_tokens": lengths(ids),
        "load_s": load_s,
        "gpu_memory_utilization": util,
        "notes": backend.notes,
    }
    for n in args.new_tokens:
        params = GenParams(max_new_tokens=n, min_new_tokens=n, do_sample=False)
        for feed in feeds:
            runner.feed = feed
            reset_peak()
            stats, dt, first = run_jobs(backend, ids, params, size, rec)
            rec.record(
                **common,
                feed=feed,
                new_tokens=n,
                out_tokens=stats.output_tokens,
                seconds=round(dt, 2),
                tok_s=round(stats.output_tokens / dt, 1),
                prompts_s=round(len(ids) / dt, 2),
                first_result_s=first,
                oom_retries=stats.oom_retries,
                most_in_flight=stats.most_in_flight,
                kv_cache_tokens=stats.kv_tokens,
                **memory(),
            )
        if not anchor:
            continue
        from vllm import SamplingParams

        sp = SamplingParams(
            temperature=0, max_tokens=n, min_tokens=n, ignore_eos=True, detokenize=False
        )
        t = time.time()
        outs = runner.llm.generate([{"prompt_token_ids": x} for x in ids], sp, use_tqdm=False)
        dt = time.time() - t
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        rec.record(
            **common,
            feed="llm.generate",
            new_tokens=n,
            out_tokens=tokens,
            seconds=round(dt, 2),
            tok_s=round(tokens / dt, 1),
            prompts_s=round(len(ids) / dt, 2),
            **memory(),
        )
    backend.close()


def way_vllm_raw(args: argparse.Namespace, way: str, rec: Recorder) -> None:
    """The anchor: vLLM as its own docs would have it, on synthgen's token ids."""
    from synthgen.backends.base import ModelSpec, load_tokenizer
    from synthgen.backends.vllm_engine import spawn_workers

    spawn_workers()  # the checkpoint builder or a memory check may have initialised CUDA
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=args.ckpt,
        dtype="bfloat16",
        max_model_len=args.raw_max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enable_prefix_caching=bool(args.prefix_caching),
    )
    load_s = round(time.time() - rec.t0, 1)
    ids = load_prompts(args, load_tokenizer(ModelSpec(name_or_path=args.ckpt)))
    prompts = [{"prompt_token_ids": x} for x in ids]

    def sp(n: int) -> SamplingParams:
        return SamplingParams(
            temperature=0, max_tokens=n, min_tokens=n, ignore_eos=True, detokenize=False
        )

    llm.generate(prompts[: min(64, len(prompts))], sp(8), use_tqdm=False)  # lazy init
    rec.first_row()
    for n in args.new_tokens:
        t = time.time()
        outs = llm.generate(prompts, sp(n), use_tqdm=False)
        dt = time.time() - t
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        rec.record(
            way=way,
            engine="vllm.LLM.generate",
            feed="llm.generate",
            quantization="bf16",
            batch="vllm",
            prompts=len(ids),
            prompt_tokens=lengths(ids),
            new_tokens=n,
            out_tokens=tokens,
            seconds=round(dt, 2),
            tok_s=round(tokens / dt, 1),
            prompts_s=round(len(ids) / dt, 2),
            load_s=load_s,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.raw_max_model_len,
            **memory(),
        )


def way_engine(args: argparse.Namespace, way: str, rec: Recorder) -> None:
    """synthgen's transformers engines (or Unsloth's generate), fed batch by batch by drive()."""
    from synthgen.backends.base import GenParams

    w = WAYS[way]
    engine = args.hf_engine if w["engine"] == "hf" else w["engine"]
    # the prompts repeat ~50 chunks: the continuous engine's prefix reuse stays off with vLLM's
    reuse = {"enable_prefix_caching": bool(args.prefix_caching)}
    backend = backend_class(w["backend"])(
        engine=engine, prefill_chunk_size=args.prefill_chunk, vllm=reuse, **spec_of(args, way)
    )
    load_s = round(time.time() - rec.t0, 1)
    ids = load_prompts(args, backend.tokenizer)
    for n in args.new_tokens:
        size = (
            backend.auto_batch_size(n, max(map(len, ids)))
            if args.batch == "auto"
            else int(args.batch)
        )
        params = GenParams(max_new_tokens=n, min_new_tokens=n, do_sample=False)
        t = time.time()
        warm, _, _ = run_jobs(backend, ids[:size], params, size, rec)  # compiles this shape
        warm_s = round(time.time() - t, 1)
        size = warm.batch_size or size
        reset_peak()
        stats, dt, first = run_jobs(backend, ids, params, size, rec)
        rec.record(
            way=way,
            engine=backend.engine,
            feed=stats.feed,
            quantization=QUANT[bool(backend.spec.load_in_4bit)],
            batch=stats.batch_size,
            prompts=len(ids),
            prompt_tokens=lengths(ids),
            new_tokens=n,
            out_tokens=stats.output_tokens,
            seconds=round(dt, 2),
            tok_s=round(stats.output_tokens / dt, 1),
            prompts_s=round(len(ids) / dt, 2),
            first_result_s=first,
            load_s=load_s,
            warmup_s=warm_s,
            oom_retries=warm.oom_retries + stats.oom_retries,
            notes=list(backend.notes),
            **memory(),
        )
    backend.close()


def way_notebook_child(args: argparse.Namespace, way: str, rec: Recorder) -> None:
    texts = json.loads(Path(args.prompts_file).read_text())
    r = way_notebook(Path(args.ckpt), texts, args.new_tokens[0], args.notebook_prompts)
    rec.first_row_s = r.pop("first_row_s")
    quant, peak = r.pop("quant"), r.pop("peak_gb")
    rec.record(
        **r,
        feed="one prompt",
        new_tokens=args.new_tokens[0],
        quantization=quant,
        prompts_s=round(r["prompts"] / r["seconds"], 3),
        peak_gb=peak,
        device_used_gb=memory()["device_used_gb"],
    )


def way_run_py(args: argparse.Namespace, way: str, rec: Recorder) -> None:
    """`python run.py <--run-args>` end to end; the figures come from its summary.json."""
    import shlex

    run_dir = Path(args.ckpt).parent / f"synthgen-e2e-{args.invocation}-{way}"
    overrides = [*shlex.split(args.run_args), f"hydra.run.dir={run_dir}"]
    if not any(o.startswith("model.name_or_path=") for o in overrides):
        overrides.append(f"model.name_or_path={args.ckpt}")
    if way == "run_py_novllm":  # as on a machine without vLLM: find_spec("vllm") is None
        boot = (
            "import runpy, sys; sys.modules['vllm'] = None; sys.argv = ['run.py'] + sys.argv[1:]; "
            "runpy.run_path('run.py', run_name='__main__')"
        )
        cmd = [sys.executable, "-c", boot, *overrides]
    else:
        cmd = [sys.executable, "run.py", *overrides]
    log("run", " ".join(shlex.quote(c) for c in cmd))
    p = subprocess.run(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(p.stderr[-4000:])
    summary = run_dir / "summary.json"
    if p.returncode != 0 or not summary.exists():
        # a run that fails before its first row leaves no run dir: its error line is on stderr
        last = next((ln for ln in reversed(p.stderr.splitlines()) if ln.strip()), "")
        raise RuntimeError(f"run.py exited {p.returncode}: {last[:300]}")
    s = json.loads(summary.read_text())
    session, eng = s["this_session"], s["this_session"].get("engine", {})
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / "config.yaml")
    rec.first_row_s = session.get("first_row_seconds")
    rec.record(
        way=way,
        engine=eng.get("name"),
        feed=eng.get("feed"),
        quantization=QUANT[bool(eng.get("load_in_4bit", {}).get("chosen"))],
        batch=session.get("batch_size"),
        prompts=sum(session["prompts"].values()),
        new_tokens=int(cfg.generation.max_new_tokens),
        out_tokens=session["output_tokens"],
        seconds=session["generate_seconds"],
        tok_s=session["tokens_per_second"],
        prompts_s=round(sum(session["prompts"].values()) / session["generate_seconds"], 2)
        if session["generate_seconds"]
        else None,
        load_s=s["seconds"].get("load_model"),
        total_s=s["seconds"].get("total"),
        rows=s["rows"],
        chunks=sum(sp["chunks_total"] for sp in s["splits"].values()),
        engine_reason=eng.get("reason"),
        load_in_4bit=eng.get("load_in_4bit"),
        run_args=args.run_args,
        run_dir=str(run_dir),
        peak_gb=None,
        device_used_gb=None,
    )


def child(args: argparse.Namespace) -> int:
    rec = Recorder(args)
    way = args.child
    kind = WAYS[way]["engine"]
    fn = {
        "notebook": way_notebook_child,
        "vllm_raw": way_vllm_raw,
        "vllm": way_vllm,
        "run_py": way_run_py,
    }.get(kind, way_engine)
    try:
        fn(args, way, rec)
        return 0
    except BaseException as e:  # noqa: BLE001  the line says what failed; the parent goes on
        tb = traceback.format_exc()
        log(tb[-3000:])
        with contextlib.suppress(Exception):  # else the parent writes the line
            rec.record(
                way=way,
                error=tb[-3000:],
                error_line=f"{type(e).__name__}: {e}"[:300],
                new_tokens=args.new_tokens,
            )
        return 1


# --- the run --------------------------------------------------------------------------------


def run_child(cmd: list[str], timeout: int, quiet: bool) -> str | None:
    """Run one way in its own process group; None, or what went wrong.

    The whole group goes at the end, so a vLLM engine-core process left by a killed (or
    finished) way never holds the GPU's memory into the next way. A process group, not a new
    session: whatever outlives the device command is still ended with it.
    """
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if quiet else None, **group)
    try:
        rc = p.wait(timeout=timeout)
        err = None if rc == 0 else f"exit code {rc}"
    except subprocess.TimeoutExpired:
        err = f"timed out after {timeout} s"
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    return err


def ways_of(args: argparse.Namespace) -> list[str]:
    ways = [w for w in args.ways.split(",") if w]
    unknown = [w for w in ways if w not in WAYS]
    if unknown:
        raise SystemExit(f"error: --ways: unknown {', '.join(unknown)} (known: {', '.join(WAYS)})")
    return ways


def lines_of(path: Path, invocation: str) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for ln in path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(ln)
        except ValueError:
            continue
        if d.get("invocation") == invocation:
            out.append(d)
    return out


def table(rows: list[dict]) -> str:
    """The invocation's rows as Markdown, one table per new-token count, ratios to the anchors."""
    if not rows:
        return ""
    head = next((r for r in rows if "versions" in r), rows[0])
    v = head.get("versions", {})
    ver = ", ".join(f"{k} {v[k]}" for k in v if v[k])
    lens = next((r["prompt_tokens"] for r in rows if r.get("prompt_tokens")), None)
    out = [
        f"### {head.get('date', '?')[:10]}, {head.get('gpu')}, {head.get('model')} shape (random weights), invocation {head.get('invocation')}",
        "",
        f"Versions: {ver}. Prompts: the notebook question prompt around the sample corpus' chunks, "
        f"{lens} tokens (min/mean/max) through the chat template; prefix caching "
        f"{'on' if head.get('prefix_caching') else 'off'}. tok/s = output tokens / wall seconds of "
        "the timed pass, prefill included. GPU GB = the card's used memory at the end of the pass "
        "(all processes); torch GB = this process' allocator peak. s to first row = from the "
        "way's process start (load, compile, warm-up) to its first finished prompt.",
        "",
    ]
    for n in sorted(
        {r.get("new_tokens") for r in rows if isinstance(r.get("new_tokens"), int)}, reverse=True
    ):
        at = [r for r in rows if r.get("new_tokens") == n]
        raw = next((r["tok_s"] for r in at if r.get("way") == "vllm_raw" and "tok_s" in r), None)
        nb = next((r["tok_s"] for r in at if r.get("way") == "notebook" and "tok_s" in r), None)
        out += [
            f"{n} new tokens:",
            "",
            "| way | engine | feed | dtype / quantization | batch | prompts | output tok/s | prompts/s | vs vllm_raw | vs notebook | GPU GB | torch GB | s to first row | load s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in at:
            if "error" in r or "error_line" in r:
                err = str(r.get("error_line") or r["error"]).strip().splitlines()[-1][:160]
                out.append(
                    f"| {r.get('way')} | failed: {err.replace('|', '/')} | | | | | | | | | | | | |"
                )
                continue
            ratio = f"{r['tok_s'] / raw:.0%}" if raw else "-"
            vs_nb = f"{r['tok_s'] / nb:.0f}x" if nb else "-"
            out.append(
                f"| {r['way']} | {r.get('engine')} | {r.get('feed')} | {r.get('quantization')} | "
                f"{r.get('batch')} | {r.get('prompts')} | {r['tok_s']:,.0f} | {r.get('prompts_s')} | "
                f"{ratio} | {vs_nb} | {r.get('device_used_gb')} | {r.get('peak_gb')} | "
                f"{r.get('first_row_s')} | {r.get('load_s')} |"
            )
        out.append("")
    errors = [r for r in rows if "error" in r and not isinstance(r.get("new_tokens"), int)]
    for r in errors:
        err = str(r.get("error_line") or r["error"]).strip().splitlines()[-1][:200]
        out.append(f"- {r.get('way')}: failed: {err}")
    notes = {f"- {r['way']}: " + "; ".join(r["notes"]) for r in rows if r.get("notes")}
    notes |= {f"- {r['way']}: OOM backoff {r['oom_retries']}" for r in rows if r.get("oom_retries")}
    notes |= {
        f"- {r['way']}: engine chosen: {r['engine_reason']}; load_in_4bit: {r['load_in_4bit'].get('reason')}; "
        f"rows {r['rows']}, {r['chunks']} chunks, args `{r['run_args']}`"
        for r in rows
        if r.get("engine_reason") and r.get("load_in_4bit")
    }
    return "\n".join(out + sorted(notes)) + "\n"


def write_table(args: argparse.Namespace, invocation: str) -> str:
    import workload

    lines = lines_of(Path(args.results), invocation)
    text = table([r for r in lines if r.get("workload") != "pipeline"]) + workload.table(lines)
    print(text)
    if text and args.table:
        res = Path(args.table)
        head = (
            ""
            if res.exists()
            else "# Generation benchmark results\n\nWritten by `benchmarks/generation.py`; newest last.\n\n"
        )
        with open(res, "a", encoding="utf-8") as f:
            f.write(head + text + "\n")
    return text


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="llama31_8b", choices=sorted(ARCH))
    ap.add_argument(
        "--workload",
        choices=("prompts", "pipeline"),
        default="prompts",
        help="prompts: one prompt shape, forced length, tok/s (this docstring); pipeline: a "
        "question and an answer call per chunk, drawn lengths, rows/hour (benchmarks/workload.py)",
    )
    ap.add_argument(
        "--ways",
        "--variants",
        dest="ways",
        default=None,
        help=f"comma list of: {', '.join(WAYS)} (default vllm_raw,vllm,hf_bf16); --workload "
        "pipeline: way[:run+run] of vllm_raw, vllm, continuous, static, notebook "
        "(benchmarks/workload.py)",
    )
    ap.add_argument(
        "--new-tokens",
        default="128,32",
        type=lambda s: [int(x) for x in s.split(",") if x],
        help="new tokens per prompt, a comma list (forced: min = max)",
    )
    ap.add_argument("--prompts", type=int, default=768, help="prompts for each way")
    ap.add_argument(
        "--notebook-prompts", type=int, default=3, help="prompts for the notebook way (slow)"
    )
    ap.add_argument(
        "--feeds",
        default="stream,waves,llm.generate",
        help="vllm ways: engine.feed values to time (stream, waves), and llm.generate: "
        "LLM.generate on the same engine",
    )
    ap.add_argument(
        "--hf-engine", default="static", help="engine of hf_bf16 / hf_nf4: static | dynamic"
    )
    ap.add_argument(
        "--batch", default="auto", help="batch size (vllm: requests in flight), or auto"
    )
    ap.add_argument("--prefill-chunk", type=int, default=0)
    ap.add_argument(
        "--max-seq-length",
        type=int,
        default=4096,
        help="model.max_seq_length of synthgen's ways (vLLM's max_model_len)",
    )
    ap.add_argument("--raw-max-model-len", type=int, default=1024, help="vllm_raw's max_model_len")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument(
        "--four-bit-gib",
        type=float,
        default=52.0,
        help="4-bit vLLM ways: GPU memory cap (GiB), i.e. gpu_memory_utilization = this / card",
    )
    ap.add_argument(
        "--prefix-caching",
        action="store_true",
        help="vLLM prefix caching on (off by default: the prompts repeat ~50 chunks)",
    )
    ap.add_argument(
        "--run-args",
        default="model=llama31_8b generation.min_new_tokens=128 generation.max_new_tokens=128",
        help="run_py ways: the overrides of `python run.py` (model.name_or_path defaults to the checkpoint)",
    )
    ap.add_argument("--ckpt", default="/tmp/synthgen-bench-ckpt")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="a 2-layer model of the same family: checks the script on a CPU",
    )
    ap.add_argument(
        "--results",
        default=None,
        help="JSON lines file (default benchmarks/results.jsonl; --tiny: in --ckpt)",
    )
    ap.add_argument(
        "--table",
        default=None,
        help="Markdown file the table is appended to (default benchmarks/RESULTS.md; --tiny: none)",
    )
    ap.add_argument(
        "--out",
        default=os.environ.get("OUT") or None,
        help="also append the lines to DIR/results.jsonl (default $OUT)",
    )
    ap.add_argument(
        "--invocation",
        default=None,
        help="id shared by the ways of one invocation (default: the start time)",
    )
    ap.add_argument("--timeout", type=int, default=540, help="seconds allowed to each way")
    ap.add_argument(
        "--report",
        default=None,
        metavar="ID",
        help="only write the table of invocation ID from --results",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--prompts-file", help=argparse.SUPPRESS)
    import workload

    workload.add_arguments(ap)
    return ap


def main() -> int:
    args = parser().parse_args()
    if args.results is None:
        args.results = (
            str(Path(args.ckpt) / "results.jsonl")
            if args.tiny
            else str(REPO / "benchmarks" / "results.jsonl")
        )
    if args.table is None and not args.tiny:
        args.table = str(REPO / "benchmarks" / "RESULTS.md")
    if args.report:
        write_table(args, args.report)
        return 0
    if args.workload == "pipeline":
        import workload

        args.ways = args.ways or workload.DEFAULT_WAYS
        return workload.main(args)
    args.ways = args.ways or "vllm_raw,vllm,hf_bf16"
    if args.child:
        return child(args)
    ways = ways_of(args)
    args.invocation = args.invocation or datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    log("invocation", args.invocation, "ways", ",".join(ways), "new tokens", args.new_tokens)
    ckpt = build_checkpoint(args.model, Path(args.ckpt), args.tiny)
    pf = Path(ckpt) / f"prompts_{args.prompts}.json"
    if not pf.exists():
        pf.write_text(json.dumps(pipeline_prompts(args.prompts)))
    failed = 0
    for way in ways:
        before = len(lines_of(Path(args.results), args.invocation))
        cmd = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        cmd += [
            "--child",
            way,
            "--invocation",
            args.invocation,
            "--prompts-file",
            str(pf),
            "--results",
            args.results,
        ]
        log("way", way)
        t = time.time()
        err = run_child(cmd, args.timeout, quiet=way == "notebook")
        got = lines_of(Path(args.results), args.invocation)[before:]
        if err:
            failed += 1
            if not any("error" in r for r in got):  # the child could not say it itself
                append_line(
                    args,
                    {
                        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
                        "invocation": args.invocation,
                        "way": way,
                        "error": err,
                        "error_line": err,
                        "new_tokens": args.new_tokens,
                        "lines_written": len(got),
                    },
                )
        log(f"way {way}: {len(got)} lines in {time.time() - t:.0f} s" + (f", {err}" if err else ""))
    write_table(args, args.invocation)
    return 1 if failed == len(ways) else 0


if __name__ == "__main__":
    sys.exit(main())

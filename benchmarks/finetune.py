"""Fine-tuning speed: finetune.backend=unsloth (FastSentenceTransformer) beside sentence_transformers.

On the GPU machine, with nothing downloaded:
1. a random-weight BERT of bge-base-en-v1.5's shape (768 wide, 12 layers, 12 heads, 3,072 MLP,
   512 positions, 30,522 vocabulary, CLS pooling, normalized) saved as a sentence-transformers
   folder, with a WordPiece tokenizer trained on the sample essays;
2. a run dir made by the real pipeline with tests/helpers/fake_backend.py as its generator (templated
   questions, one per chunk: only the pairs' shapes matter for speed), over --corpus;
3. `python run.py task=finetune` on it, once per --backends, each in its own process (Unsloth
   patches transformers on import), read back from each run's summary.json.

Each backend's result is one JSON line in benchmarks/results.jsonl (and DIR/results.jsonl with
--out DIR or $OUT): way finetune_<backend>, pairs, batch, steps, train seconds, steps/s,
pairs/s, the invocation id. Quality figures of random weights mean nothing.

    python benchmarks/finetune.py --corpus /tmp/bigcorpus --invocation ID   # GPU machine
    python benchmarks/finetune.py --tiny --backends sentence_transformers      # CPU check
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BGE_BASE = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    vocab_size=30522,
)
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=512,
    vocab_size=2000,
)


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def build_embedder(out: Path, dims: dict) -> Path:
    """Random weights of the given BERT shape, saved as a sentence-transformers folder."""
    if (out / "modules.json").exists():
        return out
    import torch
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers import models as tmodels
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tok = Tokenizer(tmodels.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO / "data").rglob("*.md"))]
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=dims["vocab_size"], special_tokens=specials)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    hf_dir = out.parent / (out.name + "-hf")
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.model_max_length = dims["max_position_embeddings"]
    fast.save_pretrained(hf_dir)
    torch.manual_seed(0)
    # the full vocabulary of bge-base: the embedding matrix has its real size
    config = BertConfig(**{**dims, "vocab_size": max(dims["vocab_size"], len(fast))})
    BertModel(config).save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=dims["max_position_embeddings"])
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = models.Pooling(dim(), pooling_mode="cls")
    SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu").save(str(out))
    log(f"embedder {out}: {sum(p.numel() for p in word.parameters()) / 1e6:.0f} M parameters")
    return out


def run_py(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "run.py", *overrides]
    log("run", " ".join(shlex.quote(c) for c in cmd))
    return subprocess.run(cmd, cwd=REPO)


def corpus_args(corpus: Path | None) -> list[str]:
    if corpus is None:
        return []  # the sample corpus (conf/corpus/movies.yaml)
    return [
        f"corpus.dir={corpus}",
        "corpus.train_files=[train/*.txt]",
        "corpus.val_files=[val/*.txt]",
    ]


def main() -> int:
    from generation import append_line, versions  # benchmarks/generation.py

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backends", default="sentence_transformers,unsloth")
    ap.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="made by make_corpus.py; default: the sample corpus",
    )
    ap.add_argument(
        "--num-rows", type=int, default=500, help="training pairs at most (rows per split)"
    )
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--evaluate", default="true", help="finetune.evaluate (base and tuned on val)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthgen-ft-bench"))
    ap.add_argument(
        "--tiny", action="store_true", help="a 2-layer BERT: checks the script on a CPU"
    )
    ap.add_argument(
        "--results", default=None, help="default benchmarks/results.jsonl (--tiny: in --work)"
    )
    ap.add_argument("--out", default=os.environ.get("OUT") or None)
    ap.add_argument("--invocation", default=None)
    args = ap.parse_args()
    args.invocation = args.invocation or datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    if args.results is None:
        args.results = str((args.work if args.tiny else REPO / "benchmarks") / "results.jsonl")
    args.work.mkdir(parents=True, exist_ok=True)

    model = build_embedder(
        args.work / ("bert-tiny" if args.tiny else "bge-base-random"),
        TINY if args.tiny else BGE_BASE,
    )
    data = args.work / f"data-{args.invocation}"
    p = run_py(
        "model._target_=tests.helpers.fake_backend.Backend",
        "prompt=notebook",  # the fake backend answers the notebook prompt (the default model's is fewshot)
        f"num_rows={args.num_rows}",
        f"hydra.run.dir={data}",
        *corpus_args(args.corpus),
    )
    if p.returncode != 0:
        log("the run dir was not made")
        return 1
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    failed = 0
    for backend in [b for b in args.backends.split(",") if b]:
        run_dir = args.work / f"ft-{backend}-{args.invocation}"
        t = time.time()
        p = run_py(
            "task=finetune",
            f"finetune.data={data}",
            "embedder=bge_base",
            f"embedder.name_or_path={model}",
            f"finetune.backend={backend}",
            f"finetune.epochs={args.epochs}",
            f"finetune.batch_size={args.batch_size}",
            f"finetune.evaluate={args.evaluate}",
            f"hydra.run.dir={run_dir}",
        )
        line: dict = {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "invocation": args.invocation,
            "gpu": gpu,
            "versions": {**versions(), **_more_versions()},
            "way": f"finetune_{backend}",
            "engine": backend,
            "model": "bge-base shape (random)" if not args.tiny else "tiny BERT",
        }
        summary = run_dir / "summary.json"
        if p.returncode != 0 or not summary.exists():
            failed += 1
            line.update(
                error=f"run.py task=finetune exited {p.returncode}; see {run_dir}/run.log",
                error_line=f"exit code {p.returncode}",
            )
        else:
            s = json.loads(summary.read_text())
            tr, secs = s["train"], s["seconds"]
            line.update(
                pairs=tr["pairs"],
                batch=tr["batch_size"],
                epochs=tr["epochs"],
                steps=tr["steps"],
                train_s=secs.get("train"),
                steps_s=round(tr["steps"] / secs["train"], 2) if secs.get("train") else None,
                pairs_s=round(tr["steps"] * tr["batch_size"] / secs["train"], 1)
                if secs.get("train")
                else None,
                load_s=secs.get("load"),
                total_s=secs.get("total"),
                train_loss=tr.get("train_loss"),
                device=tr.get("device"),
                wall_s=round(time.time() - t, 1),
                run_dir=str(run_dir),
            )
        append_line(args, line)
        log("result", json.dumps({k: v for k, v in line.items() if k != "versions"}))
    return 1 if failed else 0


def _more_versions() -> dict:
    from importlib import metadata

    out = {}
    for p in ("sentence-transformers", "datasets", "peft"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


if __name__ == "__main__":
    sys.exit(main())

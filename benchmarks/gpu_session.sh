#!/usr/bin/env bash
# The GPU session of issues 15 and 10, one step per device command (benchmarks/gpu_session.md says which
# folders each step carries, how long it takes and what it measures; issue 21's session is
# benchmarks/gpu/session.sh). Run from the repo root on the GPU machine:
#   bash benchmarks/gpu_session.sh STEP [INVOCATION]
# Steps must follow each other within the machine's ~30 s between commands: /tmp (the vLLM
# parts, the installs, the checkpoint) is gone once it is given back. Every measurement is one
# JSON line in $OUT/results.jsonl as soon as it is taken.
set -uo pipefail
step=${1:?usage: gpu_session.sh STEP [INVOCATION]}
inv=${2:-$([ "$step" = p ] && echo issue10-gpu || echo issue15-gpu)}
out=${OUT:-/tmp/out}
mkdir -p "$out"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export VLLM_USE_FLASHINFER_SAMPLER=0 TOKENIZERS_PARALLELISM=false
ckpt=/tmp/synthgen-bench-ckpt
corpus=/tmp/bigcorpus
run_args="model=llama31_8b corpus.dir=$corpus corpus.train_files=[train/*.txt] corpus.val_files=[val/*.txt] generation.min_new_tokens=128 generation.max_new_tokens=128 filters=none"

bench() { python3 benchmarks/generation.py --invocation "$inv" --out "$out" --ckpt "$ckpt" "$@"; }
t0=$(date +%s)
trap 'echo "step $step: $(($(date +%s) - t0)) s"' EXIT

case $step in
  part)  # one part of benchmarks/gpu/build_pack.sh's pack per call (.gpu/p1 ...), all but the last
    bash benchmarks/gpu/session.sh recv
    ;;
  x)  # the last part: unpack vLLM 0.26.0, bitsandbytes, Unsloth and the project's deps into
    # /tmp/site (PYTHONPATH, no pip; benchmarks/gpu/session.sh install); the random-weight
    # Llama-3.1-8B checkpoint; synthgen's vllm engine (stream, waves, and LLM.generate on the
    # same engine: the anchor)
    bash benchmarks/gpu/session.sh install || exit 1
    python3 benchmarks/make_corpus.py "$corpus"
    if [ -n "${X_RUN_PY:-}" ]; then  # a second session: the engine figures are in already
      bench --ways run_py --run-args "$run_args" --timeout "${T:-300}"
    else
      bench --ways vllm --timeout 400
    fi
    ;;
  v)  # synthgen's vllm engine again, once the checkpoint exists (x's run held its memory)
    bench --ways vllm --timeout "${T:-330}"
    ;;
  7)  # run.py end to end, defaults: with vLLM (engine=auto picks it), then with vLLM hidden
    [ -d "$corpus" ] || python3 benchmarks/make_corpus.py "$corpus"
    bench --ways run_py --run-args "$run_args" --timeout "${T:-270}"
    [ -n "${ONLY_VLLM:-}" ] || bench --ways run_py_novllm --run-args "$run_args" --timeout $((570 - ($(date +%s) - t0)))
    ;;
  n)  # run.py end to end with vLLM hidden (static engine), then the 4-bit vLLM path
    bench --ways run_py_novllm --run-args "$run_args" --timeout "${T:-250}"
    bench --ways vllm_4bit --feeds stream --timeout $((560 - ($(date +%s) - t0)))
    ;;
  8)  # the 4-bit vLLM path (memory capped); Unsloth fine-tuning, as time allows
    bench --ways vllm_4bit --feeds stream --timeout 280
    python3 -c "import unsloth; print('unsloth', unsloth.__version__)" &&
      timeout $((560 - ($(date +%s) - t0))) python3 benchmarks/finetune.py --corpus "$corpus" --invocation "$inv" --out "$out"
    ;;
  9)  # optional: Unsloth's fast_inference in 4-bit, the static engine bf16 beside vLLM
    bench --ways unsloth_vllm_4bit --feeds stream,llm.generate --timeout 300
    bench --ways hf_bf16 --timeout 250
    ;;
  p)  # issue 10, after step 6 (vLLM, deps, checkpoint): the continuous engine's prefill rate on
    # the prompts workload, then rows/hour on the pipeline workload, every way, one command
    python3 -c "import vllm" || exit 1
    bench --ways hf_continuous --new-tokens 32 --timeout 90
    ways="vllm_raw,vllm:reuse+questions_only+qa_pair+no_reuse,continuous:reuse+no_reuse,static"
    # the notebook way needs Unsloth and bitsandbytes (steps 8 and 9); find_spec: no 20 s import
    python3 -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('unsloth') and u.find_spec('bitsandbytes')))" &&
      ways="$ways,notebook"
    bench --workload pipeline --ways "$ways" --budget $((${B:-535} - ($(date +%s) - t0)))
    ;;
  e)  # issue 11, after step x (vLLM, deps, checkpoint, corpus): run.py through `vllm serve` on
    # the same checkpoint, model=openai_compatible, 64 and 256 requests in flight (random
    # weights: tok/s and prompt/completion tokens are the figures; most questions fail to parse)
    python3 -c "import vllm, httpx" || exit 1
    [ -d "$corpus" ] || python3 benchmarks/make_corpus.py "$corpus"
    python3 benchmarks/endpoint.py --serve vllm --ckpt "$ckpt" --invocation issue11-gpu --out "$out" \
      --server-args "--max-model-len 4096 --gpu-memory-utilization 0.9" --concurrency 64,256 \
      --timeout 240 --run-args "${run_args#model=llama31_8b } num_rows=400 filters=none"
    ;;
  *)
    echo "unknown step $step" >&2
    exit 2
    ;;
esac

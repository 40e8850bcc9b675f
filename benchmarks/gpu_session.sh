#!/usr/bin/env bash
# The GPU session of issues 15 and 10, one step per device command (benchmarks/gpu_session.md says which
# folders each step carries, how long it takes and what it measures). Run from the repo root on
# the GPU machine:   bash benchmarks/gpu_session.sh STEP [INVOCATION]
# Steps must follow each other within the machine's ~30 s between commands: /tmp (the vLLM
# parts, the installs, the checkpoint) is gone once it is given back. Every measurement is one
# JSON line in $OUT/results.jsonl as soon as it is taken.
set -uo pipefail
step=${1:?usage: gpu_session.sh STEP [INVOCATION]}
inv=${2:-$([ "$step" = p ] && echo issue10-gpu || echo issue15-gpu)}
out=${OUT:-/tmp/out}
mkdir -p "$out"
export PYTHONPATH=/tmp/site:/tmp/vsite:/tmp/usite PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export VLLM_USE_FLASHINFER_SAMPLER=0 TOKENIZERS_PARALLELISM=false
ckpt=/tmp/synthgen-bench-ckpt
corpus=/tmp/bigcorpus
run_args="model=llama31_8b corpus.dir=$corpus corpus.train_files=[train/*.txt] corpus.val_files=[val/*.txt] generation.min_new_tokens=128 generation.max_new_tokens=128"

install() {  # install DIR WHEELS...: no index, no deps, into its own folder on PYTHONPATH
  local target=$1
  shift
  python3 -m pip install -q --no-deps --no-index --no-compile --target "$target" "$@"
}
bench() { python3 benchmarks/generation.py --invocation "$inv" --out "$out" --ckpt "$ckpt" "$@"; }
t0=$(date +%s)
trap 'echo "step $step: $(($(date +%s) - t0)) s"' EXIT

case $step in
  part)  # steps 1-5: one part of vLLM each (../shared/gpu/fetch-vllm.sh)
    mkdir -p /tmp/vx && cp .gpu-vllm/c*/vllm-tar.* /tmp/vx/ && ls /tmp/vx
    ;;
  6)  # the last part; install vLLM and the project's deps; build the checkpoint; vllm_raw
    mkdir -p /tmp/vx && cp .gpu-vllm/c6/vllm-tar.* /tmp/vx/
    (cd /tmp/vx && mkdir -p w && cat vllm-tar.* | tar -xf - -C w) || exit 1
    install /tmp/vsite /tmp/vx/w/*.whl || exit 1
    install /tmp/site .gpu-deps/*.whl || exit 1
    rm -rf /tmp/vx
    python3 -c "import vllm, hydra, omegaconf, llama_index.core, openpyxl; print('vllm', vllm.__version__)" || exit 1
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
    bench --ways vllm_raw --timeout 330
    ;;
  7)  # synthgen's vllm engine (stream, waves, LLM.generate on it); run.py end to end with vLLM
    python3 benchmarks/make_corpus.py "$corpus"
    bench --ways vllm --timeout 270
    bench --ways run_py --run-args "$run_args" --timeout 280
    ;;
  8)  # bitsandbytes; run.py end to end without vLLM; the 4-bit vLLM path (memory capped)
    install /tmp/site .gpu-wheels/a/*.whl || exit 1
    bench --ways run_py_novllm --run-args "$run_args" --timeout 300
    bench --ways vllm_4bit --feeds stream,llm.generate --timeout 250
    ;;
  9)  # Unsloth; its fast_inference in 4-bit; fine-tuning with both backends
    install /tmp/usite .gpu-wheels/b/*.whl || exit 1
    python3 -c "import unsloth; print('unsloth', unsloth.__version__)" || exit 1
    bench --ways unsloth_vllm_4bit --feeds stream,llm.generate --timeout 300
    timeout 220 python3 benchmarks/finetune.py --corpus "$corpus" --invocation "$inv" --out "$out"
    ;;
  10)  # if device time is left: Unsloth's bf16 vLLM, the static engine bf16 beside vLLM
    bench --ways unsloth_vllm --feeds stream,llm.generate --timeout 250
    bench --ways hf_bf16 --timeout 300
    ;;
  11)  # if device time is still left: the static engine in 4-bit (transformers and Unsloth
    # backends: item 4's other path), the notebook's way
    bench --ways hf_nf4,unsloth_static_4bit --new-tokens 128 --timeout 210
    bench --ways notebook --new-tokens 128 --timeout 150
    ;;
  p)  # issue 10, after step 6 (vLLM, deps, checkpoint): the continuous engine's prefill rate on
    # the prompts workload, then rows/hour on the pipeline workload, every way, one command
    python3 -c "import vllm" || exit 1
    bench --ways hf_continuous --new-tokens 32 --timeout 90
    ways="vllm_raw,vllm:reuse+questions_only+qa_pair+no_reuse,continuous:reuse+no_reuse,static"
    # the notebook way needs Unsloth and bitsandbytes (steps 8 and 9); find_spec: no 20 s import
    python3 -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('unsloth') and u.find_spec('bitsandbytes')))" &&
      ways="$ways,notebook"
    bench --workload pipeline --ways "$ways" --budget $((535 - ($(date +%s) - t0)))
    ;;
  *)
    echo "unknown step $step" >&2
    exit 2
    ;;
esac

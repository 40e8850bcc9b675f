#!/usr/bin/env bash
# Issue 16 on one 4-GPU machine (nvidia-h200-x4): N = 1, 2, 4 shard jobs through Ray, static
# engine and vLLM, one device command per step (benchmarks/gpu_session.md, "Issue 16" says
# which folders each step carries). Run from the repo root there:
#   bash benchmarks/gpu_scale.sh STEP [ARGS]
# /tmp (parts, installs, checkpoint, corpus, the sweeps in /tmp/scale) lives only while the
# machine stays up (~30 s between commands), so the steps go back to back. Every figure is one
# JSON line in $OUT/results.jsonl as soon as a sweep ends; $OUT/RESULTS.md gets the table.
set -uo pipefail
step=${1:?usage: gpu_scale.sh part | setup | scale ENGINE NS [NUM_ROWS]}
out=${OUT:-/tmp/out}
mkdir -p "$out"
# the machine's NCCL_* / multicast settings (NCCL_NVLS_ENABLE=0 ...) are inherited unchanged
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 RAY_DEDUP_LOGS=0
export VLLM_USE_FLASHINFER_SAMPLER=0 TOKENIZERS_PARALLELISM=false
ckpt=/tmp/synthgen-bench-ckpt
t0=$(date +%s)
trap 'echo "step $step: $(($(date +%s) - t0)) s"' EXIT

case $step in
  part)  # one carried part (.gpu/pN of benchmarks/gpu/build_pack.sh, or .gpu-ray/r1) into /tmp
    bash benchmarks/gpu/session.sh recv
    mkdir -p /tmp/rx && { cp .gpu-ray/r*/ray-tar.* /tmp/rx/ 2>/dev/null; true; }
    ls -la /tmp/rx
    ;;
  setup)  # the last part (.gpu-ray/r2), every .gpu part received: unpack the pack (vLLM, the
    # project's deps ...) into /tmp/site and Ray beside it, build the random-weight
    # Llama-3.1-8B checkpoint (~40 s)
    mkdir -p /tmp/rx /tmp/rw && cp .gpu-ray/r*/ray-tar.* /tmp/rx/ || exit 1
    bash benchmarks/gpu/session.sh install || exit 1
    cat /tmp/rx/ray-tar.* | tar -x -C /tmp/rw || exit 1
    python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site /tmp/rw/*.whl || exit 1
    rm -rf /tmp/rx /tmp/rw
    python3 -c "import vllm, ray, hydra_plugins.hydra_ray_launcher, llama_index.core; print('vllm', vllm.__version__, 'ray', ray.__version__)" || exit 1
    nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv
    env | grep -E '^(NCCL_|TORCH_SYMM|NVSHMEM_)' || true
    python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; import generation as g; g.build_checkpoint('llama31_8b', Path('$ckpt'), False)" || exit 1
    ;;
  scale)  # ENGINE (static | vllm), NS (1 | 2 | 4 | 1,2,4), NUM_ROWS per split (default 600)
    engine=${2:?engine}
    ns=${3:?shard counts}
    rows=${4:-600}
    python3 benchmarks/scaling.py --engines "$engine" --ns "$ns" --copies 72 --work /tmp/scale \
      --results "$out/results.jsonl" --table "$out/RESULTS.md" --timeout $((570 - ($(date +%s) - t0))) \
      --set model=llama31_8b model.name_or_path=$ckpt num_rows=$rows \
      generation.max_new_tokens=128 generation.min_new_tokens=128 filters=none compare.auto=false
    for d in /tmp/scale/"$engine"-n*/; do  # each job's log and summary, for a failure's cause
      mkdir -p "$out/logs/$(basename "$d")"
      find "$d" -name summary.json -o -name run.log | while read -r f; do
        cp "$f" "$out/logs/$(basename "$d")/$(echo "${f#"$d"}" | tr '/=,' '___')"
      done
    done
    cp /tmp/scale/*.log "$out/logs/" 2>/dev/null
    ;;
  *)
    echo "unknown step $step" >&2
    exit 2
    ;;
esac

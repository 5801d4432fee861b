#!/usr/bin/env bash
# Set up, then run the whole test suite (doctests included).  Tests that need root,
# network namespaces or real scanners skip themselves when those are missing;
# .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"

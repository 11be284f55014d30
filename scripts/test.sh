#!/usr/bin/env bash
# Set up everything the tests need (./scripts/setup.sh --dev), then run the whole suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k mcp
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"

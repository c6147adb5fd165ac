#!/usr/bin/env bash
# The test command: the whole suite on 8 fake CPU devices (tests/conftest.py sets them).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest tests "$@"

#!/usr/bin/env bash
# The test command: the whole suite on 8 fake CPU devices (tests/conftest.py sets them), in SEEDR1_TEST_WORKERS
# pytest-xdist worker processes (2 by default: each test's XLA programs already use the cores of a small machine,
# and a second worker overlaps one test's Python, I/O and process start-ups with another's compute). Extra
# arguments go to pytest (`-n 0` runs in one process, `-m "not slow"` skips the minutes-long end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest tests -n "${SEEDR1_TEST_WORKERS:-2}" --dist worksteal "$@"

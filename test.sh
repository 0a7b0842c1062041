#!/usr/bin/env bash
# One command: set everything up (idempotent), then run the test suite.
# Extra arguments go to pytest (for example -k reflect or -x).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh >&2
exec .venv/bin/python -m pytest "$@"

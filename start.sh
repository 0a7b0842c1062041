#!/usr/bin/env bash
# One command on a fresh machine: set everything up, then start the console chat.
# Extra arguments go to `spanner chat` (for example --user alex or --config my.toml).
set -euo pipefail
cd "$(dirname "$0")"
cfg=()
[ -n "${SPANNER_CONFIG:-}" ] && cfg=(--config "$SPANNER_CONFIG")
scripts/bootstrap.sh "${cfg[@]}" >&2
exec .venv/bin/spanner chat "$@"

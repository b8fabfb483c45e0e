#!/usr/bin/env bash
# Installs the Python tools of tests/tests/openapi.rs (openapi-spec-validator and schemathesis, at
# the exact versions of scripts/python-requirements.txt) into a virtualenv, and prints the venv's
# bin folder: export it as LEDGER_PYTHON_TOOLS for the test.
#
#   scripts/install-python-tools.sh [VENV]     (default: $LEDGER_PYTHON_VENV or target/pyenv)
#
# Idempotent and fast when the venv already holds exactly these pins (a stamp file records the
# requirements it was installed from), so CI runs it on every build.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/python-requirements.txt
venv="${1:-${LEDGER_PYTHON_VENV:-target/pyenv}}"
stamp="$venv/.requirements"
if [ -x "$venv/bin/schemathesis" ] && [ -x "$venv/bin/openapi-spec-validator" ] \
   && cmp -s "$req" "$stamp"; then
  echo "python tools: up to date in $venv" >&2
else
  echo "python tools: installing into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
(cd "$venv/bin" && pwd)

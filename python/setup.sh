#!/usr/bin/env bash
# Builds and installs the `deepsim` Python package (`pip install .` at the repository root: the
# PyO3 extension, compiled by maturin) and the Pandora plugin into a venv, with the pinned
# test requirements (pandora + pandora_plugin_libsgm, dask[distributed]). Reuses the venv when present; the
# requirements are installed again only when requirements-test.txt changes.
#   bash python/setup.sh        # venv at $DEEPSIM_PY_VENV or ~/.cache/deepsim/py-venv
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEEPSIM_PY_VENV:-$HOME/.cache/deepsim/py-venv}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
REQ="$ROOT/python/requirements-test.txt"
STAMP="$VENV/.deepsim-py-requirements.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    echo "python/setup.sh: creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
fi
want="$(cat "$REQ" "$ROOT/bench/peers/requirements.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$REQ" -c "$ROOT/bench/peers/requirements.txt"
    echo "$want" > "$STAMP"
fi
# The package itself, from this tree, each time (the README's `pip install .`; maturin is
# already in the venv, so no isolated build environment is downloaded).
cd "$ROOT"
export PATH="$VENV/bin:$PATH"  # maturin's build backend runs the `maturin` of the venv
start=$(date +%s)
"$VENV/bin/python" -m pip install --quiet --no-build-isolation --no-deps --force-reinstall .
"$VENV/bin/python" -m pip install --quiet --no-build-isolation --no-deps --force-reinstall ./python/pandora_plugin_deepsim
echo "python/setup.sh: deepsim $("$VENV/bin/python" -c 'import deepsim; print(deepsim.__version__)') and the Pandora plugin installed in $VENV ($(( $(date +%s) - start )) s)"

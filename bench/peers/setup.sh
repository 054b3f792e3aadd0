#!/usr/bin/env bash
# Create (or reuse) the peers venv and install the pinned peer matchers. Idempotent:
# re-running with an unchanged requirements.txt does nothing.
#   bash bench/peers/setup.sh            # venv at $DEEPSIM_PEERS_VENV or ~/.cache/deepsim/peers-venv
#   source ~/.cache/deepsim/peers-venv/bin/activate
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${DEEPSIM_PEERS_VENV:-$HOME/.cache/deepsim/peers-venv}"
PY="${PYTHON:-python3.11}"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.deepsim-peers-requirements.sha256"

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup.sh: $PY not found (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup.sh: creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "setup.sh: $VENV already up to date"
else
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$REQ"
  echo "$want" > "$STAMP"
fi
"$VENV/bin/python" - <<'PY'
import cv2, pandora, pandora_plugin_libsgm  # noqa: F401
from importlib.metadata import version
print("opencv", cv2.__version__, "| pandora", version("pandora"),
      "| plugin_libsgm", version("pandora_plugin_libsgm"), "| libsgm", version("libsgm"))
try:
    import pandora_plugin_mc_cnn, mc_cnn  # noqa: F401
    print("mccnn", version("mccnn"), "| plugin_mccnn", version("pandora_plugin_mccnn"))
except ImportError as exc:
    print("MC-CNN plugin unavailable:", exc)
PY

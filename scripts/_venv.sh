# Shared by demo.sh and test.sh: create (once) and activate a virtual environment at $1 with the
# package installed; $2 = pip extras ("" or "test"). torch is pinned to the CPU wheel this project
# tests with; GPU users install their own torch first and then `pip install -e .`.
set -euo pipefail
VENV="$1"; EXTRAS="${2:-}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
STAMP="$VENV/.installed-$(cat pyproject.toml scripts/_venv.sh | sha1sum | cut -c1-12)-$EXTRAS"
if [ ! -f "$STAMP" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"
  if [ -n "$EXTRAS" ]; then python -m pip install -q -e ".[$EXTRAS]"; else python -m pip install -q -e .; fi
  touch "$STAMP"
fi

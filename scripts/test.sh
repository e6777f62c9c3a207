#!/usr/bin/env bash
# Set up a virtual environment (.venv-test) and run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh .venv-test test
export MPLBACKEND=Agg
python -m pytest -q "$@"

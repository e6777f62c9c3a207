#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run the main job on the bundled example map.
# Results go to example-output/ (cleaned CTF, metrics JSON and plots, IPF pictures).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh .venv
export MPLBACKEND=Agg
EX=src/infinityebsd/examples/example_256.ctf
OUT=example-output
mkdir -p "$OUT"
infinityebsd info "$EX"
infinityebsd plot "$EX" -o "$OUT/input_ipf.png"
infinityebsd clean "$EX" -o "$OUT/clean.ctf"
infinityebsd plot "$OUT/clean.ctf" -o "$OUT/clean_ipf.png"
infinityebsd metrics "$OUT/clean.ctf" --json "$OUT/metrics.json" --plot "$OUT/metrics.png"
echo "done: see $OUT/"

#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run the main job on the bundled example map with the
# shipped model (a re-run replaces the earlier outputs): extend the 256x256 example to 1024x1024 on the CPU and write the CTF, its IPF-Z
# picture, the window plan, the metrics and the evaluation report into example-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh .venv
export MPLBACKEND=Agg
EX=src/infinityebsd/examples/example_256.ctf
OUT=example-output
mkdir -p "$OUT"
infinityebsd info "$EX"
infinityebsd plot "$EX" -o "$OUT/input_ipf.png"
infinityebsd extend "$EX" --size 1024x1024 -o "$OUT/extended.ctf" --seed 0 --report "$OUT/report" --force
echo "done: $OUT/extended.ctf, $OUT/extended.png (IPF-Z), $OUT/report/report.md"

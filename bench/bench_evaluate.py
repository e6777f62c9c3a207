"""First reference table: the real nickel map against itself, a grain-growth map and a Voronoi map.

Runs the evaluation report (infinityebsd.evaluate.report.evaluate) with the real EDAX nickel map as the
target and a grain-growth map from the synthetic generator as the "generated" map; the report adds the
real-vs-real level (two halves of the real map) and a Voronoi map of the same mean grain size. Prints
the table of normalised W1 and KS per metric and writes it to bench/RESULTS_evaluate.md.

    python bench/bench_evaluate.py [--size 384] [--seed 0] [--report /tmp/infinityebsd_bench_evaluate]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from infinityebsd.data.synth import synth_map  # noqa: E402
from infinityebsd.evaluate.compare import ALL_METRICS  # noqa: E402
from infinityebsd.evaluate.report import evaluate  # noqa: E402
from infinityebsd.io import read_map  # noqa: E402
from infinityebsd.io._grid import atomic_write_bytes  # noqa: E402
from infinityebsd.metrics import metrics_of  # noqa: E402

REAL = HERE.parent.parent / "shared" / "data" / "real" / "dream3d_edax_ni_h5" / "EdaxAngOnly.h5"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=384, help="side of the synthetic maps (cells)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", default="/tmp/infinityebsd_bench_evaluate")
    ap.add_argument("--out", default=str(HERE / "RESULTS_evaluate.md"))
    args = ap.parse_args()

    real = read_map(REAL)
    t_real = metrics_of(real)
    d = float(np.mean(t_real.size))
    t0 = time.perf_counter()
    growth = synth_map((args.size, args.size), d, method="growth", seed=args.seed, step=real.step[0])
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = evaluate(growth, target=real, seed=args.seed, report_dir=args.report,
                 names={"generated": "growth", "target": "real Ni"})
    t_eval = time.perf_counter() - t0

    cols = [("real vs real", s["real_vs_real"]), ("real vs growth", s["distances"]),
            ("real vs Voronoi", s["target_vs_voronoi"])]
    header = "| metric | " + " | ".join(f"{c} W1/σ | {c} KS" for c, _ in cols) + " |"
    lines = [header, "|" + "---|" * (1 + 2 * len(cols))]
    for name in ALL_METRICS:
        lines.append(f"| {name} | " + " | ".join(f"{v[name]['w1']:.3f} | {v[name]['ks']:.3f}" for _, v in cols) + " |")
    mean_row = "| mean | " + " | ".join(
        f"{np.nanmean([v[n]['w1'] for n in ALL_METRICS]):.3f} | {np.nanmean([v[n]['ks'] for n in ALL_METRICS]):.3f}"
        for _, v in cols) + " |"
    lines.append(mean_row)
    table = "\n".join(lines)
    tex = s["texture"]
    g = s["grains"]
    text = f"""# Evaluation reference table (bench/bench_evaluate.py)

Machine: {os.cpu_count()}-core CPU ({platform.machine()}), shared; Python {platform.python_version()}; date {datetime.date.today().isoformat()}.

Target: the real EDAX nickel map `EdaxAngOnly.h5` ({real.shape[0]}×{real.shape[1]} cells), cleaned
(10°, min 10 cells, Σ3 merged): {g['target']} grains, mean ECD {d:.1f} cells. Real vs real: its two
halves ({s['reference_split']}). Growth: `synth_map({args.size}×{args.size}, {d:.1f}, method='growth',
seed={args.seed})`, {g['generated']} grains. Voronoi: `synth_map({args.size}×{args.size}, {d:.1f},
method='voronoi', seed={args.seed})`, {s['voronoi']['grains']} grains.

W1/σ: Wasserstein-1 distance divided by the real map's standard deviation of the metric (area-weighted
for `size_area_weighted`); KS: two-sample Kolmogorov–Smirnov statistic. 0 = identical distributions.

{table}

Texture: boundary disorientations against Mackenzie, W1 = {tex['mackenzie_w1_target']:.2f}° (real),
{tex['mackenzie_w1_other']:.2f}° (growth), {tex['mackenzie_w1_voronoi']:.2f}° (Voronoi); φ2 = 45°
section RMS difference real vs growth {tex['rms_mrd']:.2f} MRD (max {tex['max_mrd_target']:.2f} MRD real:
{g['target']} grains only, so the real ODF is noisy).

Times: growth map {t_gen:.1f} s; whole report (cleaning, references, texture, homogeneity, figures)
{t_eval:.1f} s.

Reading: the real map has only ~{g['target']} grains, so real vs real (about half that many per half)
is a noisy level; a model is good where it is near it and clearly below Voronoi.
"""
    print(text)
    atomic_write_bytes(args.out, [text.encode()])
    print(f"wrote {args.out}; report in {args.report}")


if __name__ == "__main__":
    main()

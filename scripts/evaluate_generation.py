"""Generation from metrics alone, by each method, against the map the metrics came from.

Held-out synthetic maps (seeds outside any training corpus; equiaxed at two sizes and one elongated)
give the target metrics, either all eight (``generate --like``) or the size distribution alone (a
subset, as ``generate --metrics`` with only "size"). Each method generates a map of the same size
from them; W1/σ of size, perimeter, inertia ratio and coordination against the target's grains is
printed beside the real-vs-real level (the target's two halves compared).

    python scripts/evaluate_generation.py --model src/infinityebsd/pretrained/morph --out gen_eval.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))

from infinityebsd.data.synth import synth_map  # noqa: E402
from infinityebsd.evaluate.compare import compare_tables  # noqa: E402
from infinityebsd.evaluate.measure import halves, measure, sub_table  # noqa: E402
from infinityebsd.metrics import METRIC_NAMES, conditioning_tensor  # noqa: E402
from infinityebsd._shared import atomic_write_text  # noqa: E402  (makes the folder; a kill leaves no half file)

SHAPE = ("size", "perimeter", "inertia_ratio", "coordination")
CASES = [("synth-d10", 10, 1.0, 0.0, 201), ("synth-d18", 18, 1.0, 0.0, 202), ("synth-d14-elongated", 14, 2.5, 30.0, 203)]


def generate(method, pipe, cond, shape, seed, guidance=None):
    quiet = dict(progress=False, log=lambda s: None, seed=seed)
    if method == "model":
        from infinityebsd.pipeline.extend import extend

        return extend(pipe, None, shape, cond=cond, guidance=guidance, **quiet).map
    from infinityebsd.pipeline.growth import extend_growth, extend_voronoi

    return (extend_growth if method == "growth" else extend_voronoi)(None, shape, cond=cond, **quiet).map


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=HERE / "src" / "infinityebsd" / "pretrained" / "morph")
    ap.add_argument("--methods", nargs="+", default=["voronoi", "growth", "model"])
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--out", type=Path, default=Path("generation_eval.json"))
    ap.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance of the model (default: the model folder's for generation)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--given", nargs="+", choices=["all", "size"], default=["all", "size"],
                    help="which targets to run: all eight metrics, the size distribution alone, or both")
    a = ap.parse_args()
    pipe = None
    if "model" in a.methods:
        from infinityebsd.models.ldm import load_model
        from infinityebsd.pipeline.morph import MorphPipeline

        pipe = MorphPipeline(load_model(a.model), folder=a.model)
    rows = []
    print("| target | metrics given | method | s | " + " | ".join(f"W1/σ {k}" for k in SHAPE) + " |")
    print("|---|---|---|---|" + "---|" * len(SHAPE))
    for name, d, asp, ang, seed in CASES:
        truth = synth_map((a.size, a.size), d, aspect=asp, angle_deg=ang, seed=seed, workers=1)
        T = measure(truth)
        h1, h2 = (sub_table(T.labels, T.quat, b, T.table.step) for b in halves(T.shape))
        rvr = compare_tables(h1, h2, SHAPE)
        print(f"| {name} | — | real vs real | — | " + " | ".join(f"{rvr[k]['w1']:.2f}" for k in SHAPE) + " |")
        full = conditioning_tensor(T.table)
        size_only = np.full_like(full, np.nan)
        size_only[METRIC_NAMES.index("size")] = full[METRIC_NAMES.index("size")]
        for given, cond in (("all eight", full), ("size only", size_only)):
            if given.split()[0] not in a.given:
                continue
            for method in a.methods:
                t0 = time.time()
                out = generate(method, pipe, cond, truth.shape, a.seed, a.guidance)
                dt = time.time() - t0
                d_ = compare_tables(T.table, measure(out).table, SHAPE)
                rows.append({"case": name, "given": given, "method": method, "seed": a.seed, "seconds": dt,
                             "w1": {k: d_[k]["w1"] for k in SHAPE}, "real_vs_real": {k: rvr[k]["w1"] for k in SHAPE}})
                print(f"| {name} | {given} | {method} | {dt:.0f} | " + " | ".join(f"{d_[k]['w1']:.2f}" for k in SHAPE)
                      + " |", flush=True)
    atomic_write_text(a.out, json.dumps(rows, indent=1))
    print("\nmeans (W1/σ over targets):")
    for given in ("all eight", "size only"):
        for method in a.methods:
            sel = [r for r in rows if r["given"] == given and r["method"] == method]
            if not sel:
                continue
            print(f"  {given:9s} {method:8s} " + " ".join(f"{k} {np.mean([r['w1'][k] for r in sel]):.2f}" for k in SHAPE))
    rr = {k: np.mean([r["real_vs_real"][k] for r in rows]) for k in SHAPE}
    print("  real-vs-real       " + " ".join(f"{k} {v:.2f}" for k, v in rr.items()))


if __name__ == "__main__":
    main()

"""Write the equiaxed shape reference that generation assumes when a target gives no grain shape.

The reference is the inertia-ratio distribution of isotropic curvature-driven grain growth (this
package's simulator, :func:`infinityebsd.data.synth.synth_map` with aspect 1): the self-similar
shape distribution of an annealed, untextured polycrystal. The ratio is dimensionless, and its
distribution hardly moves with grain size (median 1.70-1.75 at mean ECD 8-18 cells), so one
reference serves every scale. Maps of mean ECD 10 cells (the model's grain scale), seeds 9000-9005,
are pooled: about 4000 grains.

    python scripts/make_equiaxed_reference.py   # rewrites src/infinityebsd/data/equiaxed_shape.json
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))

from infinityebsd.data.synth import synth_map  # noqa: E402
from infinityebsd.metrics import BIN_RULES, histogram, metrics_of  # noqa: E402

OUT = HERE / "src" / "infinityebsd" / "data" / "equiaxed_shape.json"
SEEDS = range(9000, 9006)


def main():
    values = np.concatenate([metrics_of(synth_map((256, 256), 10, seed=s, workers=1)).inertia_ratio for s in SEEDS])
    edges, density = histogram(values, BIN_RULES["inertia_ratio"])
    doc = {
        "about": "inertia ratio of isotropic grain growth (synth_map aspect 1, mean ECD 10 cells, 256x256, "
                 f"seeds {SEEDS.start}-{SEEDS.stop - 1}, {values.size} grains); written by "
                 "scripts/make_equiaxed_reference.py",
        "units": "cells",
        "metrics": {"inertia_ratio": {"edges": np.round(edges, 6).tolist(), "density": np.round(density, 8).tolist()}},
    }
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(OUT)
    q = np.percentile(values, [10, 50, 90])
    print(f"{OUT}: {values.size} grains, inertia ratio p10/p50/p90 {q[0]:.2f}/{q[1]:.2f}/{q[2]:.2f}")


if __name__ == "__main__":
    main()

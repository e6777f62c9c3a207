"""Where an extension's coordination differs from the truth's: new grains against cut grains.

The centre half of a held-out synthetic map (``scripts/evaluate_methods.py``'s cases) is extended back to
the full map by each method. The grains of the generated region (those with a cell outside the input
box) are split into the cut grains (cells on both sides of the box) and the new ones. The script prints
the coordination of each group, for the truth and for the method over the seeds. It then bins the cut
grains by their area inside the box and gives the mean area each has outside and its coordination.

    python scripts/cut_grain_coordination.py --case synth-d16 --methods growth voronoi --seeds 0 1 2 3 4 5
"""

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import evaluate_methods as em  # noqa: E402
from infinityebsd.data.synth import synth_map  # noqa: E402
from infinityebsd.evaluate.compare import compare_tables  # noqa: E402
from infinityebsd.evaluate.measure import measure  # noqa: E402

BINS = (0, 30, 100, 300, np.inf)


def split(E, inside):
    """(coordination, area inside, area outside, is cut) of the grains of the generated region."""
    lab, n = E.labels, E.table.n
    a_in = np.bincount(lab[inside], minlength=n)[:n]
    a_out = np.bincount(lab[~inside], minlength=n)[:n]
    gen = a_out > 0
    co = np.asarray(E.table.coordination, np.float64)
    return co[gen], a_in[gen], a_out[gen], (a_in > 0)[gen]


def report(label, co, a_in, a_out, cut, runs):
    print(f"{label}: {len(co) / runs:.0f} grains per map, coordination {co.mean():.2f} ± sd {co.std():.2f}; "
          f"new {(~cut).sum() / runs:.0f}: {co[~cut].mean():.2f} ± {co[~cut].std():.2f}; "
          f"cut {cut.sum() / runs:.0f}: {co[cut].mean():.2f} ± {co[cut].std():.2f}")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        s = cut & (a_in >= lo) & (a_in < hi)
        if s.any():
            print(f"    cut, {lo}-{hi} cells inside: {s.sum() / runs:.1f} per map, {a_out[s].mean():.0f} cells "
                  f"outside, coordination {co[s].mean():.2f} ± {co[s].std():.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="synth-d16", choices=[c[0] for c in em.SYNTH])
    ap.add_argument("--methods", nargs="+", default=["growth", "voronoi"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    a = ap.parse_args()
    _, d, asp, ang, tex, seed = next(c for c in em.SYNTH if c[0] == a.case)
    truth = synth_map((192, 192), d, aspect=asp, angle_deg=ang, texture=tex, seed=seed)
    R, C = truth.shape
    box = (R // 4, C // 4, R // 2, C // 2)
    inside = np.zeros((R, C), bool)
    inside[box[0]:box[0] + box[2], box[1]:box[1] + box[3]] = True
    T = measure(truth)
    report("truth", *split(T, inside), 1)
    mt = em.generated_grains(T.labels, box)
    for method in a.methods:
        parts, w1 = [], []
        for s in a.seeds:
            E = measure(em.run_method(method, truth.crop(*box), (R, C), s))
            parts.append(split(E, inside))
            w1.append(compare_tables(T.table, E.table, ("coordination",), mt,
                                     em.generated_grains(E.labels, box))["coordination"]["w1"])
        print(f"\n{method}: coordination W1/σ {np.mean(w1):.3f} ± {np.std(w1) / np.sqrt(len(w1)):.3f} (standard error)")
        report(method, *(np.concatenate(p) for p in zip(*parts)), len(a.seeds))


if __name__ == "__main__":
    main()

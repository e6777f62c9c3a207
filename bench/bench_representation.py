"""Morphology representations compared by their round trip: label map -> field -> labels.

For each representation (distance, value, distance+value), on an equiaxed and an elongated
grain-growth map (held-out seeds, mean ECD 10 cells) and on the cleaned real nickel map (Σ3 twins
merged into their parents: concave, many-neighboured grains) and 316L map (elongated, many small
grains), with the field exact and with Gaussian noise of σ = 0.1 added (a stand-in for an imperfect
network), the share of true grains recovered (a decoded grain overlaps it with IoU > 0.8) and the
decoded/true grain-count ratio. The peer of each row is the exact-field figure of the same map.

Run: python bench/bench_representation.py   (reads ../shared/data/real when present)
"""

import os
import platform
import time
from pathlib import Path

import numpy as np

import infinityebsd as ie
from infinityebsd.data.representation import MORPHOLOGY_CHANNELS, decode_morphology, encode_morphology
from infinityebsd.data.synth import grain_growth_labels
from infinityebsd.grains import clean_with_grains

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def recovered(truth, dec):
    """(share of true grains matched by a decoded grain with IoU > 0.8, decoded/true count)."""
    n, m = truth.max() + 1, dec.max() + 1
    key = truth.ravel().astype(np.int64) * m + dec.ravel()
    uk, c = np.unique(key, return_counts=True)
    ta, tb = np.bincount(truth.ravel()), np.bincount(dec.ravel())
    ia, ib = uk // m, uk % m
    iou = c / (ta[ia] + tb[ib] - c)
    best = np.zeros(n)
    np.maximum.at(best, ia, iou)
    return float((best > 0.8).mean()), m / n


def main():
    maps = {"equiaxed (growth)": grain_growth_labels((192, 192), 10, rng=1, workers=1),
            "elongated 3:1 (growth)": grain_growth_labels((192, 192), 10, aspect=3, angle_deg=30, rng=2, workers=1)}
    for name, rel in (("nickel, twins merged (real)", "dream3d_edax_ni_h5/EdaxAngOnly.h5"),
                      ("316L AM, elongated (real)", "kanapy_316L_am/ebsd_316L_500x500.ang")):
        if (REAL / rel).exists():
            maps[name] = clean_with_grains(ie.read_map(REAL / rel))[1].labels
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    print("\n| representation | map | recovered, exact field | count ratio | recovered, noise 0.1 | count ratio | ms |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for kind in MORPHOLOGY_CHANNELS:
        for name, lab in maps.items():
            t = encode_morphology(lab, kind, rng=3)
            t0 = time.perf_counter()
            r0, c0 = recovered(lab, decode_morphology(t, kind))
            ms = (time.perf_counter() - t0) * 1000
            r1, c1 = recovered(lab, decode_morphology(t + 0.1 * rng.standard_normal(t.shape), kind))
            print(f"| {kind} | {name} | {r0:.2f} | {c0:.2f} | {r1:.2f} | {c1:.2f} | {ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""Homogeneity of a map: its grain statistics crop by crop against the whole (paper Figs. 19–24).

The map is cut into k×k non-overlapping crops; per bin of each metric's histogram, the minimum and
maximum crop probability are set against the whole map's, and the spread is the mean L2 between a
crop's distribution and the whole map's.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .compare import ALL_METRICS, bin_probabilities, common_edges, l2_distance, metric_sample
from .measure import Measured, sub_table


def crop_boxes(shape, crops: int = 16) -> list[tuple[int, int, int, int]]:
    """k×k non-overlapping crops covering the map (k = √crops; remainder cells go to the last row/column)."""
    k = int(round(np.sqrt(crops)))
    if k * k != crops or k < 1:
        raise InputError(f"--crops {crops} must be a square number (4, 9, 16, ...)")
    rows, cols = shape
    if rows < 2 * k or cols < 2 * k:
        raise InputError(f"map {rows}x{cols} is too small for {crops} crops; use fewer --crops")
    re = np.linspace(0, rows, k + 1).astype(int)
    ce = np.linspace(0, cols, k + 1).astype(int)
    return [(re[i], ce[j], re[i + 1] - re[i], ce[j + 1] - ce[j]) for i in range(k) for j in range(k)]


def homogeneity(meas: Measured, crops: int = 16, names=ALL_METRICS, edges=None) -> dict:
    """Per-bin spread of the crops' distributions around the whole map's (paper Figs. 20–24).

    Returns ``{metric: {"edges", "whole", "min", "max", "spread"}}``: bin probabilities of the whole map,
    the per-bin min and max over the crops, and ``spread`` = mean over crops of the L2 distance between
    a crop and the whole map (the one-number spread figure). ``edges`` (``{metric: edges}``) fixes the
    bins, e.g. to those of a target so the two maps' envelopes can be compared bin by bin.
    """
    tables = [sub_table(meas.labels, meas.quat, b, meas.table.step) for b in crop_boxes(meas.shape, crops)]
    out = {}
    for name in names:
        whole, ww = metric_sample(meas.table, name)
        e = edges[name] if edges is not None else common_edges(whole, whole, name)
        pw = bin_probabilities(whole, e, ww)
        pc = np.array([bin_probabilities(*_with_edges(metric_sample(t, name), e)) for t in tables])
        out[name] = {"edges": e, "whole": pw, "min": pc.min(axis=0), "max": pc.max(axis=0), "mean": pc.mean(axis=0),
                     "spread": float(np.mean([l2_distance(p, pw) for p in pc]))}
    return out


def _with_edges(sample, edges):
    v, w = sample
    return v, edges, w


def compare_homogeneity(gen: dict, target: dict) -> dict:
    """Summary of two :func:`homogeneity` results computed on the same bins.

    Per metric: both spreads, their ratio (generated over target; ≤ 1 means the generated map is at
    least as homogeneous as the target), and ``inside_target_envelope``: the share of the generated crops' mean
    distribution (by probability, so empty tail bins do not count) in bins where it lies within the
    target's crop min–max envelope. Crops against crops, because cutting biases a crop's distribution
    (cut grains look smaller and have fewer neighbours), so a whole map need not sit inside its own
    crops' envelope.
    """
    out = {}
    for name, g in gen.items():
        t = target[name]
        inside = (g["mean"] >= t["min"] - 1e-12) & (g["mean"] <= t["max"] + 1e-12)
        out[name] = {"spread_generated": g["spread"], "spread_target": t["spread"],
                     "spread_ratio": g["spread"] / t["spread"] if t["spread"] > 0 else float("nan"),
                     "inside_target_envelope": float(np.sum(g["mean"] * inside) / max(np.sum(g["mean"]), 1e-300))}
    return out

"""Histograms with the paper's bin rules and the 8×1024 conditioning tensor.

Bin rules (numpy's implementations): Rice for size and perimeter; Doane for disorientation,
coordination and the three Euler angles; square root for the inertia ratio.

Conditioning tensor. Each metric has a fixed value axis ``[lo, hi]`` (:data:`METRIC_AXES`) sampled at
1024 points, the centres ``v_j = lo + (j + ½)·(hi − lo)/1024``. Row k of ``C`` is the metric's histogram
density evaluated at those points, times ``hi − lo``, so that a row averages 1 over its axis and the same
column means the same physical value in every map. Values outside the axis are clipped onto its ends.
The mapping is invertible: ``density(v_j) = C[k, j] / (hi − lo)``
(:func:`distributions_from_tensor`), and a distribution given in physical units becomes a row through
:func:`tensor_from_distributions`.
"""

from __future__ import annotations

import numpy as np

from .table import METRIC_NAMES, GrainTable

AXIS_POINTS = 1024
CONDITIONING_SHAPE = (len(METRIC_NAMES), AXIS_POINTS)
"""Shape of the conditioning tensor: one row per metric of :data:`METRIC_NAMES`, one column per axis
point. Every layer above (datasets, the metric encoder, training) takes it from here."""

METRIC_AXES = {
    "size": (0.0, 256.0),          # equivalent circle diameter, cells
    "perimeter": (0.0, 2048.0),    # cell edges
    "inertia_ratio": (1.0, 33.0),  # dimensionless
    "coordination": (0.0, 40.0),   # neighbours
    "disorientation": (0.0, 63.0), # degrees
    "phi1": (0.0, 360.0),          # degrees
    "Phi": (0.0, 90.0),            # degrees (cubic Euler region)
    "phi2": (0.0, 90.0),           # degrees (cubic Euler region)
}
"""Fixed value axis of each metric in the conditioning tensor, in the metric's physical unit."""

BIN_RULES = {"size": "rice", "perimeter": "rice", "inertia_ratio": "sqrt", "coordination": "doane",
             "disorientation": "doane", "phi1": "doane", "Phi": "doane", "phi2": "doane"}


def axis_values(name: str) -> np.ndarray:
    """The 1024 values of a metric's axis."""
    lo, hi = METRIC_AXES[name]
    return lo + (np.arange(AXIS_POINTS) + 0.5) * (hi - lo) / AXIS_POINTS


def histogram(values: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(edges, density) of ``values`` by a numpy bin rule; a single bin for constant data."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0])
    if v.min() == v.max():
        edges = np.array([v.min() - 0.5, v.max() + 0.5])
    else:
        edges = np.histogram_bin_edges(v, bins=rule)
    dens, edges = np.histogram(v, bins=edges, density=True)
    return edges, dens


def distributions(table: GrainTable, exclude_border: bool = False) -> dict:
    """``{name: (edges, density)}`` for the eight metrics, plus ``size_area_weighted``: for the
    size bins, the fraction of the mapped area covered by grains of that size (paper Fig. 16)."""
    out = {}
    for name in METRIC_NAMES:
        out[name] = histogram(table.values(name, exclude_border), BIN_RULES[name])
    edges = out["size"][0]
    size = table.values("size", exclude_border)
    area = table.area[~table.border] if exclude_border else table.area
    frac, _ = np.histogram(size, bins=edges, weights=area.astype(np.float64))
    total = area.sum()
    out["size_area_weighted"] = (edges, frac / total if total else frac)
    return out


MIN_INTERIOR_GRAINS = 5
"""Fewest grains clear of the map edge for :func:`edge_corrected_distributions` to use them alone
(as :func:`infinityebsd.pipeline.growth.grain_statistics`). Even a handful of whole grains describes
the material better than the fragments around them: a 96² crop of 24-cell grains holds 6 whole ones
and 14 fragments, and extending it 4× from the whole ones alone measured 0.17 / 0.20 / 0.19 / 0.14
(W1/σ size / perimeter / inertia / coordination) against 0.37 / 0.39 / 0.60 / 0.34 (bench/RESULTS.md)."""


def miles_lantuejoul_factor(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Per grain of ``labels`` (grains 0..n−1), the Miles–Lantuéjoul factor 1 / ((H − h − 1)(W − w − 1)):
    the inverse of the number of places where a grain with that ``h × w`` bounding box lies in the
    ``H × W`` map without touching its edge. Weighting the grains clear of the edge by it gives
    unbiased per-grain statistics of the material (Miles 1978; Lantuéjoul 1980). Absent labels get
    the factor of a map-sized box."""
    from scipy import ndimage

    lab = np.asarray(labels)
    H, W = lab.shape
    n = int(lab.max()) + 1 if n is None else n
    boxes = ndimage.find_objects(lab + 1, max_label=n)
    ext = np.array([[s[0].stop - s[0].start, s[1].stop - s[1].start] if s is not None else [H, W] for s in boxes],
                   np.float64).reshape(-1, 2)
    return 1.0 / np.maximum((H - ext[:, 0] - 1) * (W - ext[:, 1] - 1), 1.0)


def edge_corrected_distributions(table: GrainTable, labels: np.ndarray,
                                 min_interior: int = MIN_INTERIOR_GRAINS) -> dict:
    """Distributions of a field of view's grains, corrected for the grains its edges cut.

    A grain cut by the map edge shows a fragment: smaller, more elongated, with fewer neighbours
    than it has. On a small map (an input crop of 100² cells holds 40 % such grains) they bias every
    per-grain distribution. Here only grains clear of the edge count, each weighted by the
    :func:`miles_lantuejoul_factor` of its bounding box, which undoes the bias towards small grains
    that dropping the cut ones brings.
    Boundary disorientations keep every boundary (a cut grain's boundaries are real ones). With
    fewer than ``min_interior`` interior grains, or none, the plain distributions are returned.
    """
    interior = ~np.asarray(table.border, bool)
    if interior.sum() < min_interior:
        return distributions(table)
    weight = np.where(interior, miles_lantuejoul_factor(labels, table.n), 0.0)
    out = {}
    for name in METRIC_NAMES:
        if name == "disorientation":
            out[name] = histogram(table.values(name), BIN_RULES[name])
            continue
        v = np.asarray(table.values(name), np.float64)
        ok = interior & np.isfinite(v)
        edges = histogram(v[ok], BIN_RULES[name])[0]
        dens, edges = np.histogram(v[ok], bins=edges, weights=weight[ok], density=True)
        out[name] = (edges, dens)
    return out


def _axis_row(name: str, edges, density) -> np.ndarray:
    """A histogram's probability mass re-binned onto the metric's axis cells, as density × range."""
    lo, hi = METRIC_AXES[name]
    edges = np.asarray(edges, dtype=np.float64)
    mass = np.asarray(density, dtype=np.float64) * np.diff(edges)
    cum = np.concatenate([[0.0], np.cumsum(mass)])
    total = cum[-1]
    if not total > 0:
        return np.zeros(AXIS_POINTS)
    cdf = np.interp(np.linspace(lo, hi, AXIS_POINTS + 1), edges, cum, left=0.0, right=total)
    cell = np.diff(cdf)
    cell[0] += cdf[0]             # mass below the axis goes to its first cell
    cell[-1] += total - cdf[-1]   # and mass above it to the last
    return cell / total * AXIS_POINTS  # a row averages 1 over its axis


def tensor_from_distributions(dists: dict, names=METRIC_NAMES) -> np.ndarray:
    """Rows of the conditioning tensor from ``{name: (edges, density)}`` in physical units.

    Metrics missing from ``dists`` give ``NaN`` rows (the model's null token stands for them).
    """
    C = np.full((len(names), AXIS_POINTS), np.nan, dtype=np.float64)
    for k, name in enumerate(names):
        if dists.get(name) is not None:
            C[k] = _axis_row(name, *dists[name])
    return C


def conditioning_tensor(table_or_dists, exclude_border: bool = False) -> np.ndarray:
    """The 8×1024 float32 conditioning tensor of a :class:`GrainTable` (or of distributions)."""
    d = table_or_dists if isinstance(table_or_dists, dict) else distributions(table_or_dists, exclude_border)
    return tensor_from_distributions(d).astype(np.float32)


def distributions_from_tensor(C: np.ndarray, names=METRIC_NAMES) -> dict:
    """Inverse of :func:`tensor_from_distributions`: ``{name: (axis_values, density)}``."""
    out = {}
    for k, name in enumerate(names):
        lo, hi = METRIC_AXES[name]
        if not np.all(np.isfinite(C[k])):
            continue
        out[name] = (axis_values(name), np.asarray(C[k], dtype=np.float64) / (hi - lo))
    return out


def metric_axes() -> dict:
    """``{name: (lo, hi)}`` value axes of the conditioning tensor."""
    return dict(METRIC_AXES)

"""Distances between two maps' grain statistics, and the texture and Mackenzie comparisons.

Per metric (the eight of :data:`~infinityebsd.metrics.METRIC_NAMES` plus ``size_area_weighted``, the
grain size weighted by grain area, paper Fig. 16) three numbers are reported, all 0 for identical
samples:

``l2``
    The paper's L2: both samples histogrammed on *common* bins (the metric's bin rule applied to the
    two samples pooled, so neither map decides the binning; unit bins for the integer coordination), each histogram turned into bin
    probabilities (summing to 1), and the Euclidean norm of their difference. Dimensionless, in [0, √2].
``w1``
    Wasserstein-1 (earth mover's) distance between the two samples divided by the *target's standard
    deviation* (weighted by area for ``size_area_weighted``). It does not depend on binning and reads
    as "how many target standard deviations the distribution has moved". A target with zero spread
    falls back to dividing by 1.
``ks``
    The two-sample Kolmogorov–Smirnov statistic: largest gap between the two empirical CDFs, in [0, 1]
    (scipy's ``ks_2samp``; the area-weighted size uses the same statistic on weighted CDFs).

Samples are per grain, except ``disorientation``: one value per pair of adjacent grains (as in
:func:`infinityebsd.metrics.distributions`, unweighted by boundary length).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.integrate import trapezoid  # np.trapezoid needs NumPy 2; the declared floor is 1.24

from ..crystal import disorientation_angle, euler_to_quat, mackenzie_density
from ..metrics import BIN_RULES, METRIC_NAMES, GrainTable

ALL_METRICS = METRIC_NAMES + ("size_area_weighted",)
"""The metrics every comparison reports."""


# ------------------------------------------------------------------------------------------- samples
def metric_sample(table: GrainTable, name: str, grains=None) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, weights) of one metric; weights are ``None`` except for ``size_area_weighted``.

    ``grains``: optional boolean mask (n,) restricting the sample to some grains (for disorientation:
    the pairs with at least one selected grain).
    """
    if name == "size_area_weighted":
        v, w = table.size, table.area.astype(np.float64)
        if grains is not None:
            v, w = v[grains], w[grains]
        return np.asarray(v, np.float64), np.asarray(w, np.float64)
    if name == "disorientation":
        v = table.disorientation_deg
        if grains is not None and len(v):
            v = v[grains[table.pairs[:, 0]] | grains[table.pairs[:, 1]]]
        return np.asarray(v, np.float64), None
    v = table.values(name)
    if grains is not None:
        v = v[grains]
    return np.asarray(v, np.float64), None


def _finite(v, w):
    ok = np.isfinite(v)
    return v[ok], (None if w is None else w[ok])


def common_edges(a: np.ndarray, b: np.ndarray, name: str) -> np.ndarray:
    """Bin edges for both samples: the metric's bin rule on the pooled values."""
    rule = BIN_RULES.get("size" if name == "size_area_weighted" else name, "auto")
    v = np.concatenate([a, b])
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([0.0, 1.0])
    if name == "coordination":  # integers: unit bins centred on them (Doane bins may hold none)
        return np.arange(np.floor(v.min()) - 0.5, np.ceil(v.max()) + 1.0)
    if v.min() == v.max():
        return np.array([v.min() - 0.5, v.max() + 0.5])
    return np.histogram_bin_edges(v, bins=rule)


def bin_probabilities(v: np.ndarray, edges: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Fraction of the sample (or of its weight) in each bin; zeros for an empty sample."""
    h, _ = np.histogram(v, bins=edges, weights=w)
    s = h.sum()
    return h / s if s > 0 else np.zeros(len(edges) - 1)


def l2_distance(pa: np.ndarray, pb: np.ndarray) -> float:
    """Euclidean norm between two bin-probability vectors (the paper's L2)."""
    return float(np.sqrt(np.sum((np.asarray(pa) - np.asarray(pb)) ** 2)))


def weighted_std(v: np.ndarray, w: np.ndarray | None = None) -> float:
    if v.size == 0:
        return 0.0
    if w is None:
        return float(np.std(v))
    mu = np.average(v, weights=w)
    return float(np.sqrt(np.average((v - mu) ** 2, weights=w)))


def ks_statistic(a, b, wa=None, wb=None) -> float:
    """Two-sample KS statistic; weighted empirical CDFs when weights are given."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if wa is None and wb is None:
        return float(stats.ks_2samp(a, b, method="asymp").statistic)  # only the statistic is used
    wa = np.ones(len(a)) if wa is None else np.asarray(wa, np.float64)
    wb = np.ones(len(b)) if wb is None else np.asarray(wb, np.float64)
    x = np.union1d(a, b)
    oa, ob = np.argsort(a), np.argsort(b)
    ca = np.concatenate([[0.0], np.cumsum(wa[oa])]) / wa.sum()
    cb = np.concatenate([[0.0], np.cumsum(wb[ob])]) / wb.sum()
    fa = ca[np.searchsorted(np.asarray(a)[oa], x, side="right")]
    fb = cb[np.searchsorted(np.asarray(b)[ob], x, side="right")]
    return float(np.max(np.abs(fa - fb)))


def sample_distances(target, other, name: str, wt=None, wo=None) -> dict:
    """``{l2, w1, ks, n_target, n_other}`` between a target sample and another (module docstring)."""
    target, wt = _finite(np.asarray(target, np.float64), wt)
    other, wo = _finite(np.asarray(other, np.float64), wo)
    out = {"n_target": int(len(target)), "n_other": int(len(other))}
    if len(target) == 0 or len(other) == 0:
        return {**out, "l2": float("nan"), "w1": float("nan"), "ks": float("nan")}
    edges = common_edges(target, other, name)
    out["l2"] = l2_distance(bin_probabilities(target, edges, wt), bin_probabilities(other, edges, wo))
    spread = weighted_std(target, wt)
    w1 = stats.wasserstein_distance(target, other, wt, wo)
    out["w1"] = float(w1 / spread) if spread > 0 else float(w1)
    out["ks"] = ks_statistic(target, other, wt, wo)
    return out


def compare_tables(target: GrainTable, other: GrainTable, names=ALL_METRICS,
                   target_grains=None, other_grains=None) -> dict:
    """``{metric: {l2, w1, ks, n_target, n_other}}`` between two grain tables."""
    out = {}
    for name in names:
        a, wa = metric_sample(target, name, target_grains)
        b, wb = metric_sample(other, name, other_grains)
        out[name] = sample_distances(a, b, name, wa, wb)
    return out


# ------------------------------------------------------------------------------------------- texture
def mackenzie_w1(disorientation_deg: np.ndarray, weights=None) -> float:
    """Wasserstein-1 distance (degrees) between a disorientation sample and the Mackenzie distribution.

    Computed as ∫|F_sample − F_Mackenzie| dθ over 0–62.8° on a 0.05° grid.
    """
    v = np.asarray(disorientation_deg, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    grid = np.linspace(0.0, 62.9, 1259)
    dens = mackenzie_density(0.5 * (grid[1:] + grid[:-1]), n_axes=20_000)
    fm = np.concatenate([[0.0], np.cumsum(dens * np.diff(grid))])
    fm /= fm[-1]
    w = np.ones(len(v)) if weights is None else np.asarray(weights, np.float64)[np.isfinite(disorientation_deg)]
    o = np.argsort(v)
    cw = np.concatenate([[0.0], np.cumsum(w[o])]) / w.sum()
    fs = cw[np.searchsorted(v[o], grid, side="right")]
    return float(trapezoid(np.abs(fs - fm), grid))


def _kernel(omega_rad: np.ndarray, halfwidth_deg: float) -> np.ndarray:
    """Gaussian bell in the misorientation angle, value 1 at 0, ½ at ``halfwidth_deg``."""
    s = np.deg2rad(halfwidth_deg) / np.sqrt(2 * np.log(2))
    return np.exp(-0.5 * (omega_rad / s) ** 2)


def _kernel_mean_uniform(halfwidth_deg: float) -> float:
    """Mean of the kernel over uniformly random orientations (Mackenzie-weighted), for MRD units."""
    th = np.linspace(0.0, 62.9, 2000)
    d = mackenzie_density(th, n_axes=20_000)
    return float(trapezoid(_kernel(np.deg2rad(th), halfwidth_deg) * d, th) / trapezoid(d, th))


def phi2_section_grid(step_deg: float = 5.0):
    """(phi1, Phi) grid in degrees of the φ2 = 45° section: φ1 0–360, Φ 0–90."""
    phi1 = np.arange(0.0, 360.0 + 1e-9, step_deg)
    Phi = np.arange(0.0, 90.0 + 1e-9, step_deg)
    return phi1, Phi


def odf_section(euler_deg: np.ndarray, weights=None, phi2_deg: float = 45.0, halfwidth_deg: float = 10.0,
                step_deg: float = 5.0, chunk: int = 2000) -> np.ndarray:
    """Kernel orientation density (multiples of random, MRD) on a φ2 section; shape (len(Phi), len(phi1)).

    Each grain contributes a Gaussian bell in the cubic misorientation angle (half width
    ``halfwidth_deg``) weighted by ``weights`` (grain areas for a volume-weighted ODF). Dividing by the
    kernel's mean over random orientations makes a random texture read ≈ 1 everywhere.
    """
    phi1, Phi = phi2_section_grid(step_deg)
    P1, PH = np.meshgrid(phi1, Phi)
    grid = np.deg2rad(np.stack([P1, PH, np.full_like(P1, phi2_deg)], axis=-1)).reshape(-1, 4 - 1)
    qg = euler_to_quat(grid)
    qs = euler_to_quat(np.deg2rad(np.asarray(euler_deg, np.float64).reshape(-1, 3)))
    w = np.ones(len(qs)) if weights is None else np.asarray(weights, np.float64)
    if len(qs) == 0:
        return np.zeros(P1.shape)
    dens = np.zeros(len(qg))
    for i in range(0, len(qs), chunk):  # chunks of grains keep the (grid × grains) block small
        om = disorientation_angle(qg[:, None, :], qs[None, i:i + chunk, :])
        dens += _kernel(om, halfwidth_deg) @ w[i:i + chunk]
    dens /= w.sum() * _kernel_mean_uniform(halfwidth_deg)
    return dens.reshape(P1.shape)


def texture_comparison(target: GrainTable, other: GrainTable, halfwidth_deg: float = 10.0) -> dict:
    """φ2 = 45° sections of both maps (area-weighted kernel ODFs) and the disorientation-vs-Mackenzie W1.

    Returns ``{"section_target", "section_other"}`` (arrays, MRD), ``rms_mrd`` (RMS difference of the
    two sections), ``max_mrd_target``/``max_mrd_other`` and ``mackenzie_w1_target``/``_other`` (degrees).
    """
    st = odf_section(target.euler_deg, target.area, halfwidth_deg=halfwidth_deg)
    so = odf_section(other.euler_deg, other.area, halfwidth_deg=halfwidth_deg)
    return {
        "section_target": st, "section_other": so,
        "rms_mrd": float(np.sqrt(np.mean((st - so) ** 2))),
        "max_mrd_target": float(st.max()), "max_mrd_other": float(so.max()),
        "mackenzie_w1_target": mackenzie_w1(target.disorientation_deg),
        "mackenzie_w1_other": mackenzie_w1(other.disorientation_deg),
    }

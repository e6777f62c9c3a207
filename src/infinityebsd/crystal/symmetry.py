"""Cubic (m-3m) crystal symmetry: the 24 proper rotations, disorientation, fundamental zone,
mean orientation and the Σ3 twin test.

Symmetry acts on the crystal side, on the right of the orientation: ``g`` and ``g·s`` describe the same
crystal for every ``s`` in the group. The disorientation between ``g1`` and ``g2`` is the smallest
rotation angle among ``s1·g1⁻¹·g2·s2``; because conjugating by ``s1`` keeps angles, it equals the
smallest angle among ``g1⁻¹·g2·t`` over the group, which :func:`cubic_min_angle` evaluates in closed
form (largest |scalar part| over the 24 elements from the sorted absolute components).
"""

from __future__ import annotations

import numpy as np

from .quaternion import axis_angle_to_quat, qconj, qmul

_H = 1.0 / np.sqrt(2.0)


def _cubic_group() -> np.ndarray:
    ops = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # identity, 180° about <100>
    for i in (1, 2, 3):  # ±90° about <100>
        for sgn in (1, -1):
            q = [_H, 0, 0, 0]
            q[i] = sgn * _H
            ops.append(q)
    for sx in (1, -1):  # ±120° about <111>
        for sy in (1, -1):
            for sz in (1, -1):
                ops.append([0.5, 0.5 * sx, 0.5 * sy, 0.5 * sz])
    for i, j in ((1, 2), (1, 3), (2, 3)):  # 180° about <110>
        for sgn in (1, -1):
            q = [0, 0, 0, 0]
            q[i] = _H
            q[j] = sgn * _H
            ops.append(q)
    return np.array(ops, dtype=np.float64)


CUBIC_SYMMETRY = _cubic_group()
"""The 24 proper rotations of m-3m as quaternions, shape (24, 4); the identity first."""

SIGMA3 = axis_angle_to_quat([1, 1, 1], np.deg2rad(60.0))
"""The Σ3 relation, 60° about [111]."""

BRANDON_SIGMA3_DEG = 15.0 / np.sqrt(3.0)
"""Brandon's criterion for Σ3: 15°/√3 ≈ 8.66°."""

MAX_CUBIC_DISORIENTATION_DEG = float(np.rad2deg(2 * np.arccos((2 + np.sqrt(2)) / 4)))
"""Largest possible cubic disorientation, ≈ 62.8°."""


def cubic_max_scalar(m: np.ndarray) -> np.ndarray:
    """Largest |w| over the 24 cubic equivalents ``m·s`` (closed form, no loop over the group)."""
    a = np.sort(np.abs(np.asarray(m, dtype=np.float64)), axis=-1)[..., ::-1]
    w = np.maximum(a[..., 0], (a[..., 0] + a[..., 1]) * _H)
    w = np.maximum(w, a.sum(axis=-1) * 0.5)
    return np.minimum(w, 1.0)


def cubic_min_angle(m: np.ndarray) -> np.ndarray:
    """Smallest rotation angle (radians) among the cubic equivalents of rotations ``m``."""
    return 2.0 * np.arccos(cubic_max_scalar(m))


def disorientation_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Cubic disorientation angle (radians, 0 to 62.8°) between orientation arrays (broadcast)."""
    return cubic_min_angle(qmul(qconj(q1), q2))


def _best_operator(q: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Index of the symmetry operator ``s`` that brings ``q·s`` nearest ``ref`` (or identity)."""
    # scalar(r⁻¹·q·s) = dot(r⁻¹·q, conj(s)); all 24 at once as one small matrix product (float32
    # is enough to pick the operator and halves the memory traffic).
    m = q if ref is None else qmul(qconj(ref), q)
    sconj = qconj(CUBIC_SYMMETRY).astype(np.float32)
    scal = m.reshape(-1, 4).astype(np.float32) @ sconj.T
    np.abs(scal, out=scal)
    return scal.argmax(axis=1).reshape(m.shape[:-1])


def to_fundamental_zone(q: np.ndarray, ref: np.ndarray | None = None, chunk: int = 1 << 18) -> np.ndarray:
    """The symmetry equivalent ``q·s`` closest to ``ref`` (default: identity, i.e. the cubic
    Rodrigues fundamental zone), with a non-negative dot product against ``ref``."""
    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    rflat = None if ref is None else np.broadcast_to(np.asarray(ref, dtype=np.float64), q.shape).reshape(-1, 4)
    out = np.empty_like(flat)
    for a in range(0, len(flat), chunk):
        b = a + chunk
        qq = flat[a:b]
        rr = None if rflat is None else rflat[a:b]
        k = _best_operator(qq, rr)
        r = qmul(qq, CUBIC_SYMMETRY[k])
        dot = r[:, 0] if rr is None else np.einsum("ij,ij->i", r, rr)
        r[dot < 0] *= -1
        out[a:b] = r
    return out.reshape(q.shape)


def mean_orientation(q: np.ndarray, labels: np.ndarray, n: int, iterations: int = 3,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Symmetry-aware mean orientation of each labelled set.

    Each member is replaced by its equivalent nearest the current estimate (starting from the
    first member of each set), the quaternions are averaged and normalised, and this repeats.

    Parameters
    ----------
    q : (N, 4) orientations; labels : (N,) ints in [0, n); n : number of sets.

    Returns
    -------
    (n, 4) mean orientations in the fundamental zone; sets without members get the identity.
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels).ravel()
    w = np.ones(len(q)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    ref = np.tile([1.0, 0, 0, 0], (n, 1))
    first = np.full(n, -1)
    idx = np.arange(len(labels))[::-1]
    first[labels[idx]] = idx  # the last write wins, so each set keeps its first member
    has = first >= 0
    ref[has] = q[first[has]]
    # Members sit within a few degrees of their set's mean, so the equivalent nearest the first
    # member is also the one nearest the mean: align once, then refine the average only.
    aligned = to_fundamental_zone(q, ref[labels])
    for it in range(iterations):
        acc = np.zeros((n, 4))
        for c in range(4):
            acc[:, c] = np.bincount(labels, weights=aligned[:, c] * w, minlength=n)
        norm = np.linalg.norm(acc, axis=1)
        ok = norm > 0
        ref[ok] = acc[ok] / norm[ok, None]
        if it + 1 < iterations:
            # re-align only members far from the current mean (rare: wrongly assigned cells)
            far = np.einsum("ij,ij->i", aligned, ref[labels]) < np.cos(np.deg2rad(15.0) / 2)
            if far.any():
                aligned[far] = to_fundamental_zone(q[far], ref[labels[far]])
            else:
                break
    return to_fundamental_zone(ref)


def sigma3_deviation(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Angular distance (radians) of the misorientation between ``q1`` and ``q2`` from Σ3 (60°⟨111⟩),
    minimised over the symmetry of both crystals."""
    m = qmul(qconj(q1), q2)
    best = np.full(m.shape[:-1], np.inf)
    inv3 = qconj(SIGMA3)
    for s in CUBIC_SYMMETRY:  # s·m·s⁻¹ then the closed form for the remaining one-sided freedom
        ms = qmul(qmul(s, m), qconj(s))
        best = np.minimum(best, cubic_min_angle(qmul(inv3, ms)))
    return best


def is_sigma3(q1: np.ndarray, q2: np.ndarray, tol_deg: float = BRANDON_SIGMA3_DEG) -> np.ndarray:
    """True where the pair is Σ3-related within ``tol_deg`` (default Brandon, 8.66°)."""
    return sigma3_deviation(q1, q2) <= np.deg2rad(tol_deg)


def mackenzie_density(theta_deg: np.ndarray, n_axes: int = 100_000) -> np.ndarray:
    """Density (per degree) of the cubic disorientation angle of uniformly random orientation pairs.

    Computed from geometry, not from sampling pairs: a rotation (θ, n) is a disorientation when it
    lies in the cubic Rodrigues fundamental zone (|r_i| ≤ √2 − 1 and |r_1|+|r_2|+|r_3| ≤ 1 with
    r = tan(θ/2)·n), so the density is 24·(1 − cos θ)/π · A(θ) per radian, A being the fraction of
    axis directions inside the zone at that angle (integrated over a Fibonacci sphere).
    """
    theta = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))
    i = np.arange(n_axes) + 0.5
    z = 1 - 2 * i / n_axes
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    n = np.abs(np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1))
    t = np.tan(theta / 2)[..., None]
    inside = (t * n.max(axis=1) <= np.sqrt(2) - 1 + 1e-12) & (t * n.sum(axis=1) <= 1 + 1e-12)
    frac = inside.mean(axis=-1)
    return 24 * (1 - np.cos(theta)) / np.pi * frac * np.pi / 180.0

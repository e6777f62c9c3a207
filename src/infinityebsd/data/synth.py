"""Synthetic single-phase cubic polycrystals: a grain-growth generator and a Voronoi/Laguerre baseline.

Grain growth (``method='growth'``, the default)
    Threshold dynamics (MBO) for curvature-driven grain growth, started from a fine Voronoi
    tessellation. Each step convolves the indicator function of every "colour" with a Gaussian (one
    batched FFT) and gives each cell to the colour with the largest value. Grains are coloured so that
    two grains of one colour are never neighbours nor neighbours of a common grain (distance-2
    colouring through grains up to 3× the mean area, redone every step), which lets some 15 colours
    stand for thousands of grains. Wide kernels are applied on a 2× coarser grid. The kernel width
    follows the mean grain radius, so the number of steps grows only with the logarithm of
    the coarsening factor. The result has curved boundaries, triple junctions near 120°, about six
    neighbours per interior grain and the broad, right-skewed size distribution of annealed metals.

    * anisotropy: an elongated Gaussian. Curvature flow with kernel covariance ``Σ`` is isotropic flow
      in coordinates stretched by ``Σ^(-1/2)``, so grains come out elongated ``aspect`` times (length
      over width) along ``angle_deg``, measured from the X (column) axis towards the Y (row) axis.
    * size spread: every grain's indicator is scaled by a log-normal weight (``size_spread``, default
      0.4), a stand-in for differences in boundary energy and mobility; it broadens and skews the
      size distribution as in real annealed metals (coefficient of variation of ECD ~0.4, skew ~0.5).
    * bimodal: a few grains get an extra driving force (abnormal growth), steered step by step so
      they end up covering the area share ``bimodal`` (within a few per cent).
    * periodic: the convolutions wrap around (plain FFT); otherwise the field is mirror-padded.

Voronoi / Laguerre (``method='voronoi'``)
    Poisson seeds (Laguerre weights drawn from a log-normal radius distribution with coefficient of
    variation ``size_cv``) assigned by nearest power distance, the classical way (Neper, DREAM.3D,
    MicroStructPy). Same size, anisotropy, texture and periodicity controls.

Both produce labels that are 4-connected regions with no grain under 10 cells (specks merged into
the neighbour they share the longest boundary with) and one orientation per grain, redrawn until all
neighbours (4- and 8-connected) differ by more than 12° and are not Σ3 twins, so
``grains.reconstruct(m, 10)`` finds exactly the generated grains and ``grains.clean`` leaves the map as
it is. Two exceptions: with a sharp, strong texture not every neighbour pair can differ by 12°, so
after 40 redraw rounds the remaining offenders are drawn uniformly at random (diluting a 5° component
by ~10 % of its share); and in periodic maps a grain that wraps round is one grain with one
orientation, so the piece cut off by the map edge may be under 10 cells.

Sizes: ``grain_size`` is the target mean equivalent circle diameter (ECD, cells) of all grains in the
map, border grains included, which is what ``metrics`` reports as the mean of ``size``.

Training corpus (:func:`draw_corpus_params`), each map independently:

=============  ===============================================================================
mean size      log-uniform 8–80 cells (ECD)
aspect         1 with probability 0.4, else uniform 1–3; direction uniform 0–180°
size spread    uniform 0.2–0.8 (log-normal growth advantage, see above)
bimodal        0 with probability 0.7, else abnormal-grain area share uniform 0.1–0.4
texture        random with probability 0.4, else 1–2 of cube, goss, brass, copper, s,
               rotated-cube, fibre111, fibre100 with total fraction 0.2–0.8 and spread 4–12°
method         'growth' (the corpus is for learning realistic, annealed microstructures)
=============  ===============================================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import scipy.fft as sfft
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import label as _cc_label

from .._shared import atomic_write_text
from ..crystal import disorientation_angle, is_sigma3, quat_to_euler
from ..errors import InputError
from ..grains.labels import best_per_group, boundary_pairs, majority_label
from ..io import EBSDMap, Phase, write_ctf
from .texture import draw_from, parse_texture, sample_components, sample_orientations, texture_spec

__all__ = [
    "grain_growth_labels", "voronoi_labels", "synth_grains", "merge_specks", "sample_orientations",
    "assign_orientations", "synth_map",
    "draw_corpus_params", "write_corpus", "map_from_params", "MIN_AREA", "MIN_DISORIENTATION_DEG",
]

MIN_AREA = 10
"""Smallest grain kept, in cells (the paper's clean-up threshold)."""

MIN_DISORIENTATION_DEG = 12.0
"""Neighbouring grains differ by more than this (margin above the 10° reconstruction threshold)."""

_START_FACTOR = 3.0  # initial Voronoi grains this many times finer than the target
_SIGMA_FRACTION = 0.45  # kernel width over mean grain radius
_SIZE_SPREAD = 0.4  # default spread (log-normal sigma) of the per-grain growth advantage
_TWIN_TOL_DEG = 10.0  # a bit above Brandon's 8.66° so clean() never merges generated neighbours


# --------------------------------------------------------------------------------------- helpers
def _check_shape(shape) -> tuple[int, int]:
    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"map size must be two integers (rows, cols), got {shape!r}") from None
    if rows < 8 or cols < 8:
        raise InputError(f"map size {rows}x{cols} is too small; use at least 8x8 cells")
    return rows, cols


def _check_common(grain_size, aspect, bimodal):
    if not np.isfinite(grain_size) or grain_size < 4:
        raise InputError(f"grain size {grain_size} is too small; use at least 4 cells (ECD)")
    if not np.isfinite(aspect) or aspect < 1:
        raise InputError(f"aspect {aspect} must be >= 1 (length over width of the grains)")
    if not 0 <= bimodal < 0.9:
        raise InputError(f"bimodal {bimodal} must be in [0, 0.9) (area share of abnormal grains)")


def _metric(aspect: float, angle_deg: float) -> np.ndarray:
    """2×2 matrix taking (row, col) offsets to coordinates in which grains are round (unit area)."""
    t = np.deg2rad(angle_deg)
    u = np.array([np.sin(t), np.cos(t)])  # elongation direction in (row, col)
    v = np.array([np.cos(t), -np.sin(t)])
    s = np.sqrt(aspect)
    return np.stack([u / s, v * s])  # rows: coordinates along u (shrunk) and along v (stretched)


def _mean_ecd(labels: np.ndarray) -> float:
    area = np.bincount(labels.ravel())
    area = area[area > 0]
    return float(np.mean(np.sqrt(4 * area / np.pi))) if len(area) else 0.0


def _components(field: np.ndarray, periodic: bool) -> np.ndarray:
    """4-connected components of equal values of ``field``, numbered 0..n-1 (wrapping if periodic)."""
    lab = _cc_label(field, background=-1, connectivity=1).astype(np.int64) - 1
    if periodic:
        n = int(lab.max()) + 1
        ea = np.concatenate([lab[:, 0], lab[0, :]])
        eb = np.concatenate([lab[:, -1], lab[-1, :]])
        same = np.concatenate([field[:, 0] == field[:, -1], field[0, :] == field[-1, :]])
        if same.any():
            g = sparse.coo_matrix((np.ones(same.sum()), (ea[same], eb[same])), shape=(n, n))
            _, comp = connected_components(g, directed=False)
            lab = comp[lab]
    return lab.astype(np.int32)


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inv = np.unique(labels, return_inverse=True)
    return inv.reshape(labels.shape).astype(np.int32)


def merge_specks(labels: np.ndarray, min_area: int = MIN_AREA, periodic: bool = False) -> np.ndarray:
    """Merge grains smaller than ``min_area`` cells into the neighbour they share most boundary with."""
    labels = _relabel(labels)
    for _ in range(50):
        area = np.bincount(labels.ravel())
        small = area < min_area
        if not small.any() or len(area) == 1:
            break
        pairs, length = boundary_pairs(labels, periodic)
        # both directions; prefer neighbours that are not small themselves, then the longest boundary
        src = np.concatenate([pairs[:, 0], pairs[:, 1]])
        dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
        ln = np.concatenate([length, length])
        keep = small[src]
        src, dst, ln = src[keep], dst[keep], ln[keep]
        if len(src) == 0:
            break
        score = ln + np.where(small[dst], 0, 1 << 30)
        s, best = best_per_group(src, score)
        d = dst[best]
        ok = ~small[d]
        if not ok.any():
            ok = d > s  # only small grains around: merge upwards so no two swap
        target = np.arange(len(area))
        target[s[ok]] = d[ok]
        labels = _relabel(target[labels])
    return labels


def _neighbour_graph(pairs: np.ndarray, n: int) -> sparse.csr_matrix:
    g = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    return ((g + g.T) > 0).astype(np.int8)


def _colour(adj2: sparse.csr_matrix, rng: np.random.Generator, max_colours: int = 62) -> np.ndarray:
    """Greedy parallel colouring (Jones–Plassmann): no two vertices joined in ``adj2`` share a colour."""
    n = adj2.shape[0]
    colour = np.full(n, -1, np.int64)
    prio = rng.permutation(n)
    coo = adj2.tocoo()
    i, j = coo.row, coo.col
    m = i != j
    i, j = i[m], j[m]
    used = np.zeros(n, np.uint64)
    for _ in range(10 * n + 10):
        un = colour < 0
        if not un.any():
            break
        # a vertex is coloured now when it outranks every uncoloured neighbour
        e = un[i] & un[j]
        best = np.full(n, -1, np.int64)
        np.maximum.at(best, i[e], prio[j[e]])
        now = un & (prio > best)
        idx = np.flatnonzero(now)
        free = ~used[idx]
        low = free & (~free + np.uint64(1))  # lowest free bit
        c = np.log2(low.astype(np.float64)).astype(np.int64)
        if c.max(initial=0) >= max_colours:
            raise RuntimeError("grain colouring needs too many colours")
        colour[idx] = c
        # record the new colours in the neighbours' used masks
        e2 = now[j]
        bits = np.left_shift(np.uint64(1), colour[j[e2]].astype(np.uint64))
        np.bitwise_or.at(used, i[e2], bits)
    return colour


def _gauss_hat(shape, sigma: float, aspect: float, angle_deg: float):
    """Fourier transform (rfft2 layout) of a unit-mass Gaussian with covariance sigma²·M⁻¹M⁻ᵀ."""
    ky = sfft.fftfreq(shape[0])[:, None]
    kx = sfft.rfftfreq(shape[1])[None, :]
    minv = np.linalg.inv(_metric(aspect, angle_deg))
    cov = sigma**2 * minv @ minv.T  # (row, col) covariance
    q = cov[0, 0] * ky**2 + 2 * cov[0, 1] * ky * kx + cov[1, 1] * kx**2
    return np.exp(-2 * np.pi**2 * q).astype(np.float32)


def _voronoi_assign(shape, seeds, weights=None, aspect=1.0, angle_deg=0.0, periodic=False) -> np.ndarray:
    """Label each cell with its nearest seed (power distance if ``weights``), in the stretched metric."""
    rows, cols = shape
    M = _metric(aspect, angle_deg)
    rr, cc = np.mgrid[0:rows, 0:cols]
    pts = np.stack([rr.ravel() + 0.5, cc.ravel() + 0.5], axis=1)
    sd = np.asarray(seeds, dtype=np.float64)
    ids = np.arange(len(sd))
    w = np.zeros(len(sd)) if weights is None else np.asarray(weights, dtype=np.float64)
    if periodic:  # copies of the seeds in the 8 surrounding tiles
        offs = np.array([(a * rows, b * cols) for a in (-1, 0, 1) for b in (-1, 0, 1)], dtype=np.float64)
        sd = (sd[None] + offs[:, None]).reshape(-1, 2)
        ids = np.tile(ids, 9)
        w = np.tile(w, 9)
    # power distance |x - s|² - w as a Euclidean distance in 3-D: lift each seed by sqrt(max(w) - w)
    lift = np.sqrt(w.max() - w)
    tree = cKDTree(np.column_stack([sd @ M.T, lift]))
    _, k = tree.query(np.column_stack([pts @ M.T, np.zeros(len(pts))]), workers=-1)
    return ids[k].reshape(rows, cols).astype(np.int32)


# --------------------------------------------------------------------------------------- growth
def _upsample2(u: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation from cell centres of a 2× coarser grid (wrapping at the ends): fine cell
    2i takes 3/4 of coarse cell i and 1/4 of cell i−1, fine cell 2i+1 3/4 of i and 1/4 of i+1.

    Written into one output array through strided views: no rolled copies and no stacking, which
    made this 1.7× slower on twelve 520² colour fields (bench/RESULTS.md, stop 26)."""
    n = u.shape[axis]
    shape = list(u.shape)
    shape[axis] = 2 * n
    out = np.empty(shape, u.dtype)

    def at(a, s):
        return a[(slice(None),) * (axis % a.ndim) + (s,)]

    even, odd = at(out, slice(0, None, 2)), at(out, slice(1, None, 2))
    np.multiply(u, 0.75, out=even)
    np.multiply(u, 0.75, out=odd)
    at(even, slice(1, None))[...] += 0.25 * at(u, slice(0, n - 1))
    at(even, slice(0, 1))[...] += 0.25 * at(u, slice(n - 1, n))
    at(odd, slice(0, n - 1))[...] += 0.25 * at(u, slice(1, None))
    at(odd, slice(n - 1, n))[...] += 0.25 * at(u, slice(0, 1))
    return out


def _smooth(labels, col, wgt, K, sigma, aspect, angle_deg, periodic, workers, chunk=None):
    """Gaussian-smoothed, weighted indicator functions of the K colours, shape (K, rows, cols); with
    ``chunk``, only their argmax (the colour each cell takes), computed ``chunk`` colours at a time so
    that memory holds ``chunk`` fields instead of K (large canvases).

    ``sigma`` and ``aspect`` are one value each, or one per colour (each colour smoothed with its own
    kernel; all have unit mass, so a flat boundary between two of them still sits at equal values).

    Non-periodic maps are mirror-padded by 3 sigma so nothing wraps round. When the kernel is wide
    (minor sigma >= 4 cells) the indicators are block-averaged 2×2, smoothed on the coarse grid and
    interpolated back: the Gaussian hides the difference and the FFTs cost a quarter.
    """
    rows, cols = labels.shape
    asp = np.broadcast_to(np.asarray(aspect, np.float64), (K,))
    sig = np.broadcast_to(np.asarray(sigma, np.float64), (K,))
    # the longest kernel sets the padding, the narrowest minor width whether the grid can be coarser
    down = np.min(sig / np.sqrt(asp)) >= 4.0 and (not periodic or (rows % 2 == 0 and cols % 2 == 0))
    reach = float(np.max(sig * np.sqrt(asp)))
    f = 2 if down else 1
    if periodic:  # the FFT's own wrap-around is the periodic boundary: keep the exact size
        pad, ps = 0, (rows, cols)
    else:
        pad = int(np.ceil(3.0 * reach))
        ps = tuple(f * sfft.next_fast_len(-(-(n + 2 * pad) // f), real=True) for n in (rows, cols))
    lf = labels
    if not periodic:
        lf = np.pad(labels, ((pad, ps[0] - rows - pad), (pad, ps[1] - cols - pad)), mode="symmetric")
    cs = (ps[0] // f, ps[1] // f)
    rr, cc = np.indices(ps)
    cell = ((rr // f) * cs[1] + cc // f).ravel()
    cl, wl = col[lf].ravel(), wgt[lf].ravel() / (f * f)
    kernels = np.unique(np.column_stack([sig, asp]), axis=0)

    def fields(k0, k1):
        """The smoothed fields of colours k0..k1−1 on the map."""
        m = (cl >= k0) & (cl < k1)
        chi = np.bincount((cl[m] - k0) * (cs[0] * cs[1]) + cell[m], weights=wl[m],
                          minlength=(k1 - k0) * cs[0] * cs[1]).astype(np.float32).reshape(k1 - k0, *cs)
        U = sfft.rfft2(chi, workers=workers)
        for sg, a in kernels:
            sel = (sig[k0:k1] == sg) & (asp[k0:k1] == a)
            if not sel.any():
                continue
            g = _gauss_hat(cs, sg / f, a, angle_deg)
            if sel.all():
                U *= g
            else:
                U[sel] *= g
        u = sfft.irfft2(U, s=cs, workers=workers)
        p = pad
        if down:
            # crop the coarse field near the map first, so the interpolation touches few cells
            r0 = pad // 2 - 1
            if periodic or r0 < 0:
                u = _upsample2(_upsample2(u, 1), 2)
            else:
                sub = u[:, r0:r0 + rows // 2 + 3, r0:r0 + cols // 2 + 3]
                u = _upsample2(_upsample2(sub, 1), 2)
                p = pad - 2 * r0
        return u[:, p:p + rows, p:p + cols]

    if chunk is None:
        return fields(0, K)
    best = np.full((rows, cols), -np.inf, np.float32)
    arg = np.zeros((rows, cols), np.int64)
    for k0 in range(0, K, chunk):
        u = fields(k0, min(K, k0 + chunk))
        top = np.argmax(u, axis=0)
        val = np.take_along_axis(u, top[None], axis=0)[0]
        win = val > best  # ties go to the lower colour, as np.argmax over all K does
        arg[win], best[win] = top[win] + k0, val[win]
    return arg


def _carry_flag(old: np.ndarray, new: np.ndarray, flag: np.ndarray, n_new: int) -> np.ndarray:
    """Flag on the new labels: each flagged old grain passes it to the new grain holding most of it."""
    out = np.zeros(n_new, bool)
    sel = flag[old]
    if not sel.any():
        return out
    out[majority_label(old[sel], new[sel])[1]] = True
    return out


def grain_growth_labels(shape, grain_size: float, aspect: float = 1.0, angle_deg: float = 0.0,
                        bimodal: float = 0.0, periodic: bool = False, rng=None, min_area: int = MIN_AREA,
                        size_spread: float = None, return_abnormal: bool = False, workers: int = -1):
    """Grain labels from simulated curvature-driven grain growth (threshold dynamics).

    Parameters
    ----------
    shape : (rows, cols)
    grain_size : target mean equivalent circle diameter of all grains, in cells.
    aspect : grain length over width (1 = equiaxed); ``angle_deg`` the elongation direction, from
        the X (column) axis towards the Y (row) axis.
    bimodal : area share (0 to 0.9) covered at the end by a few abnormally growing grains.
    periodic : boundaries wrap around (the map tiles seamlessly).
    rng : seed or ``numpy.random.Generator``.
    size_spread : standard deviation of the log of a per-grain growth advantage (a stand-in for
        differences in boundary energy and mobility; default 0.4). 0 gives ideal grain growth,
        larger values broaden and skew the size distribution.
    workers : threads for the FFTs (-1: all CPUs; use 1 when running several maps in parallel).

    Returns
    -------
    labels : int32 (rows, cols), values 0..n-1, each grain one 4-connected region of at least
        ``min_area`` cells (connected across the edges when ``periodic``).
    abnormal : bool (n,), only with ``return_abnormal``: the abnormal grains.

    Examples
    --------
    >>> lab = grain_growth_labels((256, 256), 20, rng=0)
    >>> int(lab.max()) + 1 > 50
    True
    """
    rows, cols = _check_shape(shape)
    _check_common(grain_size, aspect, bimodal)
    rng = np.random.default_rng(rng)
    size_spread = _SIZE_SPREAD if size_spread is None else float(size_spread)
    if not 0 <= size_spread <= 1:
        raise InputError(f"size spread {size_spread} must be in [0, 1]")
    area = rows * cols
    # start from a Voronoi structure a few times finer than the target (at least ~3 cells across)
    d0 = max(grain_size / _START_FACTOR, 3.0)
    n0 = max(4, int(round(area / (np.pi / 4 * d0**2))))
    seeds = rng.uniform(0, 1, (n0, 2)) * [rows, cols]
    field = _voronoi_assign((rows, cols), seeds, None, aspect, angle_deg, periodic)
    labels = _components(field, periodic)
    n = int(labels.max()) + 1
    abnormal = np.zeros(n, bool)
    if bimodal > 0:
        # abnormal grains end some 3-4 times the mean size; at least one
        n_ab = max(1, int(round(bimodal * area / (np.pi / 4 * (3.5 * grain_size) ** 2))))
        abnormal[rng.choice(n, size=min(n_ab, n), replace=False)] = True
    # each grain's indicator is scaled by its weight: a heavier grain wins the thresholding a little
    # further out, i.e. it carries an extra driving force
    wgt = np.exp(rng.normal(0.0, size_spread, n)) if size_spread > 0 else np.ones(n)
    start = _mean_ecd(labels)
    prev, prev_d, prev_ab = None, None, None
    for step in range(400):
        d = _mean_ecd(labels)
        if d >= grain_size or int(labels.max()) < 1:
            if prev is not None and abs(prev_d - grain_size) < abs(d - grain_size):
                labels, abnormal = prev, prev_ab  # the step before came closer to the target
            break
        prev, prev_d, prev_ab = labels, d, abnormal
        progress = np.clip(np.log(max(d, start) / start) / max(np.log(grain_size / start), 1e-6), 0, 1)
        pairs, _ = boundary_pairs(labels, periodic)
        n = int(labels.max()) + 1
        A = _neighbour_graph(pairs, n)
        # same-colour grains must not meet across a thin grain between them; a large grain keeps
        # them further apart than the kernel reaches, and counting it would need too many colours
        areas = np.bincount(labels.ravel(), minlength=n)
        thin = sparse.diags(((areas <= 3 * areas.mean()) & ~abnormal).astype(np.int8), dtype=np.int8)
        A2 = ((A + A @ thin @ A) > 0).astype(np.int8)
        col = np.empty(n, np.int64)
        nab = 0
        if abnormal.any():
            # abnormal grains use their own palette so their channels can carry the growth bonus
            ia = np.flatnonzero(abnormal)
            cab = _colour(A2[ia][:, ia], rng)
            nab = int(cab.max()) + 1
            col[ia] = cab
        inn = np.flatnonzero(~abnormal)
        cn = _colour(A2[inn][:, inn], rng) if len(inn) else np.zeros(0, np.int64)
        col[inn] = cn + nab
        K = int(col.max()) + 1
        # kernel width: a fraction of the mean grain radius (large enough that boundaries are not
        # pinned by the grid: boundary motion per step ~ sigma²/R must exceed a cell)
        R = d / 2.0
        sigma = max(_SIGMA_FRACTION * R, np.sqrt(1.6 * R), 1.2)
        u = _smooth(labels, col, wgt, K, sigma, aspect, angle_deg, periodic, workers)
        if nab:
            # the abnormal area share should track bimodal × progress (in log mean size)
            frac = abnormal[labels].mean()
            want = bimodal * progress
            # proportional control around a mild advantage; large grains keep growing by curvature
            # alone, so the bonus may also turn into a handicap
            bonus = float(np.clip(0.5 + 4.0 * (want - frac) / bimodal, -1.0, 1.6))
            u[:nab] *= np.exp(bonus)  # multiplicative: acts only where an abnormal grain is near
        newcol = np.argmax(u, axis=0)
        old = labels
        labels = _components(newcol, periodic)
        n_new = int(labels.max()) + 1
        cnt = np.bincount(labels.ravel(), minlength=n_new)
        wgt = np.bincount(labels.ravel(), weights=wgt[old].ravel(), minlength=n_new) / np.maximum(cnt, 1)
        if abnormal.any():
            abnormal = _carry_flag(old, labels, abnormal, n_new)
        else:
            abnormal = np.zeros(n_new, bool)
    # clean: merge specks (merging never splits a grain, so the abnormal flags carry over)
    old = labels
    labels = merge_specks(labels, min_area, periodic)
    labels = _components(labels, periodic)
    labels = merge_specks(labels, min_area, periodic)
    if return_abnormal:
        return labels, _carry_flag(old, labels, abnormal, int(labels.max()) + 1)
    return labels


# --------------------------------------------------------------------------------------- Voronoi
def voronoi_labels(shape, grain_size: float, size_cv: float = 0.0, aspect: float = 1.0,
                   angle_deg: float = 0.0, periodic: bool = False, rng=None, min_area: int = MIN_AREA):
    """Voronoi (``size_cv = 0``) or Laguerre tessellation labels with a target mean ECD.

    Seeds are uniformly random (Poisson). For ``size_cv > 0`` each seed gets a target radius from a
    log-normal distribution with that coefficient of variation, and Laguerre weights are adjusted
    (a few fixed-point passes) so the cells' areas follow those targets. The seed count is corrected
    once so the measured mean ECD meets ``grain_size``.

    Returns int32 labels 0..n-1 (4-connected regions, none under ``min_area`` cells).
    """
    rows, cols = _check_shape(shape)
    _check_common(grain_size, aspect, 0.0)
    if size_cv < 0:
        raise InputError("size_cv must be >= 0")
    rng = np.random.default_rng(rng)
    area = rows * cols
    # a Poisson-Voronoi cell's mean ECD is ~0.93 of the ECD of the mean area; border cells smaller
    n = max(2, int(round(area / (np.pi / 4 * (grain_size / 0.93) ** 2))))
    base = rng.uniform(0, 1, (4 * n + 64, 2))
    zs = rng.standard_normal(4 * n + 64)
    labels = None
    for attempt in range(3):
        seeds = base[:n] * [rows, cols]
        w = None
        if size_cv > 0:
            s2 = np.log1p(size_cv**2)
            r = np.exp(np.sqrt(s2) * zs[:n] - s2 / 2)  # mean 1, CV size_cv
            tgt = r**2 / np.sum(r**2) * area
            w = np.zeros(n)
            for _ in range(6):
                lab = _voronoi_assign((rows, cols), seeds, w, aspect, angle_deg, periodic)
                a = np.bincount(lab.ravel(), minlength=n)
                # grow the weight of cells that are too small (power distance in stretched units)
                w = w + (tgt - a) / np.pi
        labels = _voronoi_assign((rows, cols), seeds, w, aspect, angle_deg, periodic)
        labels = merge_specks(_components(labels, periodic), min_area, periodic)
        d = _mean_ecd(labels)
        if abs(d / grain_size - 1) < 0.04 or attempt == 2:
            break
        n = max(2, min(len(base), int(round(n * (d / grain_size) ** 2))))
    return labels


# --------------------------------------------------------------------------------------- orientations
def assign_orientations(labels: np.ndarray, texture=None, rng=None, periodic: bool = False,
                        min_deg: float = MIN_DISORIENTATION_DEG, max_rounds: int = 40) -> np.ndarray:
    """One orientation per grain, redrawn where neighbours would be closer than ``min_deg`` or Σ3.

    Grains keep the texture component they were drawn from while redrawing; after ``max_rounds``
    the remaining offenders are drawn uniformly at random (with a sharp, strong texture not every
    neighbour pair can differ by ``min_deg``). Neighbours include diagonal contacts.

    Returns quaternions (n, 4).
    """
    rng = np.random.default_rng(rng)
    n = int(labels.max()) + 1
    comps = parse_texture(texture)
    q, which = sample_components(n, comps, rng)
    pairs, _ = boundary_pairs(labels, periodic, diagonal=True)
    if len(pairs) == 0:
        return q
    for rnd in range(max_rounds + 200):
        a, b = pairs[:, 0], pairs[:, 1]
        bad = disorientation_angle(q[a], q[b]) < np.deg2rad(min_deg)
        bad |= is_sigma3(q[a], q[b], _TWIN_TOL_DEG)
        if not bad.any():
            break
        # redraw one end of each bad pair, at random, so neither side is favoured
        pick = np.where(rng.random(bad.sum()) < 0.5, a[bad], b[bad])
        pick = np.unique(pick)
        if rnd >= max_rounds:
            which[pick] = -1
        q[pick] = draw_from(which[pick], comps, rng)
    return q


# --------------------------------------------------------------------------------------- maps
def synth_grains(shape, grain_size: float, method: str = "growth", aspect: float = 1.0, angle_deg: float = 0.0,
                 bimodal: float = 0.0, size_cv: float = 0.0, texture=None, periodic: bool = False,
                 seed=None, size_spread: float = None, workers: int = -1):
    """Grain labels (rows, cols) and one orientation per grain (n, 4): what :func:`synth_map` draws."""
    rng = np.random.default_rng(seed)
    tex = parse_texture(texture)
    if method == "growth":
        labels = grain_growth_labels(shape, grain_size, aspect, angle_deg, bimodal, periodic, rng,
                                     size_spread=size_spread, workers=workers)
    elif method == "voronoi":
        labels = voronoi_labels(shape, grain_size, size_cv, aspect, angle_deg, periodic, rng)
    else:
        raise InputError(f"unknown method '{method}'; choose 'growth' or 'voronoi'")
    return labels, assign_orientations(labels, tex, rng, periodic)


def synth_map(shape, grain_size: float, method: str = "growth", aspect: float = 1.0, angle_deg: float = 0.0,
              bimodal: float = 0.0, size_cv: float = 0.0, texture=None, periodic: bool = False,
              seed=None, step: float = 1.0, size_spread: float = None, workers: int = -1) -> EBSDMap:
    """A synthetic, clean, single-phase (cubic Nickel) EBSD map with one orientation per grain.

    Parameters are those of :func:`grain_growth_labels` (``method='growth'``) or
    :func:`voronoi_labels` (``method='voronoi'``, which uses ``size_cv`` and ignores ``bimodal`` and
    ``size_spread``),
    plus a ``texture`` (see :mod:`infinityebsd.data.texture`, e.g. ``"cube:0.4"``), a ``seed`` and the
    ``step`` size (µm). Every cell is indexed.

    Examples
    --------
    >>> m = synth_map((128, 128), 15, seed=0)
    >>> m.shape
    (128, 128)
    """
    tex = parse_texture(texture)
    labels, q = synth_grains(shape, grain_size, method, aspect, angle_deg, bimodal, size_cv, tex, periodic,
                             seed, size_spread, workers)
    euler = quat_to_euler(q)[labels]
    desc = (f"synthetic {method}: grain_size={grain_size:g} aspect={aspect:g} angle={angle_deg:g} "
            f"bimodal={bimodal:g} size_cv={size_cv:g} size_spread={size_spread} texture={texture_spec(tex)} "
            f"periodic={periodic} "
            f"seed={seed}")
    m = EBSDMap.from_euler(euler, step=(step, step), phase=Phase("Nickel", 11, 225, (3.524, 3.524, 3.524)),
                           source=desc)
    return m


# --------------------------------------------------------------------------------------- corpus
_CORPUS_COMPONENTS = ("cube", "goss", "brass", "copper", "s", "rotated-cube", "fibre111", "fibre100")


def draw_corpus_params(rng) -> dict:
    """Parameters of one corpus map, drawn from the documented ranges (see the module docstring)."""
    rng = np.random.default_rng(rng)
    grain_size = float(np.exp(rng.uniform(np.log(8.0), np.log(80.0))))
    aspect = 1.0 if rng.random() < 0.4 else float(rng.uniform(1.0, 3.0))
    angle = float(rng.uniform(0.0, 180.0)) if aspect > 1 else 0.0
    bimodal = 0.0 if rng.random() < 0.7 else float(rng.uniform(0.1, 0.4))
    size_spread = float(rng.uniform(0.2, 0.8))
    if rng.random() < 0.4:
        texture = "random"
    else:
        k = int(rng.integers(1, 3))
        names = rng.choice(len(_CORPUS_COMPONENTS), size=k, replace=False)
        total = rng.uniform(0.2, 0.8)
        shares = rng.dirichlet(np.ones(k)) * total
        texture = ",".join(f"{_CORPUS_COMPONENTS[i]}:{s:.3f}:{rng.uniform(4, 12):.1f}" for i, s in zip(names, shares))
    return {"method": "growth", "grain_size": round(grain_size, 3), "aspect": round(aspect, 3),
            "angle_deg": round(angle, 2), "bimodal": round(bimodal, 3), "size_spread": round(size_spread, 3),
            "texture": texture, "periodic": False}


def map_from_params(params: dict, shape, seed, workers: int = -1) -> EBSDMap:
    """The map a parameter row describes (as :func:`draw_corpus_params` returns it)."""
    return synth_map(shape, params["grain_size"], method=params.get("method", "growth"),
                     aspect=params.get("aspect", 1.0), angle_deg=params.get("angle_deg", 0.0),
                     bimodal=params.get("bimodal", 0.0), size_cv=params.get("size_cv", 0.0),
                     texture=params.get("texture"), periodic=params.get("periodic", False), seed=seed,
                     size_spread=params.get("size_spread"), workers=workers)


def _corpus_job(args):
    path, params, shape, seed, workers = args
    m = map_from_params(params, shape, seed, workers)
    write_ctf(m, path)  # atomic
    return str(path)


def corpus_plan(count: int, size, seed: int) -> list[dict]:
    """The parameter rows of a corpus: the same for the same ``count``-prefix, ``size`` and ``seed``."""
    if count < 1:
        raise InputError("count must be at least 1")
    root = np.random.SeedSequence(seed)
    rows = []
    for i, child in enumerate(root.spawn(count)):
        p_seed, m_seed = child.spawn(2)
        params = draw_corpus_params(np.random.default_rng(p_seed))
        params.update(file=f"map_{i:05d}.ctf", index=i, seed=int(m_seed.generate_state(1)[0]),
                      rows=int(size[0]), cols=int(size[1]))
        rows.append(params)
    return rows


def write_corpus(out_dir, count: int, size=(512, 512), seed: int = 0, workers: int = 1, progress=None) -> Path:
    """Write ``count`` synthetic maps (``map_00000.ctf`` ...) and ``params.jsonl`` into ``out_dir``.

    Parameters are drawn per map with :func:`draw_corpus_params` from ``seed`` (independent of
    ``workers``), the table is written first (atomically), each CTF atomically, and maps already on
    disk are skipped, so an interrupted run resumes where it stopped. ``progress``, if given, is
    called with the number of maps finished after each one (including skipped ones at the start).

    Returns the path of the parameter table.
    """
    shape = _check_shape(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = corpus_plan(count, shape, seed)
    table = out / "params.jsonl"
    if table.exists():
        # resuming: the maps on disk must come from the same plan
        with open(table) as f:
            old = [json.loads(line) for line in f if line.strip()]
        for o, p in zip(old, plan):
            if (o.get("seed"), o.get("rows"), o.get("cols")) != (p["seed"], p["rows"], p["cols"]):
                raise InputError(f"{out} holds a corpus made with another --seed or --size; "
                                 f"use a new folder or the same options")
    atomic_write_text(table, "".join(json.dumps(p) + "\n" for p in plan))
    threads = 1 if workers > 1 else -1  # parallel processes: one FFT thread each
    todo = [(out / p["file"], p, shape, p["seed"], threads) for p in plan if not (out / p["file"]).exists()]
    done = count - len(todo)
    if progress:
        progress(done)
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            _corpus_job(job)
            done += 1
            if progress:
                progress(done)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn") if os.name == "nt" else mp.get_context("fork")
        with ctx.Pool(workers) as pool:
            for _ in pool.imap_unordered(_corpus_job, todo):
                done += 1
                if progress:
                    progress(done)
    return table

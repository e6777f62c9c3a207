"""Physics-based extension and generation (``--method growth``): no model, curvature-driven grain growth.

The cleaned input sits pinned on the canvas. The unknown cells are seeded with a Voronoi structure
some times finer than the target grains (a nucleation density), each new grain carrying a
log-normal growth advantage whose spread is chosen so that the grown sizes have the target's
coefficient of variation. Threshold dynamics (MBO, as in :mod:`infinityebsd.data.synth`) then moves
the boundaries of the unknown cells only: the input's grains take part as neighbours (their
indicator functions are smoothed like every other grain's, so their boundaries with new grains move
and they may spread a little beyond the input), but every cell inside the input is reset to its
input grain after each step. Growth stops when the new grains reach the target size (below).
Anisotropic inputs (elongated grains) grow with the same elongated kernel
the simulator uses, with the aspect ratio and direction measured from the input's grain shapes.

Orientations: input grains keep theirs (and so do the new cells of grains cut by the border); new
grains are drawn from the input's grain orientations and swapped to follow its boundary
disorientation histogram (:func:`.crystallography.orientations_for_labels`), then the paper's
post-processing runs as on the model's output.

Why a nucleation density rather than Laguerre weights at the final sizes: seeding at the target
size leaves the tessellation's straight facets and its perimeter and shape distributions (the
Voronoi reference, ``extend_voronoi``, is that with no growth at all), and a short relaxation keeps
much of them; seeding 2× finer and coarsening lets curvature flow shape every boundary. Measured with
scripts/evaluate_methods.py over start factors 1.5–3 (bench/RESULTS.md); 2 is the default.

Where the size comes from: the input's boundary edges per cell (:func:`boundary_density`, the
areal boundary length that the mean linear intercept measures), and growth stops when the cells
outside the input and its continuations reach the same density: the generated region is then as
fine as the input right up to the border, so no band of finer or coarser grains marks it (matching
the grain count instead left elongated and real inputs 8–20 % too coarse outside). The size spread
sets the growth advantages' spread; a spread measured on a few whole grains is mostly noise, so it
is shrunk towards the normal-growth value (``CV_PRIOR_GRAINS``).

Grains cut by the input border continue by construction: each gets a fixed continuation outside,
the part of the disc its chord and depth imply that lies beyond the border (see
:func:`continuation`), and the new grains grow around it; small new grains left wedged against the
fixed cells are absorbed (:func:`absorb_pockets`). Large grains grow on a 2× coarser grid, followed
by majority smoothing at full resolution.

The job is resumable: labels, per-grain advantages and the random state are written to a work
folder after every growth step (labels as memory-mapped ``.npy``, alternating between two files so a
kill while writing never leaves a half-written current state).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree

from ..data.synth import (
    _SIGMA_FRACTION, MIN_AREA, _colour, _components, _metric, _neighbour_graph, _smooth, merge_specks,
)
from ..errors import InputError
from ..grains import clean_with_grains
from ..io import EBSDMap
from ..io._grid import atomic_write_bytes
from ..metrics import METRIC_NAMES, axis_values, grain_table, miles_lantuejoul_factor
from .crystallography import _grain_pairs
from .planner import Plan, place_input


MIN_INPUT_GRAINS = 2
"""Fewest grains an input may hold for ``--method growth`` to take statistics from it."""

TIP = 1 / (2 * np.tan(np.pi / 3))
"""Least reach beyond the border of a cut grain, as a fraction of its chord: a polygonal grain whose
corner (120°, where three boundaries meet at equilibrium) crosses the border reaches 0.29 of the
chord beyond it, more than the disc model gives a short chord on a deep grain."""

LINE_DEPTH = 0.4
"""How far inward (in target mean sizes) a boundary cut by the input border is followed to find its
direction (:func:`crossing_slopes`)."""

CONTINUE_CAP = 1.5
"""Longest continuation of a grain cut by the input border, in target mean grain sizes."""

REACH = 0.25
"""How far (in target mean grain sizes) the input's grains may spread beyond the input and the
continuations of its cut grains."""

COARSE_MIN_SIZE = 8.0
"""Grains grow on a 2× coarser grid when the target mean size is at least this many coarse cells."""

POLISH_STEPS = 2
"""Rounds of 3×3 majority smoothing at full resolution after growing on the coarse grid."""

START_FACTOR = 2.0
"""New grains start this many times finer (in diameter) than the target and coarsen to it."""

CV_PRIOR_GRAINS = 20
"""Weight (in whole grains) of the normal-growth CV (and shape spread) the input's are shrunk towards."""

SHAPE_BASE_SD = 0.23
"""Spread (standard deviation of ln √(λmax/λmin) over grains) of the elongation that growth with one
kernel gives by itself: 0.21-0.23 for grain-growth maps of aspect 1.5-4, 0.17 for equiaxed ones
(measured on 240x240 maps, three seeds each)."""

SHAPE_Z = np.array([-0.55, 0.55, 1.65])
"""Kernel classes for grains of unequal elongation, drawn with equal probability: a class's kernel
aspect is the input's × exp(SHAPE_GAIN × z × spread). The thirds of a standard normal (means −1.09,
0, 1.09) shifted up by half a class: the grain network rounds grains off readily but holds long ones
back, so centred classes leave the median grain rounder than the input's. Measured on the 316L map
(bench/RESULTS.md), the one map of this kind we have."""

SHAPE_GAIN = 2.0
"""How much wider the kernels' spread is than the shapes' spread asked for: a boundary's tension
comes from the kernels of both its grains, so a grain's own kernel moves its shape about half as far."""

SHAPE_MIN_SPREAD = 0.15
"""Extra kernel spread below which all grains grow with one kernel (a grain-growth window of 30 whole
grains measuring 0.30 instead of 0.23 by chance gives 0.15)."""

# Coefficient of variation of the grown ECD against the spread (log-normal sigma) of the growth
# advantage, measured on 320x320 maps grown 16 cells (Miles-Lantuejoul-weighted, interior grains).
_CV_OF_SPREAD = np.array([[0.0, 0.345], [0.2, 0.365], [0.4, 0.40], [0.6, 0.429], [0.8, 0.452], [1.0, 0.491]])


def spread_for_cv(cv: float) -> float:
    """The growth-advantage spread that gives grown sizes this coefficient of variation (clipped)."""
    x, y = _CV_OF_SPREAD[:, 0], _CV_OF_SPREAD[:, 1]
    if not np.isfinite(cv):
        return 0.4
    if cv > y[-1]:  # beyond the table: extrapolate the last slope, bounded
        return float(min(x[-1] + (cv - y[-1]) * (x[-1] - x[-2]) / (y[-1] - y[-2]), 1.5))
    return float(np.interp(cv, y, x))


# --------------------------------------------------------------------------------------- statistics
def grain_statistics(labels: np.ndarray) -> dict:
    """Size and shape statistics of the grains of a label map, corrected for the map's edges.

    Grains touching the map edge are cut, and large grains touch it more often, so the mean and
    coefficient of variation of the ECD (cells) use the interior grains weighted by the
    Miles-Lantuejoul factor 1/((H−h−1)(W−w−1)) (h×w the grain's bounding box). ``aspect``/``angle_deg``
    come from the mean of the interior grains' normalised second-moment tensors, weighted by area
    and by the same factor:
    aspect = √(λmax/λmin), angle of the long axis from the column (X) axis towards the row (Y) axis,
    as :func:`infinityebsd.data.synth.grain_growth_labels` takes them; with under 10 whole grains, from
    all grains weighted by area (1 and 0 with under 10 grains). ``aspect_sd``: spread of the whole
    grains' own ln √(λmax/λmin) over grains (0 with under 10 whole grains).
    """
    lab = np.asarray(labels)
    H, W = lab.shape
    n = int(lab.max()) + 1
    area = np.bincount(lab.ravel(), minlength=n).astype(np.float64)
    ml_factor = miles_lantuejoul_factor(lab, n)
    border = np.zeros(n, bool)
    border[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    inner = ~border & (area > 0)
    if inner.sum() < 5:  # too few whole grains: fall back to all grains, uncorrected
        inner = area > 0
        wt = np.ones(n)
    else:
        wt = ml_factor
    wt = np.where(inner, wt, 0.0)
    ecd = 2 * np.sqrt(area / np.pi)
    mean = float(np.sum(wt * ecd) / wt.sum())
    cv = float(np.sqrt(np.sum(wt * (ecd - mean) ** 2) / wt.sum()) / mean)
    # shape tensors
    r, c = np.indices(lab.shape)
    li = lab.ravel()
    a = np.maximum(area, 1)
    mr, mc = np.bincount(li, r.ravel(), n) / a, np.bincount(li, c.ravel(), n) / a
    irr = np.bincount(li, r.ravel() ** 2.0, n) / a - mr**2 + 1 / 12
    icc = np.bincount(li, c.ravel() ** 2.0, n) / a - mc**2 + 1 / 12
    irc = np.bincount(li, (r * c).ravel().astype(np.float64), n) / a - mr * mc
    # shapes of whole grains only (a cut grain's shape says where the cut was), and enough of them
    # weighted by area and by the Miles-Lantuejoul factor: a long grain lies wholly inside the map
    # less often than a short one of the same area, so whole grains alone look too round
    k = ~border & (area >= MIN_AREA)
    whole = k.sum() >= 10
    if not whole:
        # few whole grains (a small input): all grains, weighted by area alone. The window truncates
        # cut grains, which biases long grains towards round (elongated 2.5x, a 48x48 window: 1.9x),
        # but far less than taking the grains as round
        k = area >= MIN_AREA
    if k.sum() >= 10:
        ml = area * ml_factor if whole else area
        T = np.array([[np.sum((ml * irr / a)[k]), np.sum((ml * irc / a)[k])],
                      [np.sum((ml * irc / a)[k]), np.sum((ml * icc / a)[k])]])
        vals, vecs = np.linalg.eigh(T)
        aspect = float(np.sqrt(vals[1] / max(vals[0], 1e-12)))
        er, ec = vecs[:, 1]
        angle = float(np.rad2deg(np.arctan2(er, ec)) % 180.0)
        # spread of the grains' own elongation, ln √(λmax/λmin), over whole grains by number
        # (Miles-Lantuejoul-weighted, as the size statistics)
        half = np.sqrt((irr - icc) ** 2 / 4 + irc**2)
        mid = (irr + icc) / 2
        ln_asp = 0.5 * np.log((mid + half)[k] / np.maximum(mid - half, 1e-12)[k])
        wk = ml_factor[k]
        m = np.sum(wk * ln_asp) / wk.sum()
        aspect_sd = float(np.sqrt(np.sum(wk * (ln_asp - m) ** 2) / wk.sum())) if whole else 0.0
    else:
        aspect, angle, aspect_sd = 1.0, 0.0, 0.0
    return {"mean_ecd": mean, "cv": cv, "aspect": aspect, "angle_deg": angle, "aspect_sd": aspect_sd, "n": n,
            "n_interior": int(inner.sum()), "shape_from_whole": bool(whole)}


def size_target_from_cond(cond, mean_size=None) -> tuple[float, float]:
    """(mean ECD in cells, coefficient of variation) of the conditioning tensor's size row."""
    row = np.nan_to_num(np.asarray(cond, np.float64)[METRIC_NAMES.index("size")])
    v = axis_values("size")
    if row.sum() <= 0:
        if not mean_size:
            raise InputError("the target metrics give no grain size; --method growth needs one")
        return float(mean_size), 0.4
    p = row / row.sum()
    m = float(np.sum(p * v))
    cv = float(np.sqrt(np.sum(p * (v - m) ** 2)) / m)
    return (float(mean_size) if mean_size else m), cv


# --------------------------------------------------------------------------------------- growth
def _ids(comp: np.ndarray, pinned_flat: np.ndarray, pinned_lab: np.ndarray, n_fixed: int) -> np.ndarray:
    """Grain ids for connected components: the input grain for components holding pinned cells,
    n_fixed, n_fixed+1, ... for the others (in component order, so the numbering is reproducible)."""
    m = int(comp.max()) + 1
    owner = np.full(m, -1, np.int64)
    owner[comp.ravel()[pinned_flat]] = pinned_lab
    free = owner < 0
    ids = owner.copy()
    ids[free] = n_fixed + np.arange(int(free.sum()))
    return ids[comp].astype(np.int32)


def counted_size(labels: np.ndarray, first: int = 0) -> float:
    """ECD of the mean grain area, from the number of grains per area (grains ``first``.. only).

    Grains are counted in the unbiased way of a counting frame (those touching the top row or the
    left column left out, as many cut grains as a tiling of frames would give each frame), and the
    area is the cells they cover. A count is steadier than averaging measured sizes when a map holds
    few whole grains, and it fixes the boundary density, which is what seams and borders are judged by.
    """
    lab = labels.ravel()
    area = np.bincount(lab)
    present = area > 0
    present[:first] = False
    edge = np.zeros(len(area), bool)
    edge[np.concatenate([labels[0], labels[:, 0]])] = True
    n = int((present & ~edge).sum())
    cells = int(area[first:].sum())
    if n == 0:
        return float("inf")
    return float(np.sqrt(4 * cells / (np.pi * n)))


def boundary_density(labels: np.ndarray, free: np.ndarray | None = None) -> float:
    """Boundary edges per cell: the share of 4-neighbour pairs with different labels, times 2 (a
    cell has two pairs of its own), over the pairs whose both cells are in ``free`` when given.

    The areal boundary length L_A in cell units, which the mean linear intercept (ASTM E112) is
    π/(2·L_A) of for isotropic boundaries; it is what the eye reads as fine or coarse, and what
    tells a seam: a generated region at the input's density shows no band at the border.
    """
    L = np.asarray(labels)
    dh, dv = L[:, 1:] != L[:, :-1], L[1:] != L[:-1]
    if free is None:
        return float(2 * (dh.sum() + dv.sum()) / max(dh.size + dv.size, 1))
    fh, fv = free[:, 1:] & free[:, :-1], free[1:] & free[:-1]
    pairs = int(fh.sum() + fv.sum())
    return float(2 * ((dh & fh).sum() + (dv & fv).sum()) / max(pairs, 1))


def _new_mean_ecd(labels: np.ndarray, n_fixed: int, beside_fixed: np.ndarray | None = None) -> float:
    """Mean ECD of the new grains, estimated like :func:`grain_statistics` does the input's: grains
    touching the canvas edge left out, the others weighted by the Miles-Lantuejoul factor. Grains
    with a cell in ``beside_fixed`` (the cells next to the pinned ones) are left out too: they are
    shaped by the fixed cells, and counting them would let the free grains overshoot."""
    area = np.bincount(labels.ravel())
    n = len(area)
    new = np.zeros(n, bool)
    new[n_fixed:] = area[n_fixed:] > 0
    if not new.any():
        return float("inf")
    inner = new.copy()
    inner[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = False
    if beside_fixed is not None:
        away = inner.copy()
        away[labels[beside_fixed]] = False
        if away.sum() >= 10:
            inner = away
    if inner.sum() < 3:
        return float(np.mean(2 * np.sqrt(area[new] / np.pi)))
    H, W = labels.shape
    objs = ndimage.find_objects(labels + 1, max_label=n)
    idx = np.flatnonzero(inner)
    h = np.array([objs[i][0].stop - objs[i][0].start for i in idx], np.float64)
    w = np.array([objs[i][1].stop - objs[i][1].start for i in idx], np.float64)
    wt = 1.0 / np.maximum((H - h - 1) * (W - w - 1), 1.0)
    return float(np.sum(wt * 2 * np.sqrt(area[idx] / np.pi)) / wt.sum())


def crossing_slopes(lab: np.ndarray, depth: int, min_rows: int = 3) -> np.ndarray:
    """Inward slope of each boundary that crosses row 0 of ``lab``: for the crossing between columns
    x and x+1 of row 0 (in order of x), the least-squares dx/dk of the same two grains' boundary
    followed k = 1 … ``depth``−1 rows inward (the edge of that grain pair nearest to the row
    before, within 2 cells), through its position on row 0. NaN where the boundary is followed
    through fewer than ``min_rows`` rows (it turns along the border or ends at a triple junction).
    """
    lab = np.asarray(lab, np.int64)
    g = lab[0]
    xs = np.flatnonzero(g[1:] != g[:-1])
    out = np.full(len(xs), np.nan)
    if len(xs) == 0:
        return out
    W = lab.shape[1]
    n = int(lab.max()) + 1
    key = g[xs] * n + g[xs + 1]
    x0 = xs + 0.5
    cur = x0.copy()
    alive = np.ones(len(xs), bool)
    rows = np.ones(len(xs))
    skx = np.zeros(len(xs))
    sk2 = np.zeros(len(xs))
    for k in range(1, min(depth, lab.shape[0])):
        row = lab[k]
        e = np.flatnonzero(row[1:] != row[:-1])
        if len(e) == 0:  # one grain across the whole row: every boundary has ended
            break
        code = np.sort((row[e] * n + row[e + 1]) * (W + 1) + e)  # edges of row k by grain pair, then x
        i = np.searchsorted(code, key * (W + 1) + cur - 0.5)
        best = np.full(len(xs), np.inf)
        pos = np.zeros(len(xs))
        for j in (i - 1, i):  # the nearest edge of the same pair on either side
            c = code[np.clip(j, 0, len(code) - 1)]
            same = (j >= 0) & (j < len(code)) & (c // (W + 1) == key)
            px = (c % (W + 1)) + 0.5
            d = np.where(same, np.abs(px - cur), np.inf)
            take = d < best
            best[take], pos[take] = d[take], px[take]
        alive &= best <= 2
        cur = np.where(alive, pos, cur)
        rows += alive
        skx += np.where(alive, k * (pos - x0), 0.0)
        sk2 += np.where(alive, k * k, 0.0)
        if not alive.any():
            break
    good = rows >= min_rows
    out[good] = skx[good] / sk2[good]
    return out


def _side_discs(lab: np.ndarray, cap: float, A=None, mean_size: float | None = None) -> dict:
    """For the side of ``lab`` at row 0: each cut grain's implied disc, in coordinates where grains are round.

    A grain cut by a straight line shows a chord L (its border cells on this side) and a depth t
    (its longest run inward from the border); a disc with that chord and depth has diameter
    D = t + L²/(4t), so it reaches e = L²/(4t) (at most ``cap``) beyond the line: long, shallow
    slivers (a grain cut near its edge) continue far, short, deep ones little, but never less than
    :data:`TIP` × L (a grain's corner poking out). Half of all grains cut at random lie mostly
    outside (t < L/2): their disc is wider than the chord outside.

    ``A`` (2×2) takes a step of one cell outward (first column) and one cell along the border
    (second column) to the round coordinates (:func:`~infinityebsd.data.synth._metric` times the
    side's orientation; identity for equiaxed grains). With grains elongated at a slant the two steps
    are not perpendicular there, so the disc comes back as a slanted ellipse, reaching further out at
    one end of the chord, as a slanted grain does.

    With ``mean_size`` (the target mean size, round units) the reach comes from the directions of
    the chord's two boundaries instead where they can be followed (:func:`_reach_from_lines`).

    Returns ``g`` (grain of each border cell), ``run`` (its chord: a run of border cells of one
    grain), per chord ``grain``, ``centre`` (round coordinates, origin at the first border cell on the
    border line) and ``radius``, and ``A``.
    """
    A = np.eye(2) if A is None else np.asarray(A, np.float64)
    g = lab[0]
    inside = lab == g[None, :]
    depth_in = np.where(inside.all(axis=0), lab.shape[0], np.argmin(inside, axis=0))
    # one chord per run of border cells of one grain (a concave grain can touch a side twice)
    run = np.cumsum(np.r_[True, g[1:] != g[:-1]]) - 1
    n = int(run[-1]) + 1
    p = np.arange(len(g), dtype=np.float64)
    L = np.bincount(run, minlength=n).astype(np.float64)
    centre_p = np.bincount(run, weights=p, minlength=n) / np.maximum(L, 1)
    t = np.zeros(n)
    np.maximum.at(t, run, depth_in.astype(np.float64))
    t = np.maximum(t, 1.0)
    dk, dp = A[:, 0], A[:, 1]
    u = dp / np.linalg.norm(dp)
    nrm = np.array([-u[1], u[0]])  # the border line's outward unit normal, round coordinates
    if nrm @ dk < 0:
        nrm = -nrm
    ell = L * np.linalg.norm(dp)
    t = t * abs(dk @ nrm)
    e = np.maximum(ell**2 / (4 * t), TIP * ell)
    if mean_size is not None and n > 2:
        e = _reach_from_lines(lab, t, ell, e, mean_size, abs(dk @ nrm), np.linalg.norm(dp))
    e = np.maximum(np.minimum(e, cap), 1e-6)
    radius = (e**2 + ell**2 / 4) / (2 * e)  # the circle through the chord's ends, sagitta e
    # the border line runs through the border cells' outer edges (half a cell outward)
    centre = (centre_p[:, None] * dp[None, :] + 0.5 * dk[None, :] - (radius - e)[:, None] * nrm[None, :])
    return {"g": g, "run": run, "grain": g[np.r_[0, np.flatnonzero(np.diff(run)) + 1]], "centre": centre,
            "radius": radius, "A": A}


def _reach_from_lines(lab, t, ell, e_disc, mean_size, out_scale, along_scale):
    """Reach beyond the border of each chord (depth ``t`` inside, length ``ell``, round units) from the
    directions of its two boundaries (:func:`crossing_slopes`).

    A grain is about convex, so it lies between its two boundaries' lines: where they converge
    outward it ends by their meeting point. It is also about a grain long: it reaches what a grain of
    ``mean_size`` has left beyond its depth inside. A grain poking in by a corner (boundaries
    opening outward, shallow inside) so continues about a whole grain, where a disc through its short,
    deep chord gave it a cell or two; a grain seen mostly inside continues little. Chords at the
    side's ends, or whose boundaries turn within a few rows, keep the disc's reach ``e_disc``.
    """
    depth = max(3, int(round(LINE_DEPTH * mean_size / max(out_scale, 1e-6))))
    s_in = crossing_slopes(lab, depth)
    # outward, a boundary moves by −s_in cells along the border per cell; chord j lies between
    # crossings j−1 and j
    sl = np.r_[np.nan, -s_in]
    sr = np.r_[-s_in, np.nan]
    conv = (sl - sr) * along_scale / out_scale  # closing rate in round units
    room = np.maximum(mean_size - t, 0.0)
    meet = np.where(conv > 0, ell / np.maximum(conv, 1e-9), np.inf)
    e = np.maximum(np.minimum(meet, room), TIP * ell)
    return np.where(np.isfinite(conv), e, e_disc)


def continuation(shape, box, input_labels: np.ndarray, cap: float, aspect: float = 1.0,
                 angle_deg: float = 0.0, mean_size: float | None = None) -> np.ndarray:
    """Labels (−1 elsewhere) continuing every grain cut by the input border outward.

    Each cut grain claims the cells outside the border that its implied disc covers
    (:func:`_side_discs`), also beyond the ends of its chord; where discs overlap (neighbours, and the
    corners where two sides meet) a cell goes to the disc whose centre is nearest relative to its
    radius, and the cell just outside each border cell stays with that cell's grain (a border cut
    at random almost never falls on a grain boundary). Pieces cut off from their grain are dropped.

    These cells stay with their input grain during growth (pinned like the input), so the cut grains
    continue by construction and the new grains grow around them. ``mean_size`` (the target mean
    size): each disc's reach from its grain's boundary directions (:func:`_side_discs`); None keeps
    the plain disc (the model path's thin rim).
    """
    R, C = shape
    labels = np.full((R, C), -1, np.int64)
    best = np.full((R, C), np.inf)
    r0, c0, h, w = box
    # each side as (input seen with that side at row 0, canvas cells for outside cell k = 1, 2, ...
    # along border position p)
    sides = [
        (input_labels, lambda k, p: (r0 - k, c0 + p)),
        (input_labels[::-1], lambda k, p: (r0 + h - 1 + k, c0 + p)),
        (input_labels.T, lambda k, p: (r0 + p, c0 - k)),
        (input_labels[:, ::-1].T, lambda k, p: (r0 + p, c0 + w - 1 + k)),
    ]
    M = _metric(aspect, angle_deg)
    # one cell outward and one along the border, as (row, col) steps, side by side
    steps = [((-1, 0), (0, 1)), ((1, 0), (0, 1)), ((0, -1), (1, 0)), ((0, 1), (1, 0))]
    firsts = []
    for (lab, at), (out_step, along) in zip(sides, steps):
        d = _side_discs(lab, cap, M @ np.array([out_step, along], np.float64).T,
                        mean_size=mean_size)
        A, Ainv = d["A"], np.linalg.inv(d["A"])
        for j, grain in enumerate(d["grain"]):
            c, r = d["centre"][j], d["radius"][j]
            # the disc's extent in (k, p) cell units, then the outside cells in it
            mid = Ainv @ c
            ext = r * np.linalg.norm(Ainv, axis=1)
            ks = np.arange(max(1, int(np.floor(mid[0] - ext[0]))), int(np.ceil(mid[0] + ext[0])) + 1)
            ps = np.arange(int(np.floor(mid[1] - ext[1])), int(np.ceil(mid[1] + ext[1])) + 1)
            if len(ks) == 0 or len(ps) == 0:
                continue
            k, p = np.meshgrid(ks, ps, indexing="ij")
            x = k[..., None] * A[:, 0] + p[..., None] * A[:, 1]
            q = np.sqrt(((x - c) ** 2).sum(axis=-1)) / r  # < 1 inside the disc
            rr, cc = at(k, p)
            ok = (q <= 1) & (rr >= 0) & (rr < R) & (cc >= 0) & (cc < C)
            rr, cc, q = rr[ok], cc[ok], q[ok]
            win = q < best[rr, cc]
            labels[rr[win], cc[win]] = grain
            best[rr[win], cc[win]] = q[win]
        firsts.append((at, d["g"]))
    for at, g in firsts:
        rr, cc = at(np.ones(len(g), np.int64), np.arange(len(g)))
        ok = (rr >= 0) & (rr < R) & (cc >= 0) & (cc < C)
        labels[rr[ok], cc[ok]] = g[ok]
    # drop pieces not joined to their grain inside the box
    full = labels.copy()
    full[r0:r0 + h, c0:c0 + w] = input_labels
    comp = _components(full, False)
    joined = np.zeros(int(comp.max()) + 1, bool)
    joined[np.unique(comp[r0:r0 + h, c0:c0 + w])] = True
    labels[(labels >= 0) & ~joined[comp]] = -1
    return labels


def seed_labels(fixed: np.ndarray, n_fixed: int, start_size: float, aspect: float, angle_deg: float,
                rng) -> np.ndarray:
    """Initial canvas: ``fixed`` (the input's grains and their continuations, ids 0..n_fixed−1; −1
    elsewhere) kept, the other cells a Poisson-Voronoi structure of mean ECD ``start_size`` (in the
    stretched metric of the anisotropy), numbered from ``n_fixed``."""
    R, C = fixed.shape
    labels = fixed.astype(np.int64).copy()
    pinned = fixed >= 0
    free = np.flatnonzero(~pinned.ravel())
    n0 = max(2, int(round(len(free) / (np.pi / 4 * (start_size / 0.93) ** 2))))
    seeds = rng.uniform(0, 1, (n0, 2)) * [R, C]
    # seeds falling on fixed cells are dropped (the input holds its own grains)
    on_fixed = pinned[np.minimum(seeds[:, 0].astype(int), R - 1), np.minimum(seeds[:, 1].astype(int), C - 1)]
    seeds = seeds[~on_fixed]
    if len(seeds) == 0:
        seeds = np.array([[0.5, 0.5]])
    M = _metric(aspect, angle_deg)
    tree = cKDTree(seeds @ M.T)
    fr, fc = np.divmod(free, C)
    _, k = tree.query(np.column_stack([fr + 0.5, fc + 0.5]) @ M.T, workers=-1)
    flat = labels.ravel()
    flat[free] = n_fixed + k
    comp = _components(labels, False)
    pin = np.flatnonzero(pinned.ravel())
    return _ids(comp, pin, flat[pin], n_fixed)


FIELD_CELLS = 1 << 26
"""Most smoothed-field cells (colours × canvas cells, 256 MB of float32) a step holds at once when it
needs only each cell's best colour; beyond it the colours are smoothed in groups."""

INPUT_ADVANTAGE = 1.0
"""Growth advantage of the input's grains, relative to the median of the new grains' (which rises
as the advantaged new grains win). Above 1 the input's grains push outward and crowd the border
with small grains; the continuations (:func:`continuation`) keep cut grains going instead."""


def _class_colours(A2, cls, n_cls, rng):
    """Colour each shape class's grains apart: (colour per grain, class per colour)."""
    col = np.zeros(A2.shape[0], np.int64)
    col_cls = []
    for c in range(n_cls):
        idx = np.flatnonzero(cls == c)
        if len(idx) == 0:
            continue
        sub = _colour(A2[idx][:, idx], rng)
        col[idx] = len(col_cls) + sub
        col_cls += [c] * (int(sub.max()) + 1)
    return col, np.array(col_cls, np.int64)


def growth_step(labels, pinned_flat, pinned_lab, n_fixed, wgt, aspect, angle_deg, rng, workers=-1,
                input_advantage=INPUT_ADVANTAGE, reach=None, cls=None, class_aspects=None):
    """One threshold-dynamics step on the unknown cells; returns (labels, wgt), or (labels, wgt, cls)
    when grains carry shape classes ``cls`` (grain i grows with kernel aspect class_aspects[cls[i]])."""
    d = _new_mean_ecd(labels, n_fixed)
    pairs = _grain_pairs(labels)
    n = int(labels.max()) + 1
    A = _neighbour_graph(pairs, n)
    areas = np.bincount(labels.ravel(), minlength=n)
    # distance-2 colouring through grains of ordinary size (as the simulator does): same-colour
    # grains never meet, so the components of each colour after thresholding are grains again
    thin = sparse.diags((areas <= 3 * areas.mean()).astype(np.int8), dtype=np.int8)
    A2 = ((A + A @ thin @ A) > 0).astype(np.int8)
    R = d / 2.0
    sigma = max(_SIGMA_FRACTION * R, np.sqrt(1.6 * R), 1.2)
    if cls is None:
        col = _colour(A2, rng)
        kernel = aspect
    else:
        col, col_cls = _class_colours(A2, cls, len(class_aspects), rng)
        kernel = np.asarray(class_aspects)[col_cls]
        # longer kernels keep the one kernel's width across (narrower ones pin boundaries on grid lines)
        sigma = sigma * np.maximum(1.0, np.sqrt(kernel / aspect))
    K = int(col.max()) + 1
    if reach is None and K * labels.size > FIELD_CELLS:
        # a large canvas (the model's output relaxed whole): the argmax a few colours at a time, so
        # memory holds a few smoothed fields, not K (K x 8192² float32 fields would take gigabytes)
        newcol = _smooth(labels, col, wgt, K, sigma, kernel, angle_deg, False, workers,
                         chunk=max(1, FIELD_CELLS // labels.size))
    else:
        u = _smooth(labels, col, wgt, K, sigma, kernel, angle_deg, False, workers)
        newcol = np.argmax(u, axis=0)
    flat = newcol.ravel()
    for _ in range(4):
        flat[pinned_flat] = col[pinned_lab]  # the input never changes
        comp = _components(newcol, False)
        new = _ids(comp, pinned_flat, pinned_lab, n_fixed)
        if reach is None:
            break
        # the input's grains may not spread beyond ``reach``: pinned on one side they would keep
        # growing outward for ever; such cells go to their next best colour
        bad = np.flatnonzero((new.ravel() < n_fixed) & ~reach.ravel())
        if len(bad) == 0:
            break
        uf = u.reshape(K, -1)
        uf[flat[bad], bad] = -np.inf
        flat[bad] = np.argmax(uf[:, bad], axis=0)
    n_new = int(new.max()) + 1
    cnt = np.bincount(new.ravel(), minlength=n_new)
    w = np.bincount(new.ravel(), weights=wgt[labels].ravel(), minlength=n_new) / np.maximum(cnt, 1)
    # the input's grains get the advantage typical of the grains around them now: the surviving new
    # grains are the advantaged ones, so a fixed advantage would let them push the input's grains back
    if n_new > n_fixed:
        w[:n_fixed] = input_advantage * np.median(w[n_fixed:])
    if cls is None:
        return new, w
    # a new grain is one colour's component, so it has that colour's class
    cls_new = np.zeros(n_new, np.int64)
    cls_new[new.ravel()] = col_cls[flat]
    return new, w, cls_new


def relax(labels: np.ndarray, pinned: np.ndarray, steps: int = 1, aspect: float = 1.0, angle_deg: float = 0.0,
          seed: int = 0, workers: int = -1) -> np.ndarray:
    """``steps`` threshold-dynamics steps with no growth advantage on the cells not ``pinned``: every
    free boundary moves by its curvature for one step (a kernel of 0.45 mean grain radii), so
    wavy boundaries straighten between junctions, junctions open towards 120° and grain shapes
    become those of curvature flow; the smallest grains vanish. Grains holding pinned cells keep
    those cells. Returns labels numbered 0..n−1, grains with pinned cells first."""
    lab = np.asarray(labels)
    n = int(lab.max()) + 1
    held = np.zeros(n, bool)
    held[np.unique(lab[pinned])] = True
    order = np.concatenate([np.flatnonzero(held), np.flatnonzero(~held)])
    ids = np.empty(n, np.int64)
    ids[order] = np.arange(n)
    lab = ids[lab].astype(np.int32)
    n_fixed = int(held.sum())
    if n_fixed == n:  # every grain holds pinned cells: no new grain to set the kernel by, nothing to relax
        return lab
    pinned_flat = np.flatnonzero(pinned.ravel())
    pinned_lab = lab.ravel()[pinned_flat].astype(np.int64)
    rng = np.random.default_rng(seed)
    wgt = np.ones(n)
    for _ in range(steps):
        lab, wgt = growth_step(lab, pinned_flat, pinned_lab, n_fixed, wgt, aspect, angle_deg, rng, workers)[:2]
        lab = lab.astype(np.int32)
    return lab


def _progress(d, start, target):
    return float(np.clip(np.log(max(d, start) / start) / max(np.log(target / start), 1e-6), 0, 1))


POCKET = 0.4
"""New grains touching the input (or a continuation) smaller than this (ECD, in target mean sizes)
are absorbed at the end: see :func:`absorb_pockets`."""


def absorb_pockets(labels: np.ndarray, pinned: np.ndarray, n_fixed: int, min_ecd: float) -> np.ndarray:
    """Give new grains smaller than ``min_ecd`` (ECD) that touch a pinned cell to the neighbour they
    share the longest boundary with.

    In free growth such small grains shrink and vanish; wedged between the fixed input and its fixed
    continuations they cannot, because their pinned neighbours never move, and they would line the
    input border with extra boundaries.
    """
    lab = labels.astype(np.int64)
    n = int(lab.max()) + 1
    area = np.bincount(lab.ravel(), minlength=n)
    grown = ndimage.binary_dilation(pinned) & ~pinned
    touch = np.zeros(n, bool)
    touch[np.unique(lab[grown])] = True
    small = touch & (2 * np.sqrt(area / np.pi) < min_ecd)
    small[:n_fixed] = False
    if not small.any():
        return labels
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    d = a != b
    src = np.concatenate([a[d], b[d]])
    dst = np.concatenate([b[d], a[d]])
    keep = small[src] & ~small[dst]
    key, cnt = np.unique(src[keep] * n + dst[keep], return_counts=True)
    s_, d_ = key // n, key % n
    order = np.lexsort((-cnt, s_))
    first = np.ones(len(order), bool)
    first[1:] = s_[order][1:] != s_[order][:-1]
    target = np.arange(n)
    target[s_[order][first]] = d_[order][first]
    return target[lab].astype(np.int32)


def majority_smooth(labels: np.ndarray, pinned: np.ndarray, n_fixed: int, rounds: int = 2) -> np.ndarray:
    """Rounds of 3×3 majority voting on the cells that are not pinned, then grains made 4-connected again.

    A cell takes the label found most often among its 3×3 neighbourhood when that label is more
    frequent there than its own (a discrete curvature flow of one cell): it rounds off the 2-cell
    steps that upsampling from the coarse grid leaves on every boundary, at a small part of the cost
    of a full-resolution growth step.
    """
    lab = labels.astype(np.int32)
    H, W = lab.shape
    free = ~pinned
    offs = [(i, j) for i in range(3) for j in range(3)]
    for _ in range(rounds):
        p = np.pad(lab, 1, mode="edge")
        # only cells next to a boundary can change: vote there (a fraction of the map)
        edge = np.zeros((H, W), bool)
        for i, j in offs:
            edge |= p[i:i + H, j:j + W] != lab
        r, c = np.nonzero(edge & free)
        nb = np.stack([p[r + i, c + j] for i, j in offs], axis=1)  # (cells, 9)
        count = (nb[:, :, None] == nb[:, None, :]).sum(axis=1)
        best = np.argmax(count, axis=1)
        rows = np.arange(len(r))
        change = count[rows, best] > count[:, 4]
        lab[r[change], c[change]] = nb[rows, best][change]
    comp = _components(lab, False)
    pf = np.flatnonzero(pinned.ravel())
    return _ids(comp, pf, lab.ravel()[pf].astype(np.int64), n_fixed)


# --------------------------------------------------------------------------------------- work folder
class _GrowthWork:
    """Resumable state: labels-0.npy / labels-1.npy (memory-mapped), weights-k.npy, state.json."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def exists(self):
        return (self.folder / "state.json").exists()

    def create(self, state):
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.state = state

    def load(self):
        self.state = json.loads((self.folder / "state.json").read_text())
        k = self.state["slot"]
        labels = np.array(np.load(self.folder / f"labels-{k}.npy", mmap_mode="r"))
        wgt = np.load(self.folder / f"weights-{k}.npy")
        return labels, wgt

    def save(self, labels, wgt, **state):
        k = 1 - self.state.get("slot", 1)  # write the slot not named by the current state.json
        mm = np.lib.format.open_memmap(self.folder / f"labels-{k}.npy", "w+", np.int32, labels.shape)
        mm[:] = labels
        mm.flush()
        del mm
        with open(self.folder / f"weights-{k}.npy", "wb") as f:
            np.save(f, wgt)
        self.state.update(state, slot=k)
        atomic_write_bytes(self.folder / "state.json", [json.dumps(self.state).encode()])

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def grow(labels, pinned, n_fixed, wgt, target_size, aspect, angle_deg, rng, work=None, step0=0, start=None,
         progress=True, stop_after_steps=None, workers=-1, max_steps=300, log=print, reach_cells=None,
         input_advantage=INPUT_ADVANTAGE, density=None, cls=None, class_aspects=None, region=None):
    """Grow the new grains (ids >= ``n_fixed``) until their :func:`counted_size` reaches ``target_size``,
    or, with ``density`` (boundary edges per cell wanted), until the :func:`boundary_density` of
    ``region`` falls to it (measured as target_size × density / the cells' density). ``region``
    defaults to the cells not pinned; an extension passes all cells outside the input, so that the
    continuations and their boundaries with the new grains count too (left out, a 96² crop of
    20-cell grains ended 12 % coarser than the input, another 9 % finer).
    ``cls``/``class_aspects``: per-grain shape classes (:func:`growth_step`); None for one kernel.
    Returns (labels, weights, finished), weights with the classes as a second column when given.
    ``work`` (a :class:`_GrowthWork`) is saved after each step.
    """
    from tqdm.auto import tqdm

    pinned_flat = np.flatnonzero(pinned.ravel())
    pinned_lab = labels.ravel()[pinned_flat].astype(np.int64)
    reach = None
    if reach_cells is not None and n_fixed:
        reach = ndimage.distance_transform_edt(~pinned) <= reach_cells
    free = ~pinned if region is None else region

    def scale(lab):
        if density is None:
            return counted_size(lab, n_fixed)
        return target_size * density / max(boundary_density(lab, free), 1e-9)

    d = scale(labels)
    start = d if start is None else start
    bar = tqdm(total=100, initial=int(100 * _progress(d, start, target_size)), unit="%", desc="growing",
               disable=not progress)
    step, done = step0, 0
    while step < max_steps and not (work is not None and work.state.get("finished")):
        d = scale(labels)
        if d >= target_size:
            break
        if stop_after_steps is not None and done >= stop_after_steps:
            bar.close()
            return labels, _pack(wgt, cls), False
        out = growth_step(labels, pinned_flat, pinned_lab, n_fixed, wgt, aspect, angle_deg, rng, workers,
                          input_advantage, reach, cls, class_aspects)
        new, w_new = out[:2]
        step += 1
        done += 1
        d_new = scale(new)
        # overshooting: keep the state before when it lies closer to the target (decided here, and
        # saved, so that a resumed job makes the same choice)
        last = bool(d_new >= target_size)
        if not (last and abs(d - target_size) < abs(d_new - target_size)):
            labels, wgt, d = new, w_new, d_new
            if cls is not None:
                cls = out[2]
        if work is not None:
            work.save(labels, _pack(wgt, cls), step=step, rng=rng.bit_generator.state, start=start, finished=last)
        bar.update(int(100 * _progress(d, start, target_size)) - bar.n)
        bar.set_postfix(step=step, size=f"{d:.1f}/{target_size:.1f}")
        if last:
            break
    else:
        if step >= max_steps > 0:
            log(f"growth stopped after {max_steps} steps at mean size {d:.1f} of {target_size:.1f} cells")
    bar.update(100 - bar.n)
    bar.close()
    return labels, _pack(wgt, cls), True


def _pack(wgt, cls):
    return wgt if cls is None else np.column_stack([wgt, cls])


# --------------------------------------------------------------------------------------- the method
def _key(**kw) -> str:
    return hashlib.sha1(json.dumps(kw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def input_targets(in_labels: np.ndarray) -> dict:
    """What the growth takes from a cleaned input's grains: ``size`` (ECD of the mean grain area, from
    the grain count), ``target`` (the mean ECD that size and the spread give), ``cv`` (size spread,
    shrunk towards normal growth's when few whole grains were measured), ``density``
    (:func:`boundary_density`; None with under 5 whole grains), ``aspect``/``angle_deg`` (1 and 0 unless
    the grains are elongated by 15 % or more) and ``shape_spread``, the spread of the kernel aspect
    between grains that the input's spread of elongation asks for beyond what growth gives by itself
    (0 unless elongated)."""
    st = grain_statistics(in_labels)
    # a CV from a few whole grains is mostly noise (its standard error is about cv/sqrt(2n)):
    # shrink it towards the steady state of normal grain growth, weighted by the grain count
    n_in = st["n_interior"]
    cv = (n_in * st["cv"] + CV_PRIOR_GRAINS * _CV_OF_SPREAD[0, 1]) / (n_in + CV_PRIOR_GRAINS)
    # the grains per area of the input fix the size; the mean ECD follows with the spread
    size = counted_size(in_labels)
    if not np.isfinite(size) or n_in < 5:  # too few grains to count: their mean size
        size = st["mean_ecd"] * np.sqrt(1 + cv**2)
    # from cut grains (a small input) the estimate is noisier: equiaxed 96x96 windows of 24-cell
    # grains measure up to 1.21
    elongated = st["aspect"] >= (1.15 if st["shape_from_whole"] else 1.3)
    # some elongated grains are much longer than others (columnar grains of additive manufacturing):
    # growth with one kernel gives a narrow spread, so grains draw kernels of unequal aspect; the
    # measured spread is shrunk towards growth's own, like the CV
    sd2 = (n_in * st["aspect_sd"] ** 2 + CV_PRIOR_GRAINS * SHAPE_BASE_SD**2) / (n_in + CV_PRIOR_GRAINS)
    shape_spread = float(np.sqrt(max(sd2 - SHAPE_BASE_SD**2, 0.0))) if elongated else 0.0
    return {"size": size, "target": size / np.sqrt(1 + cv**2), "cv": cv, "n_interior": n_in,
            "density": boundary_density(in_labels) if n_in >= 5 else None,
            "aspect": st["aspect"] if elongated else 1.0, "angle_deg": st["angle_deg"] if elongated else 0.0,
            "shape_spread": shape_spread}


def input_continuation(shape, box, in_labels: np.ndarray, cap: float = CONTINUE_CAP) -> np.ndarray:
    """:func:`continuation` of a cleaned input placed at ``box`` on a canvas of ``shape``, with the
    cap (in target mean sizes) and shape anisotropy the growth method takes from the input."""
    t = input_targets(in_labels)
    return continuation(shape, box, np.asarray(in_labels, np.int64), cap * t["target"], t["aspect"], t["angle_deg"])


def extend_growth(input_map: EBSDMap | None, size, cond=None, place: str = "center", seed: int = 0,
                  work_dir=None, resume: bool = False, progress: bool = True, mean_size: float | None = None,
                  log=print, phase: str | None = None, stop_after_steps: int | None = None,
                  target_quat=None, target_disorientation_deg=None, workers: int = -1,
                  start_factor: float = START_FACTOR, aspect: float | None = None, angle_deg: float | None = None,
                  postprocess_map: bool = True, continue_cap: float = CONTINUE_CAP,
                  input_advantage: float = INPUT_ADVANTAGE, max_steps: int = 300, coarse: int = 2,
                  match: str = "density"):
    """Extend ``input_map`` (or generate from ``cond`` when it is None) to ``size`` cells by grain growth.

    The input is cleaned like ``clean``; its cells never change. Targets (:func:`input_targets`): the
    input's boundary density (``match="density"``, the default; ``"count"`` stops at its grain count
    per area instead), size spread, shape anisotropy, grain orientations and disorientation histogram
    (or, without an input, ``cond``'s size row and ``mean_size``, and its texture rows; grains then grow
    equiaxed unless ``aspect``/``angle_deg`` are given). ``work_dir`` holds the resumable state.
    Returns an :class:`~.extend.Result`, or None when stopped early by ``stop_after_steps`` (tests).

    ``start_factor=1, continue_cap=0, max_steps=0`` gives the classical reference: the unknown cells
    filled by a Poisson-Voronoi tessellation at the target size (:func:`extend_voronoi`).
    """
    from .crystallography import orientations_for_labels
    from .extend import postprocess
    from .result import Result

    R, C = int(size[0]), int(size[1])
    if R < 8 or C < 8:
        raise InputError(f"target size {R}x{C} is too small; use at least 8x8 cells")
    input_clean = None
    box = None
    in_labels = None
    density = None
    target_area = None
    shape_spread = 0.0
    if match not in ("density", "count"):
        raise ValueError(f"match must be 'density' or 'count', not {match!r}")
    if input_map is not None:
        h, w = input_map.shape
        if h > R or w > C:
            raise InputError(f"target size {R}x{C} is smaller than the input {h}x{w}")
        input_clean, g = clean_with_grains(input_map, phase=phase)
        in_labels = g.labels.astype(np.int64)
        n_grains = int(in_labels.max()) + 1
        if n_grains < MIN_INPUT_GRAINS:
            raise InputError(f"the cleaned input holds {n_grains} grain{'s' * (n_grains != 1)}: too few to take grain "
                             f"sizes, shapes and texture from (--method growth needs {MIN_INPUT_GRAINS}); use a "
                             "larger map, or generate from metrics")
        t = input_targets(in_labels)
        if t["n_interior"] < 5:
            log(f"the input holds {t['n_interior']} whole grains: its grain size is estimated from cut ones "
                "and may be off; a larger input gives a surer extension")
        size, target, cv = t["size"], t["target"], t["cv"]
        if match == "density":
            density = t["density"]
        if aspect is None:
            aspect, angle_deg = t["aspect"], t["angle_deg"]
            shape_spread = t["shape_spread"]
        if target_quat is None:
            target_quat = g.quat
            target_area = np.bincount(g.labels.ravel(), minlength=len(g.quat))
        if target_disorientation_deg is None:
            target_disorientation_deg = grain_table(g.labels, g.quat).disorientation_deg
        box = place_input((R, C), (h, w), place)
    elif cond is None:
        raise InputError("nothing to generate from: give an input map or target metrics")
    else:
        target, cv = size_target_from_cond(cond, mean_size)
        size = target * np.sqrt(1 + cv**2)
    aspect = 1.0 if aspect is None else float(aspect)
    angle_deg = 0.0 if angle_deg is None else float(angle_deg)
    if not np.isfinite(target) or target < 4:
        raise InputError(f"the target mean grain size is {target:.1f} cells; --method growth needs at least 4")
    spread = spread_for_cv(cv)
    start_size = max(target / start_factor, 3.0)
    key = _key(size=[R, C], place=place, seed=seed, cap=continue_cap, adv=input_advantage, target=round(target, 6),
               counted=round(size, 6), spread=round(spread, 6), match=match,
               aspect=round(aspect, 6), angle=round(angle_deg, 6), start=start_factor, coarse=coarse,
               shape=round(shape_spread, 6),
               inp=None if input_clean is None else hashlib.sha1(input_clean.euler.astype(np.float32).tobytes()).hexdigest(),
               cond=None if cond is None else hashlib.sha1(np.nan_to_num(np.asarray(cond, np.float32)).tobytes()).hexdigest())
    own_tmp = work_dir is None
    if own_tmp:
        work_dir = tempfile.mkdtemp(prefix="infinityebsd-growth-")
    work = _GrowthWork(work_dir)
    # the fixed cells: the input, and the continuations of its cut grains
    known = np.zeros((R, C), bool)
    fixed = np.full((R, C), -1, np.int64)
    if box is not None:
        r0, c0, h, w = box
        known[r0:r0 + h, c0:c0 + w] = True
        if continue_cap > 0:
            fixed = continuation((R, C), box, in_labels, continue_cap * target, aspect, angle_deg, mean_size=target)
        fixed[r0:r0 + h, c0:c0 + w] = in_labels
    pinned = fixed >= 0
    n_fixed = 0 if in_labels is None else int(in_labels.max()) + 1
    # large grains grow on a grid f times coarser (f² fewer cells per step), then majority smoothing
    # at full resolution rounds off the staircase the upsampling leaves
    f = coarse if coarse > 1 and target / coarse >= COARSE_MIN_SIZE and min(R, C) >= 16 * coarse else 1
    fixed_c = fixed[::f, ::f]
    if resume and work.exists():
        labels, wgt = work.load()
        if work.state.get("key") != key:
            raise InputError(f"{work.folder}: the saved job was started with other options or input; run "
                             "without --resume to start again")
        rng = np.random.default_rng()
        rng.bit_generator.state = work.state["rng"]
        log(f"resuming after growth step {work.state['step']}")
        cls = None
        if wgt.ndim == 2:  # weights saved with the grains' shape classes
            wgt, cls = wgt[:, 0].copy(), wgt[:, 1].astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        log(f"growth: target mean grain size {target:.1f} cells (CV {cv:.2f}, advantage spread {spread:.2f}), "
            f"aspect {aspect:.2f} at {angle_deg:.0f}°"
            + (f" (spread {shape_spread:.2f} between grains)" if shape_spread >= SHAPE_MIN_SPREAD else "")
            + (f", grown on a {f}x coarser grid" if f > 1 else ""))
        labels = seed_labels(fixed_c, n_fixed, start_size / f, aspect, angle_deg, rng)
        n = int(labels.max()) + 1
        wgt = np.ones(n)
        wgt[n_fixed:] = np.exp(rng.normal(0.0, spread, n - n_fixed)) if spread > 0 else 1.0
        cls = None
        if shape_spread >= SHAPE_MIN_SPREAD:  # new grains draw a shape class; the input's take the median's
            cls = np.full(n, len(SHAPE_Z) // 2, np.int64)
            cls[n_fixed:] = rng.integers(0, len(SHAPE_Z), n - n_fixed)
        work.create({"key": key, "phase": "grow"})
        work.save(labels, _pack(wgt, cls), step=0, rng=rng.bit_generator.state, start=None)
    class_aspects = None if cls is None else aspect * np.exp(SHAPE_GAIN * SHAPE_Z * shape_spread)
    labels = labels.astype(np.int32)
    if work.state["phase"] == "grow":
        labels, wgt, finished = grow(labels, fixed_c >= 0, n_fixed, wgt, size / f, aspect, angle_deg, rng, work=work,
                                step0=work.state["step"], start=work.state["start"], progress=progress,
                                stop_after_steps=stop_after_steps, workers=workers, log=log,
                                reach_cells=REACH * target / f, input_advantage=input_advantage, max_steps=max_steps,
                                density=None if density is None else density * f, cls=cls,
                                class_aspects=class_aspects, region=None if box is None else ~known[::f, ::f])
        if not finished:
            return None
        if f > 1:
            labels = np.repeat(np.repeat(labels, f, 0), f, 1)[:R, :C]
            labels[pinned] = fixed[pinned]
        work.save(labels, wgt, phase="polish" if f > 1 else "done", polish=0)
    if work.state["phase"] == "polish":
        labels = majority_smooth(labels, pinned, n_fixed, rounds=POLISH_STEPS)
    if box is not None:
        labels = absorb_pockets(labels, pinned, n_fixed, POCKET * target)
    labels = merge_specks(labels, MIN_AREA)
    known_euler = np.zeros((R, C, 3))
    if box is not None:
        r0, c0, h, w = box
        known_euler[r0:r0 + h, c0:c0 + w] = input_clean.euler
    euler = orientations_for_labels(labels, known, known_euler, cond=None if input_clean is not None else cond,
                                    target_quat=target_quat, target_disorientation_deg=target_disorientation_deg,
                                    seed=seed, min_neighbour_deg=10.5, target_area=target_area)
    if postprocess_map:
        euler = postprocess(euler, box, input_clean)
    ref = input_clean
    m = EBSDMap.from_euler(euler, step=ref.step if ref is not None else (1.0, 1.0),
                           phase=ref.phases[0] if ref is not None else None, source="infinityebsd growth")
    work.remove()
    if own_tmp:
        shutil.rmtree(work_dir, ignore_errors=True)
    plan = Plan(canvas=(R, C), patch=0, input_box=box, windows=[], waves=[])
    return Result(map=m, plan=plan, scale=1.0, input_box=box)


def extend_voronoi(input_map, size, **kw):
    """The Voronoi reference: the input kept, the rest a Poisson-Voronoi tessellation at the input's
    mean grain size, orientations matched like the growth method's (no growth, no continuation)."""
    return extend_growth(input_map, size, start_factor=1.0, continue_cap=0.0, max_steps=0, coarse=1, **kw)

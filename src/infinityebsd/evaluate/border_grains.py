"""Grains cut by the input crop's border: as completed in an extended map against the larger true map
(paper Figs. 29–32)."""

from __future__ import annotations

import numpy as np

from ..crystal import disorientation_angle, euler_to_quat
from ..errors import InputError
from ..grains.labels import majority_label
from .compare import compare_tables, metric_sample
from .measure import Measured

BORDER_METRICS = ("size", "perimeter", "inertia_ratio", "coordination", "disorientation")


def crossing_edges(box, shape):
    """Inner and outer cell indices (flat) of every cell edge crossing the border of ``box`` (r0, c0,
    rows, cols), on the sides where the map goes on: top, bottom, left, right."""
    r0, c0, nr, nc = box
    rows, cols = shape
    rr, cc = np.arange(r0, r0 + nr), np.arange(c0, c0 + nc)
    sides = ((np.full(nc, r0), cc, -1, 0), (np.full(nc, r0 + nr - 1), cc, 1, 0),
             (rr, np.full(nr, c0), 0, -1), (rr, np.full(nr, c0 + nc - 1), 0, 1))
    inner, outer = [], []
    for r, c, dr, dc in sides:
        if 0 <= r[0] + dr < rows and 0 <= c[0] + dc < cols:  # the box lies inside the map
            inner.append(r * cols + c)
            outer.append((r + dr) * cols + c + dc)
    if not inner:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(inner), np.concatenate(outer)


def _check_box(box, shape, what):
    r0, c0, nr, nc = box
    if nr < 1 or nc < 1 or r0 < 0 or c0 < 0 or r0 + nr > shape[0] or c0 + nc > shape[1]:
        raise InputError(f"input box {r0},{c0},{nr},{nc} does not fit the {what} ({shape[0]}x{shape[1]} cells); "
                         "give --input-box r0,c0,rows,cols inside it")


def crossing_depth(labels: np.ndarray, inner, outer, limit: int) -> np.ndarray:
    """How many cells (up to ``limit``) the grain of each ``inner`` cell goes on past its crossing
    edge, straight outward (flat indices of :func:`crossing_edges`; 1 = only the outer cell)."""
    rows, cols = labels.shape
    lab = labels.ravel()
    inner, outer = np.asarray(inner, np.int64), np.asarray(outer, np.int64)
    step = outer - inner
    r0, c0 = np.divmod(inner, cols)
    dr = np.where(np.abs(step) == cols, np.sign(step), 0)
    dc = np.where(np.abs(step) == 1, np.sign(step), 0)
    depth = np.zeros(len(inner), np.int64)
    going = np.ones(len(inner), bool)
    for j in range(1, limit + 1):
        r, c = r0 + j * dr, c0 + j * dc
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        same = np.zeros(len(inner), bool)
        same[inside] = lab[r[inside] * cols + c[inside]] == lab[inner[inside]]
        going &= same
        depth += going
    return depth


def border_grains(truth: Measured, extended: Measured, box_truth, box_extended, tol_deg: float = 5.0,
                  min_depth: int = 3) -> dict:
    """Grains cut by the input crop's border: truth against the extended map (paper Figs. 29–32).

    A *cut grain* is a truth grain that crosses the box border (some border edge has the same grain on
    both sides in the truth). It *continues* in the extended map when, on most of the border edges where
    the truth grain crosses, the extended map's cell just outside has an orientation within ``tol_deg``
    of the cell just inside (i.e. the grain holding the border cell extends outside the box with the same
    orientation). The same grains in the extended map are those holding most of each cut grain's
    inner border cells; both sets are compared with :func:`compare_tables` on ``BORDER_METRICS``.

    ``deep_continued_fraction`` is the same share over the grains that go on at least ``min_depth``
    cells past the border in the truth, judged on those crossing edges only: a grain that crosses by
    a cell or two (a boundary running along the border) is continued or not within the width of a
    boundary, so the figure tells misses of real continuations from those.
    """
    box_truth = tuple(int(x) for x in box_truth)
    box_extended = tuple(int(x) for x in box_extended)
    _check_box(box_truth, truth.shape, "true map")
    _check_box(box_extended, extended.shape, "extended map")
    if box_truth[2:] != box_extended[2:]:
        raise InputError("the input box has different sizes in the true and the extended map")
    ti, to = crossing_edges(box_truth, truth.shape)
    ei, eo = crossing_edges(box_extended, extended.shape)
    # keep the edges that exist in both maps (a box on a map edge has fewer crossings)
    rel_t = _box_rel(ti, box_truth, truth.shape)
    rel_e = _box_rel(ei, box_extended, extended.shape)
    kt = {(a, b): k for k, (a, b) in enumerate(zip(rel_t, _side(ti, to, truth.shape)))}
    pairs = [(kt[key], k) for k, key in enumerate(zip(rel_e, _side(ei, eo, extended.shape))) if key in kt]
    if not pairs:
        return {"n_cut_grains": 0, "continued_fraction": float("nan"), "edge_continued_fraction": float("nan")}
    it, ie = np.array(pairs).T
    ti, to, ei, eo = ti[it], to[it], ei[ie], eo[ie]
    lt = truth.labels.ravel()
    crosses = lt[ti] == lt[to]
    cut = np.unique(lt[ti][crosses])
    # continuation per crossing edge, judged on the extended map's cell orientations
    qe = euler_to_quat(extended.map.euler).reshape(-1, 4)
    cont = np.rad2deg(disorientation_angle(qe[ei[crosses]], qe[eo[crosses]])) < tol_deg
    grain_of_edge = lt[ti][crosses]
    _, gi = np.unique(grain_of_edge, return_inverse=True)
    frac = np.bincount(gi, cont.astype(float)) / np.bincount(gi)
    continued = frac > 0.5
    deep = crossing_depth(truth.labels, ti[crosses], to[crosses], min_depth) >= min_depth
    if deep.any():
        _, gd = np.unique(grain_of_edge[deep], return_inverse=True)
        deep_cont = np.bincount(gd, cont[deep].astype(float)) / np.bincount(gd) > 0.5
        n_deep, deep_frac = int(len(deep_cont)), float(deep_cont.mean())
    else:
        n_deep, deep_frac = 0, float("nan")
    # the same grains in the extended map: majority label over the cut grain's inner border cells
    le = extended.labels.ravel()
    inner_t = lt[ti]
    sel = np.isin(inner_t, cut)
    ext_grains = np.unique(majority_label(inner_t[sel], le[ei[sel]])[1])
    mt = np.zeros(truth.table.n, bool)
    mt[cut] = True
    me = np.zeros(extended.table.n, bool)
    me[ext_grains] = True
    dist = compare_tables(truth.table, extended.table, BORDER_METRICS, mt, me)
    samples = {name: (metric_sample(truth.table, name, mt)[0], metric_sample(extended.table, name, me)[0])
               for name in BORDER_METRICS}
    return {"n_cut_grains": int(len(cut)), "n_extended_grains": int(me.sum()),
            "continued_fraction": float(continued.mean()), "edge_continued_fraction": float(cont.mean()),
            "n_deep_cut_grains": n_deep, "deep_continued_fraction": deep_frac, "min_depth": int(min_depth),
            "tol_deg": tol_deg, "distances": dist, "samples": samples}


def _box_rel(idx, box, shape):
    r, c = np.divmod(idx, shape[1])
    return list(zip((r - box[0]).tolist(), (c - box[1]).tolist()))


def _side(inner, outer, shape):
    d = outer - inner
    return np.where(d == 1, 0, np.where(d == -1, 1, np.where(d > 0, 2, 3))).tolist()

"""Boundary measures on grain label maps: straight runs, density at an input border, continued grains.

Pure functions of integer label maps (no orientations, no cleaning), so they apply alike to a true
map, an extension by any method and a Voronoi reference:

* :func:`straight_run_share` – how much of the boundary length lies in long straight axis-aligned
  runs between the same two grains. Curvature-driven (annealed) boundaries rarely run straight along
  a grid line for a dozen cells; window seams and blocky artefacts do.
* :func:`border_density_ratio` – boundary density in a band around the input box border over the
  density in the rest of the generated region: > 1 when the extension draws extra boundaries along
  the border (grains stop there), ≈ the truth's value when it continues them.
* :func:`continued_share` – the share of the truth's grains cut by the box border that also cross it
  in the extended map (same label on both sides of most of their crossing edges).

A *boundary edge* is the edge between two 4-adjacent cells of different labels.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def _runs(mask: np.ndarray, key_a: np.ndarray, key_b: np.ndarray) -> np.ndarray:
    """Lengths of runs along axis 1 of ``mask`` where consecutive edges have the same (a, b) keys."""
    rows, n = mask.shape
    if mask.size == 0:
        return np.zeros(0, np.int64)
    # an edge starts a new run unless the previous edge on the line is a boundary between the same grains
    same = np.zeros_like(mask)
    same[:, 1:] = mask[:, 1:] & mask[:, :-1] & (key_a[:, 1:] == key_a[:, :-1]) & (key_b[:, 1:] == key_b[:, :-1])
    start = mask & ~same
    run_id = np.cumsum(start.ravel())  # ids of runs in row-major order; a run never crosses a line end
    ids = run_id[mask.ravel()]
    return np.bincount(ids)[1:] if len(ids) else np.zeros(0, np.int64)


def straight_run_share(labels: np.ndarray, min_run: int = 12) -> float:
    """Share of the boundary length (in edges) lying in straight axis-aligned runs of >= ``min_run`` edges.

    A run is a maximal sequence of consecutive collinear boundary edges along one grid line (a row
    line or a column line) that separate the same two grains: it ends where the line stops being a
    boundary or where a junction changes the grain on either side. So a tiling of 12×12 blocks has
    share 1.0 at ``min_run=12``, a tiling of 4×4 blocks 0, and a digital disc of radius 16 (whose
    flattest stretches are 11 cells) 0. NaN when the map has no boundary.
    """
    L = np.asarray(labels)
    if L.ndim != 2:
        raise InputError("labels must be a 2-D map")
    # edges between horizontal neighbours lie on column lines: runs go down the rows (transpose)
    h = (L[:, 1:] != L[:, :-1]).T
    ha, hb = L[:, :-1].T, L[:, 1:].T
    # edges between vertical neighbours lie on row lines: runs go along the columns
    v = L[1:, :] != L[:-1, :]
    va, vb = L[:-1, :], L[1:, :]
    runs = np.concatenate([_runs(h, ha, hb), _runs(v, va, vb)])
    total = runs.sum()
    if total == 0:
        return float("nan")
    return float(runs[runs >= min_run].sum() / total)


def boundary_per_cell(labels: np.ndarray) -> np.ndarray:
    """Boundary edges per cell: each boundary edge counts one half for each of its two cells."""
    L = np.asarray(labels)
    bh = (L[:, 1:] != L[:, :-1]).astype(np.float64)
    bv = (L[1:, :] != L[:-1, :]).astype(np.float64)
    d = np.zeros(L.shape)
    d[:, 1:] += bh
    d[:, :-1] += bh
    d[1:, :] += bv
    d[:-1, :] += bv
    return 0.5 * d


def _box(input_box, shape):
    r0, c0, h, w = (int(x) for x in input_box)
    if h < 1 or w < 1 or r0 < 0 or c0 < 0 or r0 + h > shape[0] or c0 + w > shape[1]:
        raise InputError(f"input box {r0},{c0},{h},{w} does not fit the {shape[0]}x{shape[1]} map")
    return r0, c0, h, w


def border_band(shape, input_box, band: int = 2) -> np.ndarray:
    """Cells within ``band`` cells of the box border line, on both sides (inside the map)."""
    r0, c0, h, w = _box(input_box, shape)
    near = np.zeros(shape, bool)
    near[max(r0 - band, 0):r0 + h + band, max(c0 - band, 0):c0 + w + band] = True
    near[r0 + band:r0 + h - band, c0 + band:c0 + w - band] = False
    return near


def border_density_ratio(labels: np.ndarray, input_box, band: int = 2) -> float:
    """Boundary density in the band of ``band`` cells on each side of the input box border, over the
    density in the rest of the region outside the box (the generated cells beyond the band).

    Compare with the same figure on the true map: a continued structure gives the truth's value
    (≈ 1, a little more if the crop cut through small grains), extra boundaries along the border raise it.
    NaN when either part is empty or has no boundary.
    """
    L = np.asarray(labels)
    r0, c0, h, w = _box(input_box, L.shape)
    d = boundary_per_cell(L)
    near = border_band(L.shape, input_box, band)
    inside = np.zeros(L.shape, bool)
    inside[r0:r0 + h, c0:c0 + w] = True
    far = ~inside & ~near
    if not near.any() or not far.any():
        return float("nan")
    de = d[far].mean()
    return float(d[near].mean() / de) if de > 0 else float("nan")


def _crossings(shape, box):
    """Flat indices (inner, outer) of the cells on both sides of every edge crossing the box border."""
    r0, c0, h, w = box
    rows, cols = shape
    inner, outer = [], []
    cc, rr = np.arange(c0, c0 + w), np.arange(r0, r0 + h)
    for ri, ro in ((r0, r0 - 1), (r0 + h - 1, r0 + h)):
        if 0 <= ro < rows:
            inner.append(ri * cols + cc)
            outer.append(ro * cols + cc)
    for ci, co in ((c0, c0 - 1), (c0 + w - 1, c0 + w)):
        if 0 <= co < cols:
            inner.append(rr * cols + ci)
            outer.append(rr * cols + co)
    if not inner:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(inner), np.concatenate(outer)


def continued_share(labels_out: np.ndarray, labels_truth: np.ndarray, input_box) -> float:
    """Share of the truth's grains cut by the box border that continue across it in ``labels_out``.

    A truth grain is *cut* when some edge crossing the box border has it on both sides. It
    *continues* when, on more than half of those crossing edges, ``labels_out`` also has one grain on
    both sides. Both maps have the same shape and the box at the same place (label-only twin of
    :func:`infinityebsd.evaluate.border_grains.border_grains`, which judges by orientation). NaN when no
    grain is cut.
    """
    Lo, Lt = np.asarray(labels_out), np.asarray(labels_truth)
    if Lo.shape != Lt.shape:
        raise InputError(f"maps of different shapes {Lo.shape} and {Lt.shape}")
    box = _box(input_box, Lt.shape)
    ci, co = _crossings(Lt.shape, box)
    lt, lo = Lt.ravel(), Lo.ravel()
    crosses = lt[ci] == lt[co]
    if not crosses.any():
        return float("nan")
    g = lt[ci][crosses]
    cont = (lo[ci] == lo[co])[crosses]
    _, gi = np.unique(g, return_inverse=True)
    frac = np.bincount(gi, cont.astype(np.float64)) / np.bincount(gi)
    return float(np.mean(frac > 0.5))

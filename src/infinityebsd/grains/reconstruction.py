"""Grain reconstruction and the paper's pre-processing (its section 3.1.1).

Grains are the connected components of the 4-neighbour cell graph whose edges join indexed cells of
the same phase with a cubic disorientation below the threshold (MTEX's ``calcGrains`` rule). Cleaning
then removes grains below a minimum area, fills their cells and the non-indexed cells from the
nearest surviving grain, merges Σ3 twins into their parent, and gives every cell its grain's mean
orientation, which yields the twin-free, one-orientation-per-grain maps the model learns from.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from skimage.measure import label as cc_label

from ..crystal import (
    BRANDON_SIGMA3_DEG, disorientation_angle, euler_to_quat, is_sigma3, mean_orientation, quat_to_euler,
    to_fundamental_zone,
)
from ..errors import InputError
from ..io.ebsdmap import EBSDMap
from .labels import boundary_pairs, fill_nearest, neighbour_pairs


@dataclass
class Grains:
    """Reconstructed grains: ``labels`` (rows, cols) with −1 for unassigned cells, ``n`` grains with
    mean orientations ``quat`` (n, 4) and areas ``area`` (n,) in cells."""

    labels: np.ndarray
    n: int
    quat: np.ndarray
    area: np.ndarray


def _components(n_nodes: int, a: np.ndarray, b: np.ndarray):
    g = sparse.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_nodes, n_nodes))
    return connected_components(g, directed=False)


def reconstruct(m: EBSDMap, threshold_deg: float = 10.0, mean: bool = True, quat_cells=None) -> Grains:
    """Grains of a single-phase cubic map, by disorientation threshold over 4-neighbours.

    Non-indexed cells get label −1. Each grain's orientation is its symmetry-aware mean
    (``mean=False`` skips it and leaves ``quat`` empty, for callers that only need the labels).
    ``quat_cells`` may pass the cells' quaternions when the caller already has them.
    """
    m.check_cubic("grain reconstruction")
    rows, cols = m.shape
    q = (euler_to_quat(m.euler) if quat_cells is None else quat_cells).reshape(-1, 4)
    pid = m.phase_id.ravel()
    ids = np.arange(rows * cols).reshape(rows, cols)
    a, b = neighbour_pairs(ids)
    ok = (pid[a] > 0) & (pid[a] == pid[b])
    a, b = a[ok], b[ok]
    close = disorientation_angle(q[a], q[b]) < np.deg2rad(threshold_deg)
    _, comp = _components(rows * cols, a[close], b[close])
    indexed = pid > 0
    # compact numbering of the components that hold indexed cells, in raster order of first cell
    uniq, first = np.unique(comp[indexed], return_index=True)
    order = np.argsort(first)
    remap = np.full(comp.max() + 1, -1, dtype=np.int64)
    remap[uniq[order]] = np.arange(len(uniq))
    labels = np.where(indexed, remap[comp], -1)
    n = len(uniq)
    sel = labels >= 0
    quat = mean_orientation(q[sel], labels[sel], n) if mean else np.zeros((0, 4))
    area = np.bincount(labels[sel], minlength=n)
    return Grains(labels=labels.reshape(rows, cols).astype(np.int32), n=n, quat=quat, area=area)


def _relabel_connected(labels: np.ndarray):
    """Split labels into 4-connected pieces; returns (new_labels, old_label_of_each_piece)."""
    pieces = cc_label(labels + 1, connectivity=1, background=0) - 1
    n = int(pieces.max()) + 1
    parent = np.zeros(n, dtype=np.int64)
    parent[pieces.ravel()] = labels.ravel()
    return pieces.astype(np.int32), parent


def _merge(labels, quat, area, merge_pair_mask_fn):
    """Merge clusters of adjacent grains whose pair passes ``merge_pair_mask_fn(qa, qb)``; the largest
    member of each cluster gives its orientation to the whole cluster."""
    n = len(area)
    pa, pb = boundary_pairs(labels)[0].T
    join = merge_pair_mask_fn(quat[pa], quat[pb]) if len(pa) else np.zeros(0, bool)
    if not join.any():
        return labels, quat, area
    nc, cluster = _components(n, pa[join], pb[join])
    # parent: the member of largest area (ties to the lower label)
    order = np.lexsort((np.arange(n), -area))
    parent = np.full(nc, -1)
    for_cluster = cluster[order]
    first = np.unique(for_cluster, return_index=True)[1]
    parent[for_cluster[first]] = order[first]
    new_quat = quat[parent]
    new_area = np.bincount(cluster, weights=area, minlength=nc).astype(np.int64)
    return cluster[labels].astype(np.int32), new_quat, new_area


def _merge_closest_first(labels, quat, area, thr_rad):
    """Join adjacent grains closer than ``thr_rad``, closest pair first, updating the joined grain's
    mean orientation after each join (mean linkage). Unlike joining all close pairs at once, a chain
    of small steps (a boundary blurred over several cells) does not collapse into one grain."""
    n = len(area)
    pa, pb = boundary_pairs(labels)[0].T
    if len(pa) == 0:
        return labels, quat, area
    d = disorientation_angle(quat[pa], quat[pb])
    close = d < thr_rad
    if not close.any():
        return labels, quat, area
    q = quat.copy()
    w = area.astype(np.float64).copy()
    nbrs = [set() for _ in range(n)]
    for i, j in zip(pa.tolist(), pb.tolist()):
        nbrs[i].add(j)
        nbrs[j].add(i)
    heap = [(float(dd), int(i), int(j)) for dd, i, j in zip(d[close], pa[close], pb[close])]
    heapq.heapify(heap)
    parent = np.arange(n)
    alive = np.ones(n, bool)
    while heap:  # one iteration per join: a loop over grains, not cells
        dd, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]) or j not in nbrs[i]:
            continue
        cur = float(disorientation_angle(q[i], q[j]))
        if abs(cur - dd) > 1e-9:  # stale entry: the pair moved since it was queued
            if cur < thr_rad:
                heapq.heappush(heap, (cur, i, j))
            continue
        if w[j] > w[i]:
            i, j = j, i
        qj = to_fundamental_zone(q[j][None], q[i][None])[0]
        m = w[i] * q[i] + w[j] * qj
        q[i] = m / np.linalg.norm(m)
        w[i] += w[j]
        alive[j] = False
        parent[j] = i
        nbrs[i] |= nbrs[j]
        nbrs[i].discard(i)
        nbrs[i].discard(j)
        for k in nbrs[j]:
            nbrs[k].discard(j)
            if k != i:
                nbrs[k].add(i)
        nbrs[j] = set()
        ks = np.fromiter(nbrs[i], dtype=np.int64)
        if len(ks):
            dk = disorientation_angle(q[i][None], q[ks])
            for k, v in zip(ks.tolist(), dk.tolist()):
                if v < thr_rad:
                    heapq.heappush(heap, (v, min(i, k), max(i, k)))
    root = parent.copy()
    while True:  # resolve chains of joins to their final grain
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    keep = np.flatnonzero(alive)
    new_id = np.full(n, -1)
    new_id[keep] = np.arange(len(keep))
    lab = new_id[root][labels]
    return lab.astype(np.int32), q[keep], np.bincount(lab.ravel(), minlength=len(keep))


def clean_with_grains(m: EBSDMap, threshold_deg: float = 10.0, min_area: int = 10,
                      merge_twins: bool = True, twin_tol_deg: float = BRANDON_SIGMA3_DEG,
                      phase: str | None = None, segment_deg: float | None = None) -> tuple[EBSDMap, Grains]:
    """The paper's pre-processing; returns the cleaned map and its grains (see :func:`clean`).

    ``segment_deg`` (default: ``threshold_deg``) is the neighbour threshold of the first segmentation.
    A smaller value suits maps whose boundaries are blurred over a few cells (decoded by a network):
    the blurred cells then form slivers below ``min_area``, which are refilled from both sides, and
    pieces of one grain are joined again by the mean-orientation merge at ``threshold_deg``.
    """
    m = m.select_phase(phase)
    q_cells = euler_to_quat(m.euler).reshape(-1, 4)
    g = reconstruct(m, threshold_deg if segment_deg is None else segment_deg, mean=False, quat_cells=q_cells)
    if g.n == 0 or (g.area >= min_area).sum() == 0:
        raise InputError(f"{m.source or 'map'}: no grain of at least {min_area} cells; the map is empty "
                         "or too noisy (lower --min-area?)")
    keep = g.area >= min_area
    labels = np.where(g.labels >= 0, np.where(keep[np.maximum(g.labels, 0)], g.labels, -1), -1)
    contributes = (labels >= 0).ravel()  # only cells of surviving grains define mean orientations
    for _ in range(10):
        labels = fill_nearest(labels)
        labels, _ = _relabel_connected(labels)
        area = np.bincount(labels.ravel())
        small = area < min_area
        if not small.any() or small.all():
            break
        labels = np.where(small[labels], -1, labels)
    n = int(labels.max()) + 1
    lab = labels.ravel()
    use = contributes.copy()
    has = np.bincount(lab[use], minlength=n) > 0
    use |= ~has[lab]  # a piece made only of filled cells averages what it holds
    quat = mean_orientation(q_cells[use], lab[use], n)
    area = np.bincount(lab, minlength=n)
    thr = np.deg2rad(threshold_deg)
    # adjacent grains whose means ended up closer than the threshold are one grain
    # Repeat until nothing changes, so that cleaning a cleaned map finds the same grains again
    # (a merged cluster takes its parent's orientation, which can relate it to another neighbour).
    for _ in range(20):
        n_before = len(area)
        labels, quat, area = _merge_closest_first(labels, quat, area, thr)
        if merge_twins:
            labels, quat, area = _merge(labels, quat, area, lambda qa, qb: is_sigma3(qa, qb, twin_tol_deg))
        if len(area) == n_before:
            break
    euler = quat_to_euler(quat)[labels]
    out = m.copy(euler=euler, phase_id=np.ones(m.shape, dtype=np.int32), channels={},
                 header={k: v for k, v in m.header.items() if k in ("Prj", "Author", "AcqE1", "AcqE2", "AcqE3")})
    return out, Grains(labels=labels.astype(np.int32), n=len(area), quat=quat, area=area)


def clean(m: EBSDMap, threshold_deg: float = 10.0, min_area: int = 10, merge_twins: bool = True,
          twin_tol_deg: float = BRANDON_SIGMA3_DEG, phase: str | None = None) -> EBSDMap:
    """The paper's pre-processing of a raw map (section 3.1.1).

    1. grains by a ``threshold_deg`` disorientation over 4-neighbours;
    2. grains smaller than ``min_area`` cells removed; their cells and the non-indexed cells filled
       from the nearest surviving grain;
    3. adjacent grains whose mean orientations are closer than the threshold joined, then Σ3 twins
       (within ``twin_tol_deg`` of 60°⟨111⟩, Brandon by default) merged into the largest member,
       whose orientation they take (``merge_twins=False`` keeps them);
    4. every cell given its grain's mean orientation; all cells indexed.

    ``phase`` picks one phase of a multiphase map (by name); it must be cubic m-3m.
    """
    return clean_with_grains(m, threshold_deg, min_area, merge_twins, twin_tol_deg, phase)[0]

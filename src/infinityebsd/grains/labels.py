"""Operations on integer label maps that every layer above needs: which labels touch, filling unlabelled
cells, and picking the best member of each group.

Labels are integers; negative labels mean "no grain" and never form a pair.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def neighbour_pairs(labels: np.ndarray, periodic: bool = False, diagonal: bool = False):
    """``(a, b)``: the labels of every pair of neighbouring cells, flat, right neighbours first, then
    the ones below (then the two diagonals, down-right and down-left, with ``diagonal=True``).

    With ``periodic`` the map wraps around, so every cell has each neighbour.
    """
    L = np.asarray(labels)
    rows, cols = L.shape
    shifts = ((0, 1), (1, 0)) + (((1, 1), (1, -1)) if diagonal else ())
    a_parts, b_parts = [], []
    for dr, dc in shifts:
        if periodic:
            a, b = L, np.roll(L, (-dr, -dc), axis=(0, 1))
        else:  # cell (r, c) against (r + dr, c + dc), both inside the map
            a = L[:rows - dr, max(0, -dc):cols - max(0, dc)]
            b = L[dr:, max(0, dc):cols - max(0, -dc)]
        a_parts.append(a.ravel())
        b_parts.append(b.ravel())
    return np.concatenate(a_parts), np.concatenate(b_parts)


def unique_pairs(a: np.ndarray, b: np.ndarray):
    """Distinct pairs among neighbour labels ``(a, b)`` (from :func:`neighbour_pairs`) whose labels
    differ and are both >= 0: ``(pairs, counts)``, pairs (k, 2) int64 with the lower label first, sorted,
    and how many neighbour relations (cell edges) each pair has."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    keep = (a != b) & (a >= 0) & (b >= 0)
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    if len(lo) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    n = int(hi.max()) + 1
    key, counts = np.unique(lo * n + hi, return_counts=True)
    return np.stack([key // n, key % n], axis=1), counts.astype(np.int64)


def boundary_pairs(labels: np.ndarray, periodic: bool = False, diagonal: bool = False):
    """Pairs of different labels that touch, with the number of cell edges they share (see
    :func:`neighbour_pairs` and :func:`unique_pairs`)."""
    return unique_pairs(*neighbour_pairs(labels, periodic, diagonal))


def fill_nearest(labels: np.ndarray) -> np.ndarray:
    """Give every cell with a negative label the label of its nearest labelled cell (Euclidean).

    Needs at least one labelled cell when any is missing.
    """
    holes = labels < 0
    if not holes.any():
        return labels
    _, (ri, ci) = ndimage.distance_transform_edt(holes, return_indices=True)
    return labels[ri, ci]


def best_per_group(group: np.ndarray, score: np.ndarray):
    """``(groups, index)``: each distinct group (ascending) and the index of its highest-scoring member;
    among equal scores the earliest member wins."""
    group = np.asarray(group)
    order = np.lexsort((-np.asarray(score), group))  # lexsort is stable: ties keep input order
    g = group[order]
    first = np.ones(len(order), bool)
    first[1:] = g[1:] != g[:-1]
    return g[first], order[first]


def majority_label(group: np.ndarray, value: np.ndarray):
    """For each group, the value (>= 0) it holds most often: ``(groups, values, counts)``, groups
    ascending; a tie goes to the lower value."""
    group = np.asarray(group, np.int64)
    value = np.asarray(value, np.int64)
    if len(group) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    n = int(value.max()) + 1
    key, counts = np.unique(group * n + value, return_counts=True)
    groups, idx = best_per_group(key // n, counts)
    return groups, (key % n)[idx], counts[idx]

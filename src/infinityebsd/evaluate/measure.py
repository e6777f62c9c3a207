"""Measuring a map for evaluation, and the cuts of a measured map or table that serve as references.

:func:`measure` cleans a map like ``infinityebsd clean`` and keeps its grain labels, so the spatial
checks (homogeneity, seams, border grains) work on the same grains as the distances rather than
reconstructing them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..grains import clean_with_grains, reconstruct
from ..grains.labels import fill_nearest
from ..metrics import GrainTable, grain_table


@dataclass
class Measured:
    """A map after cleaning, with its grains: ``labels`` (rows, cols) 0..n−1, ``quat`` (n, 4), ``table``."""

    map: object
    labels: np.ndarray
    quat: np.ndarray
    table: GrainTable

    @property
    def shape(self):
        return self.labels.shape


def measure(m, clean: bool = True, threshold_deg: float = 10.0, **clean_options) -> Measured:
    """Clean ``m`` (unless ``clean=False``) and tabulate its grains, keeping the labels.

    Without cleaning, non-indexed cells are filled from the nearest grain so every cell has a label.
    """
    if clean:
        cm, g = clean_with_grains(m, threshold_deg=threshold_deg, **clean_options)
        labels = g.labels
    else:
        cm = m.select_phase(clean_options.get("phase"))
        g = reconstruct(cm, threshold_deg)
        if (g.labels < 0).all():
            raise InputError(f"{m.source or 'map'}: no indexed cell; nothing to measure")
        labels = fill_nearest(g.labels)
    return Measured(cm, labels.astype(np.int32), np.asarray(g.quat, np.float64),
                    grain_table(labels, g.quat, cm.step))


def sub_table(labels: np.ndarray, quat: np.ndarray, box, step=(1.0, 1.0)) -> GrainTable:
    """Grain table of the crop ``box = (r0, c0, rows, cols)`` of a labelled map (grains renumbered)."""
    r0, c0, nr, nc = (int(x) for x in box)
    lab = labels[r0:r0 + nr, c0:c0 + nc]
    uniq, inv = np.unique(lab, return_inverse=True)
    return grain_table(inv.reshape(lab.shape).astype(np.int32), quat[uniq], step)


def halves(shape) -> list[tuple[int, int, int, int]]:
    """Two disjoint halves of a map, cut across its longer side."""
    rows, cols = shape
    if cols >= rows:
        h = cols // 2
        return [(0, 0, rows, h), (0, h, rows, cols - h)]
    h = rows // 2
    return [(0, 0, h, cols), (h, 0, rows - h, cols)]


def half_tables(meas: Measured) -> tuple[GrainTable, GrainTable]:
    """The grain tables of a measured map's two :func:`halves` (the real-vs-real reference)."""
    a, b = (sub_table(meas.labels, meas.quat, box, meas.table.step) for box in halves(meas.shape))
    return a, b


def split_table(table: GrainTable, rng) -> tuple[GrainTable, GrainTable]:
    """Two random halves of a table's grains (the real-vs-real reference when there is no map)."""
    rng = np.random.default_rng(rng)
    pick = rng.random(table.n) < 0.5
    out = []
    for sel in (pick, ~pick):
        idx = np.flatnonzero(sel)
        new = -np.ones(table.n, np.int64)
        new[idx] = np.arange(len(idx))
        keep = sel[table.pairs[:, 0]] & sel[table.pairs[:, 1]] if len(table.pairs) else np.zeros(0, bool)
        out.append(GrainTable(
            shape=table.shape, area=table.area[idx], size=table.size[idx], perimeter=table.perimeter[idx],
            inertia_ratio=table.inertia_ratio[idx], coordination=table.coordination[idx],
            euler_deg=table.euler_deg[idx], border=table.border[idx], pairs=new[table.pairs[keep]],
            disorientation_deg=table.disorientation_deg[keep], length=table.length[keep], step=table.step,
            quat=None if table.quat is None else table.quat[idx]))
    return out[0], out[1]

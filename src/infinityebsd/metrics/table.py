"""Per-grain metrics, exactly as defined for the conditioning (the paper's section 3.1.2).

* ``size``: equivalent circle diameter 2·√(area/π), area in cells.
* ``perimeter``: number of unit cell edges on the grain's outline, counting edges against other grains,
  against non-indexed cells and against the map border.
* ``inertia_ratio``: λmax/λmin of the 2×2 second-moment tensor of the grain's area (cell centres plus
  each cell's own 1/12 moment), so a 64×16 rectangle gives exactly 16 and a square 1.
* ``coordination``: number of distinct grains sharing at least one cell edge.
* ``disorientation``: per pair of adjacent grains, the cubic disorientation between their mean
  orientations (degrees), with the pair's shared boundary length in cell edges.
* ``phi1``, ``Phi``, ``phi2``: the grain's mean orientation in Bunge degrees, taken as the symmetry
  equivalent with Φ ≤ 90° and φ2 < 90° (MTEX's cubic Euler region) of smallest Φ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..crystal import CUBIC_SYMMETRY, disorientation_angle, euler_to_quat, qmul, quat_to_euler
from ..errors import InputError
from ..grains import clean_with_grains, reconstruct
from ..grains.labels import neighbour_pairs, unique_pairs

METRIC_NAMES = ("size", "perimeter", "inertia_ratio", "coordination", "disorientation", "phi1", "Phi", "phi2")


@dataclass
class GrainTable:
    """Per-grain and per-boundary metrics of one map (see the module docstring for definitions)."""

    shape: tuple[int, int]
    area: np.ndarray
    size: np.ndarray
    perimeter: np.ndarray
    inertia_ratio: np.ndarray
    coordination: np.ndarray
    euler_deg: np.ndarray
    border: np.ndarray
    pairs: np.ndarray
    disorientation_deg: np.ndarray
    length: np.ndarray
    step: tuple[float, float] = (1.0, 1.0)
    quat: np.ndarray = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.area)

    def values(self, name: str, exclude_border: bool = False) -> np.ndarray:
        """Values of one of :data:`METRIC_NAMES` (border grains, and pairs touching them, dropped on request)."""
        if name == "disorientation":
            v = self.disorientation_deg
            if exclude_border and len(v):
                v = v[~(self.border[self.pairs[:, 0]] | self.border[self.pairs[:, 1]])]
            return v
        if name in ("phi1", "Phi", "phi2"):
            v = self.euler_deg[:, ("phi1", "Phi", "phi2").index(name)]
        else:
            v = getattr(self, name)
        return v[~self.border] if exclude_border else v


def euler_region_deg(quat: np.ndarray) -> np.ndarray:
    """Bunge angles (degrees) of the cubic equivalent with Φ ≤ 90°, φ2 < 90° and the smallest Φ."""
    quat = np.asarray(quat, dtype=np.float64).reshape(-1, 4)
    if len(quat) == 0:
        return np.zeros((0, 3))
    eq = qmul(quat[:, None, :], CUBIC_SYMMETRY[None, :, :])  # (n, 24, 4)
    e = np.rad2deg(quat_to_euler(eq))
    ok = (e[..., 1] <= 90 + 1e-6) & (e[..., 2] < 90 - 1e-9)
    score = np.where(ok, e[..., 1], np.inf)
    k = score.argmin(axis=1)
    return e[np.arange(len(quat)), k]


def grain_table(labels: np.ndarray, quat: np.ndarray, step=(1.0, 1.0)) -> GrainTable:
    """Metrics of the grains in ``labels`` (rows, cols; grains 0..n−1, −1 = no grain) with mean
    orientations ``quat`` (n, 4)."""
    labels = np.asarray(labels)
    rows, cols = labels.shape
    quat = np.asarray(quat, dtype=np.float64).reshape(-1, 4)
    n = len(quat)
    lab = labels.ravel()
    valid = lab >= 0
    area = np.bincount(lab[valid], minlength=n).astype(np.int64)

    # Outline edges: between different labels, and along the map border.
    a, b = neighbour_pairs(labels)
    diff = a != b
    edge_owner = np.concatenate([a[diff], b[diff], labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1]])
    perimeter = np.bincount(edge_owner[edge_owner >= 0], minlength=n).astype(np.int64)
    border = np.zeros(n, dtype=bool)
    edge_cells = np.concatenate([labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1]])
    border[edge_cells[edge_cells >= 0]] = True

    # Second moments from sums, plus 1/12 per cell for the cell's own extent.
    r, c = np.divmod(np.arange(rows * cols), cols)
    r, c, lv = r[valid].astype(np.float64), c[valid].astype(np.float64), lab[valid]
    w = np.maximum(area, 1)
    sr, sc = np.bincount(lv, r, n), np.bincount(lv, c, n)
    mr, mc = sr / w, sc / w
    irr = np.bincount(lv, r * r, n) - w * mr * mr + area / 12.0
    icc = np.bincount(lv, c * c, n) - w * mc * mc + area / 12.0
    irc = np.bincount(lv, r * c, n) - w * mr * mc
    half_tr = (irr + icc) / 2
    disc = np.sqrt(np.maximum(((irr - icc) / 2) ** 2 + irc**2, 0.0))
    lmax, lmin = half_tr + disc, half_tr - disc
    inertia_ratio = np.where(area > 0, lmax / np.maximum(lmin, 1e-12), np.nan)

    pairs, length = unique_pairs(a, b)
    coordination = np.bincount(pairs.ravel(), minlength=n).astype(np.int64)
    dis = np.rad2deg(disorientation_angle(quat[pairs[:, 0]], quat[pairs[:, 1]])) if len(pairs) else np.zeros(0)

    return GrainTable(
        shape=(rows, cols), area=area, size=2 * np.sqrt(area / np.pi), perimeter=perimeter,
        inertia_ratio=inertia_ratio, coordination=coordination, euler_deg=euler_region_deg(quat),
        border=border, pairs=pairs, disorientation_deg=dis, length=length.astype(np.int64),
        step=tuple(step), quat=quat,
    )


def compute_metrics(m, threshold_deg: float = 10.0) -> GrainTable:
    """Grain metrics of a map as it is (no cleaning): grains by disorientation threshold.

    Non-indexed cells belong to no grain. For the paper's figures, clean the map first
    (:func:`infinityebsd.grains.clean`), as :func:`metrics_of` does.
    """
    g = reconstruct(m, threshold_deg)
    return grain_table(g.labels, g.quat, m.step)


def metrics_of(m, clean: bool = True, phase: str | None = None, **clean_options) -> GrainTable:
    """Clean ``m`` like ``infinityebsd clean`` (unless ``clean=False``) and tabulate its grains."""
    if not clean:
        return compute_metrics(m.select_phase(phase), clean_options.get("threshold_deg", 10.0))
    cm, g = clean_with_grains(m, phase=phase, **clean_options)
    return grain_table(g.labels, g.quat, cm.step)


def metrics_document(table: GrainTable, dists: dict) -> dict:
    """The JSON document of ``infinityebsd metrics --json`` (plain lists, ready for ``json.dumps``)."""
    lst = lambda a: np.asarray(a).tolist()  # noqa: E731
    return {
        "shape": list(table.shape), "step": list(table.step), "n_grains": int(table.n),
        "grains": {
            "area": lst(table.area), "size": lst(table.size), "perimeter": lst(table.perimeter),
            "inertia_ratio": lst(table.inertia_ratio), "coordination": lst(table.coordination),
            "euler": lst(table.euler_deg), "border": lst(table.border),
        },
        "boundaries": {"pairs": lst(table.pairs), "disorientation": lst(table.disorientation_deg),
                       "length": lst(table.length)},
        "distributions": {k: {"edges": lst(e), "density": lst(d)} for k, (e, d) in dists.items()},
    }


def read_metrics_json(path) -> GrainTable:
    """The :class:`GrainTable` back from a file holding :func:`metrics_document` (what
    ``infinityebsd metrics --json`` writes); ``distributions`` are not needed."""
    try:
        with open(path) as f:
            doc = json.load(f)
        g, b = doc["grains"], doc["boundaries"]
        euler = np.asarray(g["euler"], np.float64).reshape(-1, 3)
        pairs = np.asarray(b["pairs"], np.int64).reshape(-1, 2)
        return GrainTable(
            shape=tuple(doc.get("shape", (0, 0))), area=np.asarray(g["area"], np.int64),
            size=np.asarray(g["size"], np.float64), perimeter=np.asarray(g["perimeter"], np.int64),
            inertia_ratio=np.asarray(g["inertia_ratio"], np.float64),
            coordination=np.asarray(g["coordination"], np.int64), euler_deg=euler,
            border=np.asarray(g.get("border", [False] * len(euler)), bool), pairs=pairs,
            disorientation_deg=np.asarray(b["disorientation"], np.float64),
            length=np.asarray(b.get("length", [1] * len(pairs)), np.int64),
            step=tuple(doc.get("step", (1.0, 1.0))), quat=euler_to_quat(np.deg2rad(euler)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a metrics JSON of `infinityebsd metrics --json` ({exc!s}); "
                         "write one with that command") from None

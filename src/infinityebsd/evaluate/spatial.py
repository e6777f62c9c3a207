"""Spatial checks of a (generated) map: measured grains, crop homogeneity, window seams and border grains.

* :func:`measure` cleans a map like ``infinityebsd clean`` and keeps its grain labels, so the other
  checks work on grains rather than re-reconstructing them.
* :func:`homogeneity`: the map cut into k×k non-overlapping crops (paper Figs. 19–24); per bin, the
  minimum and maximum crop probability against the whole map's distribution.
* :func:`seam_statistics`: grain-boundary density in bands along the window seams of a generation plan
  against the density elsewhere, and how often the cell edges *on* the seam lines are boundaries.
* :func:`border_grains`: the grains cut by the input crop's border, as completed in an extended map and
  as they are in the larger true map (paper Figs. 29–32).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..crystal import disorientation_angle, euler_to_quat
from ..errors import InputError
from ..metrics import GrainTable, grain_table
from .compare import ALL_METRICS, bin_probabilities, common_edges, compare_tables, l2_distance, metric_sample


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
    from ..grains import clean_with_grains, reconstruct

    if clean:
        cm, g = clean_with_grains(m, threshold_deg=threshold_deg, **clean_options)
        labels, quat = g.labels, g.quat
    else:
        cm = m.select_phase(clean_options.get("phase"))
        g = reconstruct(cm, threshold_deg)
        labels, quat = g.labels, g.quat
        if (labels < 0).any():
            if (labels < 0).all():
                raise InputError(f"{m.source or 'map'}: no indexed cell; nothing to measure")
            from scipy import ndimage

            idx = ndimage.distance_transform_edt(labels < 0, return_distances=False, return_indices=True)
            labels = labels[tuple(idx)]
    return Measured(cm, labels.astype(np.int32), np.asarray(quat, np.float64),
                    grain_table(labels, quat, cm.step))


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


def table_from_metrics_json(path) -> GrainTable:
    """A :class:`GrainTable` from the JSON of ``infinityebsd metrics --json`` (issue 2 schema)."""
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


# --------------------------------------------------------------------------------------- homogeneity
def crop_boxes(shape, crops: int = 16) -> list[tuple[int, int, int, int]]:
    """k×k non-overlapping crops covering the map (k = √crops; remainder cells go to the last row/column)."""
    k = int(round(np.sqrt(crops)))
    if k * k != crops or k < 1:
        raise InputError(f"--crops {crops} must be a square number (4, 9, 16, ...)")
    rows, cols = shape
    if rows < 2 * k or cols < 2 * k:
        raise InputError(f"map {rows}x{cols} is too small for {crops} crops; use fewer --crops")
    re = np.linspace(0, rows, k + 1).astype(int)
    ce = np.linspace(0, cols, k + 1).astype(int)
    return [(re[i], ce[j], re[i + 1] - re[i], ce[j + 1] - ce[j]) for i in range(k) for j in range(k)]


def homogeneity(meas: Measured, crops: int = 16, names=ALL_METRICS, edges=None) -> dict:
    """Per-bin spread of the crops' distributions around the whole map's (paper Figs. 20–24).

    Returns ``{metric: {"edges", "whole", "min", "max", "spread"}}``: bin probabilities of the whole map,
    the per-bin min and max over the crops, and ``spread`` = mean over crops of the L2 distance between
    a crop and the whole map (the one-number spread figure). ``edges`` (``{metric: edges}``) fixes the
    bins, e.g. to those of a target so the two maps' envelopes can be compared bin by bin.
    """
    tables = [sub_table(meas.labels, meas.quat, b, meas.table.step) for b in crop_boxes(meas.shape, crops)]
    out = {}
    for name in names:
        whole, ww = metric_sample(meas.table, name)
        e = edges[name] if edges is not None else common_edges(whole, whole, name)
        pw = bin_probabilities(whole, e, ww)
        pc = np.array([bin_probabilities(*_with_edges(metric_sample(t, name), e)) for t in tables])
        out[name] = {"edges": e, "whole": pw, "min": pc.min(axis=0), "max": pc.max(axis=0), "mean": pc.mean(axis=0),
                     "spread": float(np.mean([l2_distance(p, pw) for p in pc]))}
    return out


def _with_edges(sample, edges):
    v, w = sample
    return v, edges, w


def compare_homogeneity(gen: dict, target: dict) -> dict:
    """Summary of two :func:`homogeneity` results computed on the same bins.

    Per metric: both spreads, their ratio (generated over target; ≤ 1 means the generated map is at
    least as homogeneous as the target), and ``inside_target_envelope``: the share of the generated crops' mean
    distribution (by probability, so empty tail bins do not count) in bins where it lies within the
    target's crop min–max envelope. Crops against crops, because cutting biases a crop's distribution
    (cut grains look smaller and have fewer neighbours), so a whole map need not sit inside its own
    crops' envelope.
    """
    out = {}
    for name, g in gen.items():
        t = target[name]
        inside = (g["mean"] >= t["min"] - 1e-12) & (g["mean"] <= t["max"] + 1e-12)
        out[name] = {"spread_generated": g["spread"], "spread_target": t["spread"],
                     "spread_ratio": g["spread"] / t["spread"] if t["spread"] > 0 else float("nan"),
                     "inside_target_envelope": float(np.sum(g["mean"] * inside) / max(np.sum(g["mean"]), 1e-300))}
    return out


# --------------------------------------------------------------------------------------- seams
def read_plan(path) -> dict:
    """A generation plan JSON (``canvas``, ``input_box``, ``patch``, ``windows``, ``waves``)."""
    try:
        with open(path) as f:
            plan = json.load(f)
        plan["canvas"] = [int(x) for x in plan["canvas"]]
        plan["patch"] = int(plan["patch"])
        plan["windows"] = [[int(a), int(b)] for a, b in plan["windows"]]
        plan["input_box"] = None if plan.get("input_box") is None else [int(x) for x in plan["input_box"]]
        return plan
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a generation plan ({exc!s}); expected keys canvas, patch, windows") from None


def plan_beside(map_path) -> str | None:
    """``<map>.plan.json`` beside a map file, if there is one (``a.ctf.plan.json`` or ``a.plan.json``)."""
    for p in (f"{map_path}.plan.json", os.path.splitext(map_path)[0] + ".plan.json"):
        if os.path.exists(p):
            return p
    return None


def seam_lines(plan: dict) -> tuple[list, list]:
    """Seam segments of a plan: window edges inside the canvas, minus the parts inside the input box.

    Returns ``(horizontal, vertical)``: ``(line, start, stop)`` where a horizontal seam lies between rows
    ``line−1`` and ``line`` over columns ``start..stop−1`` (vertical: between columns, over rows).
    """
    rows, cols = plan["canvas"]
    P = plan["patch"]
    box = plan.get("input_box")
    hor, ver = set(), set()
    for r0, c0 in plan["windows"]:
        ca, cb = max(c0, 0), min(c0 + P, cols)
        ra, rb = max(r0, 0), min(r0 + P, rows)
        for line in (r0, r0 + P):
            if 0 < line < rows and ca < cb:
                hor.add((line, ca, cb))
        for line in (c0, c0 + P):
            if 0 < line < cols and ra < rb:
                ver.add((line, ra, rb))

    def outside(segs, horizontal):
        if box is None:
            return sorted(segs)
        br, bc, bnr, bnc = box
        lo_l, hi_l = (br, br + bnr) if horizontal else (bc, bc + bnc)  # lines strictly inside the box
        lo_s, hi_s = (bc, bc + bnc) if horizontal else (br, br + bnr)
        out = []
        for line, a, b in segs:
            if not lo_l < line < hi_l:
                out.append((line, a, b))
                continue
            if a < lo_s:  # keep the pieces outside the box span
                out.append((line, a, min(b, lo_s)))
            if b > hi_s:
                out.append((line, max(a, hi_s), b))
        return sorted(out)

    return outside(hor, True), outside(ver, False)


def _boundary_edges(labels):
    """Boolean arrays of grain-boundary edges: horizontal neighbours (rows, cols−1), vertical (rows−1, cols)."""
    return labels[:, 1:] != labels[:, :-1], labels[1:, :] != labels[:-1, :]


def seam_statistics(labels: np.ndarray, plan: dict, band: int = 2) -> dict:
    """Grain-boundary density near the plan's seams against elsewhere, and boundaries on the seam lines.

    ``density_*`` is boundary cell edges per cell (each edge shared by its two cells): inside the band
    of ``band`` cells on each side of every seam, and over the rest of the map. ``ratio`` = band over
    elsewhere; ≈ 1 when the windows join without artefacts, > 1 when grains stop at the seams.

    Straightness: ``on_seam_fraction`` is the share of the cell edges lying *on* the seam lines that are
    grain boundaries, ``control_fraction`` the same on all other grid lines parallel to them (the map's
    plain chance of a boundary on a line), and ``straightness_ratio`` their ratio; a straight boundary
    running along a seam gives on-seam ≈ 1. ``mean_run_seam``/``mean_run_control``: mean length (cells) of
    unbroken boundary runs along those lines.
    """
    rows, cols = labels.shape
    if tuple(plan["canvas"]) != (rows, cols):
        raise InputError(f"plan canvas {plan['canvas']} does not match the map's {rows}x{cols} cells; "
                         "pass the plan written with this map")
    hor, ver = seam_lines(plan)
    bh, bv = _boundary_edges(labels)
    per_cell = np.zeros((rows, cols))
    per_cell[:, 1:] += bh
    per_cell[:, :-1] += bh
    per_cell[1:, :] += bv
    per_cell[:-1, :] += bv
    per_cell *= 0.5
    near = np.zeros((rows, cols), bool)
    on_h = np.zeros((rows - 1, cols), bool)   # vertical-neighbour edges lying on horizontal seams
    on_v = np.zeros((rows, cols - 1), bool)
    for line, a, b in hor:
        near[max(line - band, 0):line + band, a:b] = True
        on_h[line - 1, a:b] = True
    for line, a, b in ver:
        near[a:b, max(line - band, 0):line + band] = True
        on_v[a:b, line - 1] = True
    out = {"n_seams": len(hor) + len(ver), "band": band}
    if not near.any() or near.all():
        return {**out, "density_seam": float("nan"), "density_elsewhere": float("nan"), "ratio": float("nan"),
                "on_seam_fraction": float("nan"), "control_fraction": float("nan"),
                "straightness_ratio": float("nan"), "mean_run_seam": float("nan"), "mean_run_control": float("nan")}
    ds, de = per_cell[near].mean(), per_cell[~near].mean()
    # control lines: all grid lines of the same orientation that carry no seam anywhere
    ctrl_h = np.zeros_like(on_h)
    ctrl_h[~on_h.any(axis=1)] = True
    ctrl_v = np.zeros_like(on_v)
    ctrl_v[:, ~on_v.any(axis=0)] = True
    on = np.concatenate([bv[on_h], bh[on_v]])
    ctrl = np.concatenate([bv[ctrl_h], bh[ctrl_v]])
    fs = float(on.mean()) if on.size else float("nan")
    fc = float(ctrl.mean()) if ctrl.size else float("nan")
    out.update(density_seam=float(ds), density_elsewhere=float(de), ratio=float(ds / de) if de > 0 else float("nan"),
               on_seam_fraction=fs, control_fraction=fc,
               straightness_ratio=fs / fc if fc > 0 else float("nan"),
               mean_run_seam=_mean_run(bv, on_h, bh, on_v), mean_run_control=_mean_run(bv, ctrl_h, bh, ctrl_v))
    return out


def _mean_run(bv, sel_h, bh, sel_v) -> float:
    """Mean length of unbroken runs of boundary edges along the selected lines."""
    runs = []
    for b, sel in ((bv, sel_h), (bh.T, sel_v.T)):  # lines run along axis 1 after the transpose
        x = (b & sel).astype(np.int8)
        pad = np.pad(x, ((0, 0), (1, 1)))
        d = np.diff(pad, axis=1)
        starts, stops = np.nonzero(d == 1), np.nonzero(d == -1)
        runs.append(stops[1] - starts[1])
    runs = np.concatenate(runs)
    return float(runs.mean()) if runs.size else 0.0


# --------------------------------------------------------------------------------------- border grains
BORDER_METRICS = ("size", "perimeter", "inertia_ratio", "coordination", "disorientation")


def _crossing_edges(box, shape):
    """Inner and outer cell indices (flat) of every cell edge crossing the box border, inside the map."""
    r0, c0, nr, nc = box
    rows, cols = shape
    inner, outer = [], []
    cc = np.arange(c0, c0 + nc)
    rr = np.arange(r0, r0 + nr)
    for r_in, r_out in ((r0, r0 - 1), (r0 + nr - 1, r0 + nr)):
        if 0 <= r_out < rows:
            inner.append(r_in * cols + cc)
            outer.append(r_out * cols + cc)
    for c_in, c_out in ((c0, c0 - 1), (c0 + nc - 1, c0 + nc)):
        if 0 <= c_out < cols:
            inner.append(rr * cols + c_in)
            outer.append(rr * cols + c_out)
    if not inner:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(inner), np.concatenate(outer)


def _check_box(box, shape, what):
    r0, c0, nr, nc = box
    if nr < 1 or nc < 1 or r0 < 0 or c0 < 0 or r0 + nr > shape[0] or c0 + nc > shape[1]:
        raise InputError(f"input box {r0},{c0},{nr},{nc} does not fit the {what} ({shape[0]}x{shape[1]} cells); "
                         "give --input-box r0,c0,rows,cols inside it")


def border_grains(truth: Measured, extended: Measured, box_truth, box_extended, tol_deg: float = 5.0) -> dict:
    """Grains cut by the input crop's border: truth against the extended map (paper Figs. 29–32).

    A *cut grain* is a truth grain that crosses the box border (some border edge has the same grain on
    both sides in the truth). It *continues* in the extended map when, on most of the border edges where
    the truth grain crosses, the extended map's cell just outside has an orientation within ``tol_deg``
    of the cell just inside (i.e. the grain holding the border cell extends outside the box with the same
    orientation). The same grains in the extended map are those holding most of each cut grain's
    inner border cells; both sets are compared with :func:`compare_tables` on ``BORDER_METRICS``.
    """
    box_truth = tuple(int(x) for x in box_truth)
    box_extended = tuple(int(x) for x in box_extended)
    _check_box(box_truth, truth.shape, "true map")
    _check_box(box_extended, extended.shape, "extended map")
    if box_truth[2:] != box_extended[2:]:
        raise InputError("the input box has different sizes in the true and the extended map")
    ti, to = _crossing_edges(box_truth, truth.shape)
    ei, eo = _crossing_edges(box_extended, extended.shape)
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
    # the same grains in the extended map: majority label over the cut grain's inner border cells
    le = extended.labels.ravel()
    inner_t = lt[ti]
    sel = np.isin(inner_t, cut)
    key = inner_t[sel].astype(np.int64) * (extended.table.n + 1) + le[ei[sel]]
    k, cnt = np.unique(key, return_counts=True)
    gt, ge = k // (extended.table.n + 1), k % (extended.table.n + 1)
    order = np.lexsort((-cnt, gt))
    first = np.ones(len(order), bool)
    first[1:] = gt[order][1:] != gt[order][:-1]
    ext_grains = np.unique(ge[order][first])
    mt = np.zeros(truth.table.n, bool)
    mt[cut] = True
    me = np.zeros(extended.table.n, bool)
    me[ext_grains] = True
    dist = compare_tables(truth.table, extended.table, BORDER_METRICS, mt, me)
    samples = {name: (metric_sample(truth.table, name, mt)[0], metric_sample(extended.table, name, me)[0])
               for name in BORDER_METRICS}
    return {"n_cut_grains": int(len(cut)), "n_extended_grains": int(me.sum()),
            "continued_fraction": float(continued.mean()), "edge_continued_fraction": float(cont.mean()),
            "tol_deg": tol_deg, "distances": dist, "samples": samples}


def _box_rel(idx, box, shape):
    r, c = np.divmod(idx, shape[1])
    return list(zip((r - box[0]).tolist(), (c - box[1]).tolist()))


def _side(inner, outer, shape):
    d = outer - inner
    return np.where(d == 1, 0, np.where(d == -1, 1, np.where(d > 0, 2, 3))).tolist()

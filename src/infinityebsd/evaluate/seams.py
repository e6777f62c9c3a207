"""Window seams of a generated map: the generation plan, where its seams lie, and what grains do there.

:func:`seam_statistics` sets the grain-boundary density in bands along the seams of a generation plan
against the density elsewhere, and counts how often the cell edges *on* the seam lines are boundaries
(a straight boundary along a seam is the signature of windows that did not see each other).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import InputError
from ..pipeline.planner import Plan


def as_plan(plan) -> Plan | None:
    """A :class:`Plan` from a Plan or from its JSON dictionary (``json.loads(plan.to_json())``)."""
    if plan is None or isinstance(plan, Plan):
        return plan
    return Plan.from_json(json.dumps(plan))


def read_plan(path) -> Plan:
    """The :class:`~infinityebsd.pipeline.planner.Plan` in a generation plan JSON (what ``generate`` and
    ``extend`` write beside a map as ``<map>.plan.json``)."""
    try:
        with open(path) as f:
            return Plan.from_json(f.read())
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a generation plan ({exc!s}); expected keys canvas, patch, windows, "
                         "waves") from None


def plan_beside(map_path) -> str | None:
    """``<map>.plan.json`` beside a map file, if there is one (``a.ctf.plan.json`` or ``a.plan.json``)."""
    for p in (f"{map_path}.plan.json", os.path.splitext(map_path)[0] + ".plan.json"):
        if os.path.exists(p):
            return p
    return None


def seam_lines(plan: Plan) -> tuple[list, list]:
    """Seam segments of a plan: window edges inside the canvas, minus the parts inside the input box.

    Returns ``(horizontal, vertical)``: ``(line, start, stop)`` where a horizontal seam lies between rows
    ``line−1`` and ``line`` over columns ``start..stop−1`` (vertical: between columns, over rows).
    """
    rows, cols = plan.canvas
    Pr, Pc = plan.window_shape
    box = plan.input_box
    hor, ver = set(), set()
    for r0, c0 in plan.windows:
        ca, cb = max(c0, 0), min(c0 + Pc, cols)
        ra, rb = max(r0, 0), min(r0 + Pr, rows)
        for line in (r0, r0 + Pr):
            if 0 < line < rows and ca < cb:
                hor.add((line, ca, cb))
        for line in (c0, c0 + Pc):
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


def seam_statistics(labels: np.ndarray, plan: Plan, band: int = 2) -> dict:
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
    if tuple(plan.canvas) != (rows, cols):
        raise InputError(f"plan canvas {list(plan.canvas)} does not match the map's {rows}x{cols} cells; "
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

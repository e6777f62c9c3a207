"""The extension planner: which windows to generate, and in which waves.

The input (if any) sits on a canvas of the target size. Windows of the model's patch size cover the
canvas on a grid of stride ``patch·(1 − overlap)`` (the last row and column of windows flush with the
canvas edge, so any size works). Generation proceeds in *waves*: a window is ready when enough of it
is already known; the windows of one wave have pairwise disjoint footprints-to-be-written, and no
window's unknown cells fall inside another window of the same wave, so the windows of a wave do not
see each other's output and can be denoised together in one batch with the same result as one after
another. Every canvas cell outside the input is generated exactly once: by the first window that
covers it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError


def _origins(length: int, patch: int, stride: int) -> list[int]:
    if length <= patch:
        return [0]
    out = list(range(0, length - patch, stride))
    out.append(length - patch)
    return sorted(set(out))


@dataclass
class Plan:
    """A generation plan.

    Attributes
    ----------
    canvas : (rows, cols) of the map to generate.
    patch : window size in cells.
    input_box : (row0, col0, rows, cols) of the input on the canvas, or None.
    windows : list of (row0, col0) window origins.
    waves : list of lists of window indices, in generation order.
    """

    canvas: tuple[int, int]
    patch: int
    input_box: tuple[int, int, int, int] | None
    windows: list = field(default_factory=list)
    waves: list = field(default_factory=list)

    def to_json(self) -> str:
        d = asdict(self)
        d["windows"] = [list(map(int, w)) for w in self.windows]
        d["waves"] = [list(map(int, w)) for w in self.waves]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        box = tuple(d["input_box"]) if d.get("input_box") else None
        return cls(canvas=tuple(d["canvas"]), patch=int(d["patch"]), input_box=box,
                   windows=[tuple(w) for w in d["windows"]], waves=[list(w) for w in d["waves"]])

    @property
    def n_windows(self) -> int:
        return sum(len(w) for w in self.waves)

    def known_mask(self) -> np.ndarray:
        """Cells known before generation (the input box)."""
        k = np.zeros(self.canvas, dtype=bool)
        if self.input_box is not None:
            r0, c0, h, w = self.input_box
            k[r0:r0 + h, c0:c0 + w] = True
        return k

    def seam_lines(self):
        """Window edges inside the canvas, as ((r0, c0), (r1, c1)) segments (for pictures)."""
        P = self.patch
        segs = []
        for i in (i for wave in self.waves for i in wave):
            r, c = self.windows[i]
            segs += [((r, c), (r, c + P)), ((r + P, c), (r + P, c + P)), ((r, c), (r + P, c)),
                     ((r, c + P), (r + P, c + P))]
        return segs


def place_input(canvas, input_shape, place: str = "center") -> tuple[int, int, int, int]:
    """Box (row0, col0, rows, cols) of the input on the canvas for ``place`` in
    center | top-left | top | top-right | left | right | bottom-left | bottom | bottom-right."""
    R, C = canvas
    h, w = input_shape
    if h > R or w > C:
        raise InputError(f"target size {R}x{C} is smaller than the input {h}x{w}; give a size at least "
                         "as large as the input")
    rows = {"top": 0, "center": (R - h) // 2, "bottom": R - h}
    cols = {"left": 0, "center": (C - w) // 2, "right": C - w}
    names = {"center": ("center", "center"), "top-left": ("top", "left"), "top": ("top", "center"),
             "top-right": ("top", "right"), "left": ("center", "left"), "right": ("center", "right"),
             "bottom-left": ("bottom", "left"), "bottom": ("bottom", "center"),
             "bottom-right": ("bottom", "right")}
    if place not in names:
        raise InputError(f"unknown --place '{place}'; use one of: {', '.join(names)}")
    vr, vc = names[place]
    return (rows[vr], cols[vc], h, w)


def make_plan(canvas, patch: int, input_box=None, overlap: float = 0.5, min_known: float = 0.25) -> Plan:
    """Plan the windows and waves that fill ``canvas`` around ``input_box`` (or from nothing).

    Parameters
    ----------
    canvas : (rows, cols), each at least ``patch``.
    patch : window size.
    input_box : (row0, col0, rows, cols) of the known input, or None to generate from metrics alone
        (the first wave is then one full-mask window at the centre).
    overlap : fraction of a window shared with its grid neighbour (0.5 = half a patch).
    min_known : fraction of a window that must be known before it is generated; when no window
        reaches it, the best-known windows go first.
    """
    R, C = (int(canvas[0]), int(canvas[1]))
    if R < patch or C < patch:
        raise InputError(f"canvas {R}x{C} is smaller than the model's {patch}-cell window")
    if not 0.0 <= overlap < 1.0:
        raise InputError("--overlap must be in [0, 1)")
    stride = max(8, int(round(patch * (1 - overlap))))
    windows = [(r, c) for r in _origins(R, patch, stride) for c in _origins(C, patch, stride)]
    known = np.zeros((R, C), dtype=bool)
    waves: list[list[int]] = []
    if input_box is not None:
        r0, c0, h, w = input_box
        known[r0:r0 + h, c0:c0 + w] = True
    else:
        cr, cc = (R - patch) / 2, (C - patch) / 2
        first = int(np.argmin([(r - cr) ** 2 + (c - cc) ** 2 for r, c in windows]))
        waves.append([first])
        r, c = windows[first]
        known[r:r + patch, c:c + patch] = True
    todo = [i for i in range(len(windows)) if not _window(known, windows[i], patch).all()]
    while todo:
        frac = np.array([_window(known, windows[i], patch).mean() for i in todo])
        # most new cells first among the windows with enough context: fewer windows in all
        order = np.argsort(frac, kind="stable")
        threshold = min(min_known, frac.max()) if frac.max() > 0 else None
        if threshold is None:
            raise InputError("internal planner error: windows cannot reach the known region")
        wave, writes, foot = [], np.zeros((R, C), bool), np.zeros((R, C), bool)
        for k in order:
            if frac[k] < threshold or frac[k] <= 0:
                continue
            i = todo[k]
            r, c = windows[i]
            sl = (slice(r, r + patch), slice(c, c + patch))
            unknown = ~known[sl]
            # no overlap with what this wave writes, and this window's writes touch no wave window
            if (writes[sl] & True).any() or (foot[sl] & unknown).any():
                continue
            wave.append(i)
            foot[sl] = True
            writes[sl] |= unknown
        for i in wave:
            r, c = windows[i]
            known[r:r + patch, c:c + patch] = True
        waves.append(wave)
        todo = [i for i in todo if not _window(known, windows[i], patch).all()]
    used = sorted({i for w in waves for i in w})
    remap = {old: new for new, old in enumerate(used)}
    return Plan(canvas=(R, C), patch=patch, input_box=tuple(input_box) if input_box is not None else None,
                windows=[windows[i] for i in used], waves=[[remap[i] for i in w] for w in waves])


def _window(a, origin, patch):
    r, c = origin
    return a[r:r + patch, c:c + patch]


def describe(plan: Plan) -> str:
    """A few lines a user can read: canvas, windows, waves and their sizes."""
    sizes = [len(w) for w in plan.waves]
    return (f"canvas {plan.canvas[0]}x{plan.canvas[1]}, window {plan.patch}, input box {plan.input_box}; "
            f"{plan.n_windows} windows in {len(plan.waves)} waves (largest wave {max(sizes)})")

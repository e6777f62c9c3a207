"""Morphology-first extension and generation: grain network first, orientations after.

The steps, each a function:

1. :func:`prepare` — clean the input, choose the grid scale so grains fall in the model's range
   (the model records its range as *median* grain ECD in cells), the input's labels at that scale;
2. :func:`make_plan` (the planner) — windows in waves on the grain-scale canvas;
3. :func:`run_waves` — each wave's windows are denoised in batches (:class:`~.morph.MorphPipeline`)
   and segmented at once (:func:`~.morph.segment_window`): the known grains flood outward and new
   grains get new labels, so the next wave sees a label canvas; the canvas is saved after every wave
   (memory-mapped ``.npy`` + ``state.json``), so a killed job resumes where it stopped;
4. :func:`finish` — back to the output grid (boundaries follow the generated field's valleys, not
   the staircase of a nearest-neighbour resize), the input pasted back exactly, a thin rim beyond
   the input border given back to the cut grains where the network drew a boundary right at the
   border (:data:`CONTINUATION_RIM`), grains under the minimum area merged into a neighbour, the
   size and shape rules held against the target (a shape read off a few input grains shrunk towards
   equiaxed growth's: :func:`equiaxed_shape_prior`; input grains carried on too far cut:
   :func:`cut_continued`; excess giants, specks and elongated grains cut or merged), and
   orientations: input grains keep theirs (a grain cut by
   the input border keeps its orientation across it), new grains get theirs from matching
   crystallography against the target's grain orientations and boundary disorientations.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import label as cc_label
from skimage.segmentation import watershed
from tqdm.auto import tqdm

from ..data.representation import boundary_cells, distance_field
from ..data.shape_reference import assume_equiaxed
from ..errors import InputError
from ..io import EBSDMap
from ..metrics import METRIC_NAMES, axis_values, conditioning_tensor, edge_corrected_distributions, grain_table
from .crystallography import orientations_for_labels
from .growth import CV_PRIOR_GRAINS, counted_size, input_continuation, input_targets, relax
from .morph import segment_window
from .planner import Plan, make_plan, place_input
from .result import Result, clean_input
from .work import Work

CONTINUATION_RIM = 0.25
"""Depth limit, in the input's mean grain sizes, of the cells beyond the input border that stay with
the input's cut grains after segmentation (see :func:`finish`); 0 leaves the network's boundaries
there as drawn. Measured in bench/RESULTS.md (continued 85 -> 100 %, W1 unchanged)."""

RELAX_STEPS = 2
"""Threshold-dynamics steps of curvature flow on the generated grains after segmentation
(:func:`.growth.relax`; see :func:`finish`); 0 keeps the network's boundaries as segmented."""

SPLIT_RELAX = 2
"""Steps of curvature flow on the grains :func:`split_to_count` cut and their neighbours of at least
the median area (everything else held): a straight cut meets the grain's sides at right angles in two
T-junctions, which the eye picks out at once; two steps bend it and open the junctions towards 120°.
Small neighbours are held: free, three steps removed them (4×, three seeds: size W1/σ 0.27 against
0.16 with no steps; held, 0.16)."""

SPLIT_TAIL = True
"""Apply :func:`split_tail` to the network's segmented grains on the grain-scale grid."""

SPLIT_TO_COUNT = True
"""Apply :func:`split_to_count` on the output grid after the relaxation and the count rule (before
the second tail split)."""

SPLIT_TAIL_AFTER = True
"""Apply :func:`split_tail` once more on the output grid after the relaxation and the count rule,
which widen the size distribution again (4× extension: largest grain 1.67 → 1.22× the truth's,
coordination W1/σ 0.19 → 0.15; bench/RESULTS.md). Its cuts are relaxed with those of
:func:`split_to_count` (4× synth-d24, seeds 0–2: inertia ratio 0.19 → 0.13)."""

CUT_CONTINUED = True
"""Apply :func:`cut_continued` on the output grid before :func:`split_to_count` (inputs whose grains
are equiaxed, :func:`.growth.input_targets`)."""

SPLIT_ELONGATED = True
"""Apply :func:`split_elongated` on the output grid after the tail split, its cuts relaxed with the others."""

MERGE_HEAD = True
"""Apply :func:`merge_head` on the output grid before :func:`split_to_count`, with the target read
on the output grid (:func:`output_target`)."""

ISOTROPIC_FRAME_ASPECT = 1.5
"""Inputs whose grains are elongated by at least this much (mean shape, :func:`.growth.input_targets`)
along (or near) a map axis are extended on a grid stretched so that they are about equiaxed there
(:func:`frame_stretch`); ``float("inf")`` never stretches."""

MIN_AREA = 10
"""The paper's minimum grain area in cells, applied to generated grains."""


@dataclass
class Prepared:
    """What a job needs from its input: the cleaned input (output grid), its labels, the
    conditioning, and the grain-scale grid (``f`` cells of the grid per output cell)."""

    size: tuple[int, int]
    grid: tuple[int, int]
    f: float
    cond: np.ndarray                  # the target's metrics, output cells (crystallography, reports)
    model_cond: np.ndarray | None = None  # the same at grain scale (what the network reads)
    input_clean: EBSDMap | None = None
    input_labels: np.ndarray | None = None
    input_quat: np.ndarray | None = None
    input_disorientation_deg: np.ndarray | None = None
    box: tuple | None = None          # input box on the output grid
    grid_box: tuple | None = None     # input box on the grain-scale grid
    grid_labels: np.ndarray | None = None
    stretch: tuple[float, float] = (1.0, 1.0)  # extra grid factors on rows and columns (product 1)

    @property
    def factors(self) -> tuple[float, float]:
        """Grid cells per output cell along rows and columns."""
        return self.f * self.stretch[0], self.f * self.stretch[1]


def resize_nearest(a: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resampling of the first two axes to ``shape``."""
    r = np.minimum((np.arange(shape[0]) + 0.5) * a.shape[0] / shape[0], a.shape[0] - 1).astype(int)
    c = np.minimum((np.arange(shape[1]) + 0.5) * a.shape[1] / shape[1], a.shape[1] - 1).astype(int)
    return a[r][:, c]


def grid_factor(median_ecd: float, size_range) -> float:
    """Grid cells per output cell so that grains of median ECD ``median_ecd`` fall in ``size_range``
    (1 when already inside; else the geometric middle of the range)."""
    if not size_range or not np.isfinite(median_ecd) or median_ecd <= 0:
        return 1.0
    lo, hi = float(size_range[0]), float(size_range[1])
    if lo <= median_ecd <= hi:
        return 1.0
    return float(np.sqrt(lo * hi)) / median_ecd


def _probs(cond, name: str) -> np.ndarray | None:
    """A conditioning tensor's ``name`` row as probabilities over ``axis_values(name)`` (None when
    the row is missing)."""
    row = np.asarray(cond, np.float64)[METRIC_NAMES.index(name)]
    if not np.isfinite(row).all() or row.sum() <= 0:
        return None
    return row / row.sum()


def _size_probs(cond) -> np.ndarray | None:
    """The size row of a conditioning tensor as probabilities over ``axis_values("size")``."""
    return _probs(cond, "size")


def _quantile_of(cond, name: str, q: float) -> float:
    """The ``q`` quantile of a conditioning tensor's ``name`` row (the bin value the CDF reaches
    ``q`` at; NaN when the row is missing)."""
    p = _probs(cond, name)
    if p is None:
        return float("nan")
    v = axis_values(name)
    return float(v[min(np.searchsorted(np.cumsum(p), q), len(v) - 1)])


def _median_of(cond, name: str) -> float:
    """The median of a conditioning tensor's ``name`` row (NaN when the row is missing)."""
    return _quantile_of(cond, name, 0.5)


def _generated(lab: np.ndarray, protected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(area per label, a flag per label: present and without a ``protected`` cell)."""
    area = np.bincount(lab.ravel())
    prot = np.bincount(lab[protected].ravel(), minlength=len(area)) > 0
    return area, (area > 0) & ~prot


def _beyond_binomial(k: int, n: int, p: float) -> int:
    """How many of ``k`` grains exceed what ``n`` draws with probability ``p`` each would give
    (binomial mean + 2 SD, rounded up)."""
    return int(k - np.ceil(n * p + 2 * np.sqrt(n * p * (1 - p))))


def median_ecd_of_cond(cond) -> float:
    """The median grain ECD (cells) of a conditioning tensor's size row (NaN if not given)."""
    return _median_of(cond, "size")


def rescale_cond(cond, f: float) -> np.ndarray:
    """The conditioning tensor of the same grains on a grid ``f`` times finer: the size and
    perimeter rows are stretched by ``f`` along their axes (the other metrics do not change)."""
    out = np.array(cond, dtype=np.float32, copy=True)
    if f == 1.0:
        return out
    for name in ("size", "perimeter"):
        k = METRIC_NAMES.index(name)
        row = out[k].astype(np.float64)
        if not np.isfinite(row).all():
            continue
        v = axis_values(name)
        new = np.interp(v / f, v, row, left=0.0, right=0.0)
        out[k] = new / max(new.mean(), 1e-12) if new.sum() > 0 else row
    return out


def axis_stretch(aspect: float, angle_deg: float) -> tuple[float, float]:
    """(row factor, residual aspect): the area-preserving stretch along the map axes (rows × ``r``,
    columns ÷ ``r``) that makes a mean grain shape of ``aspect`` with its long axis ``angle_deg`` from
    the X (column) axis as round as such a stretch can, and the aspect left after it.

    With the shape's second-moment tensor [[Irr, Irc], [Irc, Icc]] the stretch keeps its determinant
    and changes its trace to r²·Irr + Icc/r², least at r = (Icc/Irr)^¼: r = √aspect for a shape along
    X (residual 1), 1/√aspect along Y, 1 at 45° (residual ``aspect``: an axis stretch only shears an
    oblique shape)."""
    lmax, lmin = float(aspect) ** 2, 1.0
    t = np.deg2rad(angle_deg)
    irr = lmax * np.sin(t) ** 2 + lmin * np.cos(t) ** 2
    icc = lmax * np.cos(t) ** 2 + lmin * np.sin(t) ** 2
    irc = (lmax - lmin) * np.sin(t) * np.cos(t)
    r = float((icc / irr) ** 0.25)
    a, c = irr * r**2, icc / r**2  # the stretched tensor: equal diagonal, same off-diagonal
    half = np.hypot((a - c) / 2, irc)
    return r, float(np.sqrt(((a + c) / 2 + half) / ((a + c) / 2 - half)))


def frame_stretch(in_labels: np.ndarray, min_aspect: float | None = None) -> tuple[float, float, float, float]:
    """(row factor, column factor, aspect, angle) of the stretch of the grain-scale grid for an input
    whose grains are elongated: the mean shape of its grains (aspect ``a`` and long-axis angle from
    :func:`.growth.input_targets`) made as round as an area-preserving stretch along the map axes can
    (:func:`axis_stretch`). The network draws equiaxed grains best (it draws the long laths of an
    additively manufactured 316L map rounder than they are), and an affinely stretched equiaxed
    structure is what a rolled or directionally grown one looks like. (1, 1, a, angle) when the
    grains are less elongated than ``min_aspect``, or the stretch leaves them more than √a
    elongated (long axis more than about 12° from a map axis: the stretch mostly shears them).
    :func:`prepare` uses it when the target is read from the input, not when metrics are given."""
    min_aspect = ISOTROPIC_FRAME_ASPECT if min_aspect is None else min_aspect
    t = input_targets(in_labels)
    a, ang = float(t["aspect"]), float(t["angle_deg"]) % 180.0
    if not a >= min_aspect:
        return 1.0, 1.0, a, ang
    r, left = axis_stretch(a, ang)
    if left > np.sqrt(a):
        return 1.0, 1.0, a, ang
    return r, 1.0 / r, a, ang


def prepare(size, patch: int, size_range, input_map: EBSDMap | None = None, cond=None, place: str = "center",
            phase: str | None = None, log=print) -> Prepared:
    """Step 1: clean the input and choose the grain-scale grid."""
    R, C = int(size[0]), int(size[1])
    if input_map is None:
        if cond is None:
            raise InputError("nothing to generate from: give an input map or target metrics")
        med = median_ecd_of_cond(cond)
        f = grid_factor(med, size_range)
        if f != 1.0:
            log(f"target median grain size {med:.1f} cells lies outside the model's range "
                f"{size_range[0]:g}-{size_range[1]:g}: generating on a grid rescaled by {f:.2f}")
        model_cond, filled = assume_equiaxed(rescale_cond(cond, f))
        if filled:
            log(f"the target gives no {', '.join(n.replace('_', ' ') for n in filled)}: generating equiaxed grains "
                f"(isotropic grain growth's shapes); give it in the target to ask for other shapes")
        return Prepared(size=(R, C), grid=(max(patch, round(R * f)), max(patch, round(C * f))), f=f,
                        cond=np.asarray(cond, np.float32), model_cond=model_cond)
    h, w = input_map.shape
    input_clean, g, table = clean_input(input_map, (R, C), phase)
    med = float(np.median(table.size))
    f = grid_factor(med, size_range)
    if f != 1.0:
        log(f"input median grain size {med:.1f} cells lies outside the model's range "
            f"{size_range[0]:g}-{size_range[1]:g}: generating on a grid rescaled by {f:.2f} and resampling back")
    sr = sc = 1.0
    if cond is None:  # the target is the input's own: its grains' shape may stretch the grid
        r, c, a, ang = frame_stretch(g.labels)
        if r != 1.0 and min(round(h * f * r), round(w * f * c)) >= patch // 2:
            sr, sc = r, c
            log(f"the input's grains are elongated {a:.1f}:1, {ang:.0f} deg from X: generating on a grid stretched "
                f"{max(sr, sc):.2f}x across them, where they are about equiaxed")
    hs, ws = int(round(h * f * sr)), int(round(w * f * sc))
    if min(hs, ws) < patch // 2:
        need = int(np.ceil(patch / 2 / f))
        raise InputError(f"the input is {h}x{w} cells; with grains of median size {med:.1f} cells this model "
                         f"needs at least {need} cells per side (half its {patch}-cell window at grain scale)")
    Rs, Cs = max(patch, int(round(R * f * sr))), max(patch, int(round(C * f * sc)))
    box = place_input((R, C), (h, w), place)
    grid_box = place_input((Rs, Cs), (hs, ws), place)
    grid_labels = resize_nearest(g.labels, (hs, ws)).astype(np.int64)
    if cond is None:
        cond = conditioning_tensor(table)
        # the network reads the input's grains as it sees them, on the grain-scale grid
        _, gl = np.unique(grid_labels, return_inverse=True)  # grains too small to survive the resize drop out
        gl = gl.reshape(grid_labels.shape)
        gq = np.tile([1.0, 0.0, 0.0, 0.0], (int(gl.max()) + 1, 1))
        scaled = f != 1.0 or sr != 1.0
        gt = grain_table(gl, gq) if scaled else table
        gl_used = gl if scaled else g.labels
        # the shape few whole grains show is shrunk towards equiaxed growth's (equiaxed_shape_prior)
        model_cond = equiaxed_shape_prior(conditioning_tensor(edge_corrected_distributions(gt, gl_used)), gl_used,
                                          int((~np.asarray(gt.border, bool)).sum()))
    else:
        model_cond = rescale_cond(cond, f)
    return Prepared(size=(R, C), grid=(Rs, Cs), f=f, cond=np.asarray(cond, np.float32), model_cond=model_cond,
                    input_clean=input_clean,
                    input_labels=g.labels.astype(np.int64), input_quat=g.quat, input_disorientation_deg=table.disorientation_deg,
                    box=box, grid_box=grid_box, grid_labels=grid_labels, stretch=(sr, sc))


class LabelWork(Work):
    """Resumable state: the grain-scale label canvas (-1 = not generated yet) and the generated field."""

    ARRAYS = ("labels", "field")


def _slice(plan: Plan, i: int):
    r, c = plan.windows[i]
    return slice(r, r + plan.patch), slice(c, c + plan.patch)


def run_waves(pipe, plan: Plan, work: LabelWork, cond, seed: int, steps: int = 25, sampler: str = "ddim",
              guidance: float = 1.0, batch: int = 8, resample: int = 2, progress: bool = True,
              stop_after_waves: int | None = None, decode_options: dict | None = None,
              guidance_until: float = 1.0, resample_input_only: bool = False) -> bool:
    """Step 3: generate and segment the waves not done yet; True when all are done.

    ``resample_input_only``: RePaint passes only in windows that overlap the input box (the others,
    whose known cells were generated, denoise with known-region replacement alone); without an input
    (generation from metrics) every window resamples.

    The progress bar counts cells to generate (a window's unknown cells), so its time estimate does
    not jump between waves of different sizes."""
    decode_options = dict(getattr(pipe, "decode_options", {}), **(decode_options or {}))
    done = work.state["waves_done"]
    known0 = work.labels >= 0
    todo = {}
    seen = known0.copy()
    for wave in plan.waves:  # each window's share of the cells to generate, for the progress bar
        for i in wave:
            s = _slice(plan, i)
            todo[i] = int((~seen[s]).sum())
        for i in wave:
            seen[_slice(plan, i)] = True
    total = sum(todo.values())
    start = sum(todo[i] for w in plan.waves[:done] for i in w)
    bar = tqdm(total=total, initial=start, unit="cell", unit_scale=True, disable=not progress, desc="generating")
    def at_input(i):
        if plan.input_box is None:
            return False
        r, c = plan.windows[i]
        r0, c0, h, w = plan.input_box
        return r < r0 + h and r0 < r + plan.patch and c < c0 + w and c0 < c + plan.patch

    for wi in range(done, len(plan.waves)):
        wave = plan.waves[wi]
        bar.set_postfix(wave=f"{wi + 1}/{len(plan.waves)}")
        groups = [(wave, resample)]
        if resample_input_only and resample > 1 and plan.input_box is not None:
            groups = [([i for i in wave if at_input(i)], resample), ([i for i in wave if not at_input(i)], 1)]
        batches = [(g[a:a + batch], rs) for g, rs in groups for a in range(0, len(g), max(1, batch))]
        for idx, rs in batches:
            labs = [np.asarray(work.labels[_slice(plan, i)]) for i in idx]
            kn = np.stack([lab >= 0 for lab in labs])
            wseeds = [seed * 1_000_003 + i for i in idx]
            kf = np.stack([pipe.known_field(lab, k, s) for lab, k, s in zip(labs, kn, wseeds)])
            fields = pipe(kf, kn, cond, seeds=wseeds, steps=steps, sampler=sampler, guidance=guidance,
                          resample=rs, guidance_until=guidance_until)
            for i, lab, k, fld in zip(idx, labs, kn, fields):
                # windows of a wave never write neighbouring cells, so segmenting them one after
                # another gives the same labels as segmenting them together
                out, nxt = segment_window(fld, lab, k, pipe.representation, work.state["next_label"], **decode_options)
                s = _slice(plan, i)
                work.labels[s] = np.where(k, lab, out)
                fs = work.field[(slice(None),) + s]
                work.field[(slice(None),) + s] = np.where(k[None], fs, fld)
                work.state["next_label"] = nxt
                bar.update(todo[i])
        if work.end_wave(wi, done, stop_after_waves, len(plan.waves)):
            bar.close()
            return False
    bar.close()
    return True


def _upsample_labels(labels: np.ndarray, field: np.ndarray, shape) -> np.ndarray:
    """Labels on a finer grid whose boundaries follow the field's valleys: cells far from any
    boundary of the nearest-neighbour resize keep its label, the rest are flooded over the
    bilinearly interpolated field (smooth boundaries instead of staircases)."""
    near = resize_nearest(labels, shape)
    k = max(1.0, shape[0] / labels.shape[0], shape[1] / labels.shape[1])
    band = ndimage.binary_dilation(boundary_cells(near), iterations=int(np.ceil(k)))
    zoom = (shape[0] / field.shape[0], shape[1] / field.shape[1])
    elev = -ndimage.zoom(field, zoom, order=1, mode="nearest", grid_mode=True)[: shape[0], : shape[1]]
    markers = np.where(band, 0, near + 1)
    # a grain narrower than the band would lose every marker and vanish (on a generated nickel-like
    # map, 15 % of the grains): seed it at its field maximum, so the flood keeps it
    lost = np.setdiff1d(np.unique(near), np.unique(markers) - 1)
    if len(lost):
        pos = np.asarray(ndimage.minimum_position(elev, near, lost), dtype=np.int64).reshape(-1, 2)
        markers[pos[:, 0], pos[:, 1]] = lost + 1
    # flood only the band and the ring of marker cells around it: the same labels as flooding the
    # whole grid (interior marker cells have no unlabelled neighbour), half the time on 2048²
    ring = ndimage.binary_dilation(band)
    return np.where(ring, watershed(elev, markers, connectivity=1, mask=ring), markers) - 1


def _merge_into_neighbours(lab: np.ndarray, small: np.ndarray) -> np.ndarray:
    """``lab`` with each grain flagged in ``small`` (one flag per label) merged into the neighbour it
    shares the longest boundary with, a neighbour not flagged where it has one (one pass)."""
    n = len(small)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    d = a != b
    src = np.concatenate([a[d], b[d]])
    dst = np.concatenate([b[d], a[d]])
    keep = small[src]
    src, dst = src[keep], dst[keep]
    if len(src) == 0:
        return lab
    key = src.astype(np.int64) * n + dst
    uk, cnt = np.unique(key, return_counts=True)
    s, t = uk // n, uk % n
    score = cnt + np.where(small[t], 0, 1 << 30)
    order = np.lexsort((-score, s))
    first = np.ones(len(order), bool)
    first[1:] = s[order][1:] != s[order][:-1]
    ss, tt = s[order][first], t[order][first]
    ok = ~small[tt] | (tt > ss)  # only small neighbours: merge upwards so no two swap
    target = np.arange(n)
    target[ss[ok]] = tt[ok]
    return target[lab]


def _merge_small(labels: np.ndarray, fixed: np.ndarray, min_area: int) -> np.ndarray:
    """Merge grains under ``min_area`` cells that have no fixed cell into the neighbour they share
    the longest boundary with (repeated while any remain)."""
    lab = labels.copy()
    for _ in range(20):
        area = np.bincount(lab.ravel())
        has_fixed = np.bincount(lab[fixed], minlength=len(area)) > 0
        small = (area > 0) & (area < min_area) & ~has_fixed
        if not small.any():
            break
        nxt = _merge_into_neighbours(lab, small)
        if nxt is lab:
            break
        lab = nxt
    return lab


def frame_count(labels: np.ndarray, grains: np.ndarray) -> int:
    """How many of ``grains`` (a boolean per label) a counting frame counts on ``labels``: those
    touching the first row or the first column left out. Grains cut by the canvas edge are pieces,
    and counting each as a grain would hold the region at the target count with its whole grains
    too large (about one grain in seven on a 384² canvas of 19-cell grains); the frame counts as
    many of them as a tiling of frames gives each frame (as :func:`~.growth.counted_size`)."""
    keep = np.asarray(grains, bool).copy()
    keep[np.concatenate([labels[0], labels[:, 0]])] = False
    return int(keep.sum())


def expected_grain_area(cond) -> float:
    """Mean grain area (cells) of a conditioning tensor's size distribution (NaN when missing)."""
    p = _size_probs(cond)
    return float("nan") if p is None else float(np.pi / 4 * (p * axis_values("size") ** 2).sum())


def _restore_to_target(before: np.ndarray, after: np.ndarray, pin: np.ndarray, cond, scale: float = 1.0,
                       area_mean: float | None = None) -> np.ndarray:
    """Give back grains the relaxation removed, largest first, while the generated region holds
    fewer grains than the target's mean grain area implies. Curvature flow makes the small grains
    of a wide size distribution vanish (a third of a nickel-like map's); where the network drew too
    many small grains (segmentation fragments) the count is already at the target and nothing comes
    back. ``cond`` may be on a grid ``scale`` times finer than the labels (the grain-scale grid).
    With ``area_mean`` (an input's count per area, :func:`target_area_mean`) the grains are counted
    as a counting frame counts them (:func:`frame_count`), like with like."""
    frame = area_mean is not None
    if area_mean is None:
        area_mean = expected_grain_area(cond) / scale**2
    free = ~pin
    if not np.isfinite(area_mean) or not free.any():
        return after
    want = int(round(free.sum() / area_mean))
    present = np.zeros(int(after.max()) + 1, bool)
    present[after[free]] = True
    have = frame_count(after, present) if frame else int(present.sum())
    if have >= want:
        return after
    n, m = int(before.max()) + 1, int(after.max()) + 1
    uk, cnt = np.unique(before[free].astype(np.int64) * m + after[free], return_counts=True)
    old, new = uk // m, uk % m
    area = np.bincount(before[free], minlength=n)
    order = np.lexsort((-cnt, old))
    first = np.ones(len(order), bool)
    first[1:] = old[order][1:] != old[order][:-1]
    best = np.zeros(n)
    best[old[order][first]] = cnt[order][first]
    claim = np.full(m, -1)
    by = np.argsort(best, kind="stable")
    bn = np.full(n, -1)
    bn[old[order][first]] = new[order][first]
    by = by[bn[by] >= 0]
    claim[bn[by]] = by
    held = np.zeros(n, bool)
    held[np.unique(before[pin])] = True
    lost = (area > 0) & ~held & ((best < 0.5 * area) | (claim[np.maximum(bn, 0)] != np.arange(n)))
    cand = np.flatnonzero(lost)
    cand = cand[np.argsort(-area[cand], kind="stable")][: want - have]
    if len(cand) == 0:
        return after
    back = np.zeros(n, bool)
    back[cand] = True
    sel = back[before] & free
    out = np.where(sel, m + before, after)
    # a restored grain can cut a neighbour in two: the pieces become grains of their own
    return cc_label(out + 1, connectivity=1, background=0) - 1


def lognormal_of_cond(cond) -> tuple[float, float]:
    """(mu, sigma) of ln ECD of a conditioning tensor's size row (NaN when the row is missing)."""
    p = _size_probs(cond)
    if p is None:
        return float("nan"), float("nan")
    lv = np.log(axis_values("size"))
    mu = float((p * lv).sum())
    return mu, float(np.sqrt((p * (lv - mu) ** 2).sum()))


def oversize_area(cond, n: int, alpha: float = 0.05) -> float:
    """The grain area (cells) that the largest of ``n`` grains drawn from a log-normal fitted to the
    target's size distribution exceeds with probability ``alpha`` (NaN without a size target)."""
    from scipy.stats import norm

    mu, sig = lognormal_of_cond(cond)
    if not np.isfinite(mu) or n < 1:
        return float("nan")
    p = -np.expm1(np.log1p(-alpha) / n)  # per grain, so that 1 - (1 - p)^n = alpha
    return float(np.pi / 4 * np.exp(2 * (mu + sig * norm.isf(p))))


def split_oversized(labels: np.ndarray, protected: np.ndarray, cond, seed: int = 0,
                    alpha: float = 0.05) -> tuple[np.ndarray, int]:
    """Split generated grains too large for the target size distribution.

    A log-normal fitted to the target's grain-size (ECD) distribution gives the area that the largest
    of the ``n`` generated grains exceeds with probability ``alpha`` only (:func:`oversize_area`; a
    test at level ``alpha``: drawn from that log-normal, a map has its largest grain split with
    probability ``alpha``; from grain growth, whose size distribution has a shorter tail, less
    often). The model overdraws deep grain interiors (8x the input's share of cells >= 8 cells from a
    boundary on the README job), and window after window a few of them grow into grains several
    times the input's largest. Such a grain is cut into pieces of the target's mean grain area by
    k-means of its cell positions (compact pieces meeting at triple junctions, as in a Voronoi
    tessellation). Grains with a ``protected`` cell (the input's) are left
    as they are (:func:`cut_continued` bounds those). ``cond`` is the target at the scale of ``labels``.
    Returns (labels, grains split).
    """
    mu, sig = lognormal_of_cond(cond)
    lab = np.asarray(labels)
    if not np.isfinite(mu):
        return lab, 0
    area, gen = _generated(lab, protected)
    n = int(gen.sum())
    if n == 0:
        return lab, 0
    cap = oversize_area(cond, n, alpha)
    piece = np.pi / 4 * np.exp(2 * mu + 2 * sig ** 2)
    big = np.flatnonzero(gen & (area > cap))
    if len(big) == 0:
        return lab, 0
    return _split_grains(lab, big, [max(2, int(round(area[g] / piece))) for g in big], seed), len(big)


def _split_keeping_protected(lab: np.ndarray, grains, pieces, protected: np.ndarray, seed: int = 0) -> np.ndarray:
    """:func:`_split_grains`, after which the pieces holding a ``protected`` cell go back to their
    grain's label and the others become grains of their own."""
    cut = _split_grains(lab, grains, pieces, seed)
    flat = lab.ravel()
    cells = np.flatnonzero(np.isin(flat, np.asarray(grains)))
    uniq, inv = np.unique(cut.ravel()[cells], return_inverse=True)
    has = np.bincount(inv, weights=protected.ravel()[cells].astype(np.float64), minlength=len(uniq)) > 0
    new = int(cut.max()) + 1 + np.cumsum(~has) - 1
    out = cut.ravel().copy()
    out[cells] = np.where(has[inv], flat[cells], new[inv])
    return out.reshape(lab.shape)


def _split_grains(lab: np.ndarray, grains, pieces, seed: int = 0) -> np.ndarray:
    """``lab`` with each grain of ``grains`` cut into the matching number of ``pieces`` by k-means of
    its cell positions (compact pieces meeting at triple junctions, as in a Voronoi tessellation)."""
    if len(grains) and all(int(k) == 2 for k in pieces):
        return _halve_grains(lab, np.asarray(grains))
    lab = lab.copy()
    flat = lab.ravel()
    rng = np.random.default_rng(seed)
    nxt = int(flat.max()) + 1
    # the cells of the grains to cut only, grain by grain, each grain's in ascending order
    sel = np.flatnonzero(np.isin(flat, np.asarray(grains)))
    sel = sel[np.argsort(flat[sel], kind="stable")]
    area = np.bincount(flat[sel], minlength=nxt)
    starts = np.concatenate([[0], np.cumsum(area)])
    for g, k in zip(grains, pieces):
        cells = sel[starts[g]:starts[g + 1]]
        pts = np.stack(np.unravel_index(cells, lab.shape), axis=1).astype(np.float64)
        # k-means++ start, then a few Lloyd iterations: compact pieces of similar area (memory
        # linear in the grain's cells, whatever k)
        cen = np.empty((k, 2))
        cen[0] = pts[rng.integers(len(pts))]
        d2 = ((pts - cen[0]) ** 2).sum(1)
        for j in range(1, k):
            cen[j] = pts[rng.choice(len(pts), p=d2 / d2.sum())]
            d2 = np.minimum(d2, ((pts - cen[j]) ** 2).sum(1))
        for _ in range(8):
            a = cKDTree(cen).query(pts)[1]
            cnt = np.bincount(a, minlength=k)
            ok = cnt > 0
            cen[ok] = np.stack([np.bincount(a, weights=pts[:, j], minlength=k)[ok] / cnt[ok] for j in (0, 1)], 1)
        a = cKDTree(cen).query(pts)[1]
        lab.ravel()[cells] = np.where(a == 0, g, nxt + a - 1)
        nxt += k - 1
    return lab


CONTINUED_QUANTILE = 0.99
"""Size quantile of the target above which :func:`cut_continued` cuts an input grain's continuation."""


def cut_continued(labels: np.ndarray, fixed: np.ndarray, cond, seed: int = 0,
                  q: float = CONTINUED_QUANTILE, keep: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Cut input grains whose generated part is larger than any part of a cut grain the input shows.

    The network continues a grain cut by the input border, as it should, but sometimes far too far:
    on a 4× extension of a 16-cell grain-growth map the three largest grains of the output, 1.5-1.7×
    the truth's largest, were input grains with 1560-1650 generated cells each (the truth's largest
    cut grain: 700 cells in all). The size rules for generated grains (:func:`split_oversized`,
    :func:`split_tail`, :func:`split_to_count`) must leave a grain holding input cells alone.

    The bound: the border splits each grain it crosses into an inside and an outside part, and the
    statistics of the two sides are the same (nothing tells the border's two sides apart but where
    the input happened to be cut), so the largest outside part is about as large as the largest
    inside part the input shows; the target's ``q`` size quantile (as an area) when that is larger.
    A grain of a target's tail is therefore kept: real maps' cut grains (twinned nickel) are far
    larger than their whole grains' quantiles, because the larger a grain the likelier a border cuts
    it, and their inside parts say so. The argument needs compact grains: :func:`finish` applies it
    to equiaxed inputs only. Each grain over the bound is cut by k-means into
    pieces of the target's mean area (:func:`_split_grains`); the pieces holding input cells keep its
    label (the input never changes), the others become grains of their own; so do the pieces holding
    a ``keep`` cell (default: the ``fixed`` ones), which lets the rim of cells given back to each cut
    grain next to the border stay with it. ``cond`` is the target at the scale of ``labels``. Returns
    (labels, grains cut)."""
    d_q = _quantile_of(cond, "size", q)
    lab = np.asarray(labels)
    if not np.isfinite(d_q) or not fixed.any():
        return lab, 0
    area = np.bincount(lab.ravel())
    inside = np.bincount(lab[fixed].ravel(), minlength=len(area))
    outside = area - inside
    cut = (inside > 0) & (outside > 0)
    if not cut.any():
        return lab, 0
    bound = max(np.pi / 4 * d_q ** 2, float(inside[cut].max()))
    held = np.flatnonzero(cut & (outside > bound))
    if len(held) == 0:
        return lab, 0
    a_mean = expected_grain_area(cond)
    pieces = [max(2, int(round(area[g] / a_mean))) for g in held]
    return _split_keeping_protected(lab, held, pieces, fixed if keep is None else fixed | keep, seed), len(held)


def _grain_moments(lab: np.ndarray, grains: np.ndarray):
    """Per grain of ``grains`` (sorted labels): its cells (flat indices), each cell's grain index,
    offsets from the centroid (dr, dc), cell counts and second-moment sums (irr, icc, irc), all
    grains at once."""
    flat = lab.ravel()
    cells = np.flatnonzero(np.isin(flat, grains))
    gi = np.searchsorted(grains, flat[cells])
    m = len(grains)
    r, c = (x.astype(np.float64) for x in np.divmod(cells, lab.shape[1]))
    n = np.maximum(np.bincount(gi, minlength=m), 1)
    mr, mc = np.bincount(gi, r, m) / n, np.bincount(gi, c, m) / n
    dr, dc = r - mr[gi], c - mc[gi]
    irr, icc, irc = (np.bincount(gi, x, m) for x in (dr * dr, dc * dc, dr * dc))
    return cells, gi, dr, dc, n, irr, icc, irc


def _halve_grains(lab: np.ndarray, grains: np.ndarray, along: np.ndarray | None = None) -> np.ndarray:
    """``lab`` with each of ``grains`` cut in two across its long axis through its centroid (the
    cut 2-means converges to on a compact grain), or along it where ``along`` (one flag per grain
    of ``grains``) says so; all grains at once: a 512→2048 extension halves about a thousand. The
    piece on the far side gets a new label."""
    lab = lab.copy()
    flat = lab.ravel()
    grains, first = np.unique(grains, return_index=True)
    along = np.zeros(len(grains), bool) if along is None else np.asarray(along, bool)[first]
    cells, gi, dr, dc, _, irr, icc, irc = _grain_moments(lab, grains)
    theta = 0.5 * np.arctan2(2 * irc, irr - icc)  # long axis, from the row axis
    theta = theta + np.where(along, np.pi / 2, 0.0)  # a cut along the long axis: normal across it
    side = dr * np.cos(theta)[gi] + dc * np.sin(theta)[gi] > 0
    flat[cells[side]] = int(flat.max()) + 1 + gi[side]
    return lab


TAIL_QUANTILE = 0.95
"""Upper size quantile of the target above which :func:`split_tail` checks for excess grains."""


def split_tail(labels: np.ndarray, protected: np.ndarray, cond, seed: int = 0,
               q: float = TAIL_QUANTILE) -> tuple[np.ndarray, int]:
    """Halve the largest generated grains while more of them exceed the target's ``q`` size quantile
    than a sample of the target distribution would (binomial mean + 2 SD).

    The network's size distribution has a longer upper tail than its target (on a 4× extension of a
    grain-growth map the generated 95th percentile ECD was 1.14× the target's and the 99th 1.4×): a
    few large grains, each with many neighbours, that widen the size and coordination spread. The
    excess, largest first, is cut in two by :func:`_split_grains`. ``cond`` is the target at the scale
    of ``labels``; grains with a ``protected`` cell are left as they are. Returns (labels, grains split).
    """
    d_q = _quantile_of(cond, "size", q)
    lab = np.asarray(labels)
    if not np.isfinite(d_q):
        return lab, 0
    area, gen = _generated(lab, protected)
    over = np.flatnonzero(gen & (area > np.pi / 4 * d_q ** 2))
    excess = _beyond_binomial(len(over), int(gen.sum()), 1 - q)
    if excess <= 0:
        return lab, 0
    big = over[np.argsort(-area[over], kind="stable")][:excess]
    return _split_grains(lab, big, [2] * len(big), seed), len(big)


SHAPE_QUANTILE = 0.95
"""Upper inertia-ratio quantile of the target above which :func:`split_elongated` checks for excess
grains."""


def split_elongated(labels: np.ndarray, protected: np.ndarray, cond, q: float = SHAPE_QUANTILE,
                    min_area: int = 2 * MIN_AREA, n_target: int | None = None) -> tuple[np.ndarray, int]:
    """Halve the most elongated generated grains, across their long axis, while more of them exceed
    the target's ``q`` inertia-ratio quantile than a sample of the target distribution would
    (binomial mean + 2 SD): the shape counterpart of :func:`split_tail`.

    Where the network leaves a faint boundary between two compact basins the segmentation keeps them
    as one lens-shaped grain; the smaller network (``morph-lite``) does this more often, and on a 4×
    extension of equiaxed grain growth its 90th-percentile inertia ratio was 4.6 against the truth's
    3.1. An elongated target has a long tail of its own, so the rule rarely fires there. Only grains
    of at least ``min_area`` cells are cut (both halves stay above the minimum grain area); grains
    with a ``protected`` cell are left as they are. ``n_target``: the number of whole grains the
    target was measured on (None: a metrics target); under ``1 / (1 - q)`` of them (20) its 95th
    percentile means nothing and nothing is cut, as in :func:`merge_head` (the twinned nickel map's 12:
    cutting made its inertia-ratio W1/σ 0.31 → 0.36 at 2×). Returns (labels, grains halved)."""
    t_q = _quantile_of(cond, "inertia_ratio", q)
    lab = np.asarray(labels)
    if not np.isfinite(t_q) or (n_target is not None and n_target * (1 - q) < 1):
        return lab, 0
    area, gen = _generated(lab, protected)
    cand = np.flatnonzero(gen & (area >= min_area))
    if len(cand) == 0:
        return lab, 0
    ratio = _inertia_ratios(lab, cand)
    over = cand[ratio > t_q]
    excess = _beyond_binomial(len(over), int(gen.sum()), 1 - q)
    if excess <= 0:
        return lab, 0
    worst = over[np.argsort(-ratio[ratio > t_q], kind="stable")][:excess]
    return _halve_grains(lab, np.sort(worst)), len(worst)


HEAD_QUANTILE = 0.05
"""Lower size quantile of the target below which :func:`merge_head` checks for excess grains."""


def merge_head(labels: np.ndarray, protected: np.ndarray, cond, q: float = HEAD_QUANTILE,
               n_target: int | None = None) -> tuple[np.ndarray, int]:
    """Merge the smallest generated grains into a neighbour while more of them fall under the
    target's ``q`` size quantile than a sample of the target distribution would (binomial mean + 2 SD):
    the lower-tail counterpart of :func:`split_tail`.

    The network's size distribution can be too wide at both ends: on a 4× extension of an elongated
    grain-growth map the generated 5th and 95th percentile ECDs were 5.2 and 27.0 cells against the
    truth's 6.2 and 24.2, and the coordination spread 1.69 against 1.45. Each excess speck goes to
    the neighbour it shares the longest boundary with; :func:`split_to_count`, run after it, halves
    as many of the largest (size W1/σ 0.18 → 0.07, coordination 0.17 → 0.08 there, seeds 0–2).
    ``cond`` is the target at the scale of ``labels``; grains with a ``protected`` cell are left as
    they are. ``n_target``: the number of whole grains the target was measured on (None: a
    distribution given as such); under ``1 / q`` of them its ``q`` quantile is only the smallest
    grain's size, and nothing is merged (a 96² crop of a 24-cell map holds 5 whole grains, and a
    "5th percentile" at the median made merge_head take 16 of 41 grains). Returns (labels, grains merged)."""
    d_q = _quantile_of(cond, "size", q)
    lab = np.asarray(labels)
    if not np.isfinite(d_q) or (n_target is not None and n_target * q < 1):
        return lab, 0
    area, gen = _generated(lab, protected)
    under = np.flatnonzero(gen & (area < np.pi / 4 * d_q ** 2))
    excess = _beyond_binomial(len(under), int(gen.sum()), q)
    if excess <= 0:
        return lab, 0
    small = np.zeros(len(area), bool)
    small[under[np.argsort(area[under], kind="stable")][:excess]] = True
    return _merge_into_neighbours(lab, small), excess


HALF_INERTIA = 0.28
"""Inertia ratio of either half of an ellipse cut across its long axis, per unit of the whole's:
along the axis the half's variance is (1/4 − 16/(9π²)) L² against L²/4, across it the same W²/4."""


def _inertia_ratios(lab: np.ndarray, grains: np.ndarray) -> np.ndarray:
    """λmax/λmin of the second-moment tensor of each of ``grains`` (sorted labels), vectorised."""
    *_, n, irr, icc, irc = _grain_moments(lab, grains)
    # a cell's own second moment (1/12 on each axis) as in the grain table
    irr, icc, irc = irr / n + 1 / 12, icc / n + 1 / 12, irc / n
    half = np.sqrt((irr - icc) ** 2 / 4 + irc ** 2)
    mid = (irr + icc) / 2
    return (mid + half) / np.maximum(mid - half, 1e-12)


def split_to_count(labels: np.ndarray, protected: np.ndarray, cond, seed: int = 0,
                   inertia: float | None = None, area_mean: float | None = None) -> tuple[np.ndarray, int]:
    """Halve the largest generated grains while the generated region holds fewer grains than the
    target's mean grain area implies.

    The region's grain count is what the input fixes best (growth stops on it): the cells outside
    the input grains over ``area_mean`` (:func:`target_area_mean`), with the generated grains counted
    as a counting frame counts them (:func:`frame_count`: the pieces the canvas edge cuts off do not
    each count as a grain; counted, they left a 4× extension's whole grains too large). Without
    ``area_mean``, the mean area of ``cond``'s size row and every grain counted (generating from
    metrics, where that pair measured best). The network draws too few grains far from the input
    (a 4× extension of a grain-growth map: 1175 where the input's statistics imply 1324), each a
    little too large, which widens the size and coordination spread from above; the deficit, at
    most the grains above the target's median size, is cut in two. :func:`finish` runs it on the
    output grid after the relaxation and the count rule: cut on the grain-scale grid before the
    relaxation, the flow removed the halves again (1306 grains before it, 1214 at the end).

    Which grains, and which cut: a cut across a grain's long axis leaves halves :data:`HALF_INERTIA`
    times as elongated as the whole (or the inverse when under 1: a round grain gives two 3.6:1
    halves), a cut along it 1 / :data:`HALF_INERTIA` times. With ``inertia`` (the target's median
    inertia ratio) each candidate takes the cut whose halves come nearer it, and candidates rank by
    ``ln area − |ln(halves / inertia)|``: cutting the largest grains across alone made an elongated
    map's halves round (4×, inertia-ratio W1/σ 0.19 → 0.39; with the choice 0.14).
    ``cond`` is the target at the scale of ``labels``; grains with a ``protected`` cell (and their
    cells) are left out. Returns (labels, grains split)."""
    lab = np.asarray(labels)
    frame = area_mean is not None
    if area_mean is None:
        area_mean = expected_grain_area(cond)
    p = _size_probs(cond)
    if not np.isfinite(area_mean) or p is None:
        return lab, 0
    area, gen = _generated(lab, protected)
    want = int(round(area[gen].sum() / area_mean))
    deficit = want - (frame_count(lab, gen) if frame else int(gen.sum()))
    if deficit <= 0:
        return lab, 0
    d_med = _median_of(cond, "size")
    over = np.flatnonzero(gen & (area > np.pi / 4 * d_med ** 2))
    if len(over) == 0:
        return lab, 0
    key = np.log(area[over].astype(np.float64))
    along = np.zeros(len(over), bool)
    if inertia is not None and np.isfinite(inertia) and inertia > 0:
        ratio = _inertia_ratios(lab, over)
        across = HALF_INERTIA * ratio
        miss = np.abs(np.log(np.maximum(across, 1 / across) / inertia))
        miss_along = np.abs(np.log(ratio / HALF_INERTIA / inertia))
        along = miss_along < miss
        miss = np.minimum(miss, miss_along)
        key = key - miss
    order = np.argsort(-key, kind="stable")[:deficit]
    return _halve_grains(lab, over[order], along[order]), len(order)


def output_plan(prep: Prepared, plan: Plan) -> Plan:
    """The grain-scale ``plan`` drawn on the output grid (windows of ``patch / f`` cells; on a
    stretched grid, rectangles)."""
    fr, fc = prep.factors
    if fr == fc == 1.0:
        return Plan(canvas=plan.canvas, patch=plan.patch, input_box=prep.box, windows=plan.windows, waves=plan.waves)
    pr, pc = int(round(plan.patch / fr)), int(round(plan.patch / fc))
    return Plan(canvas=prep.size, patch=pr, input_box=prep.box, patch_cols=None if pc == pr else pc,
                windows=[(int(round(r / fr)), int(round(c / fc))) for r, c in plan.windows], waves=plan.waves)


def fit_window(window: int | None, patch: int, grid) -> int:
    """The side of the inference windows on a grain-scale canvas ``grid``: ``window`` (None: the
    training ``patch``), no larger than the canvas, a multiple of 8 (the UNet halves the grid
    twice; 8 keeps every level even), never under ``patch``."""
    w = int(window or patch)
    w = min(w, int(grid[0]), int(grid[1]))
    return max(patch, w - w % 8)


def plan_morph(pipe, input_map: EBSDMap | None, size, cond=None, place: str = "center", overlap: float = 0.5,
               phase: str | None = None, log=print, window: int | None = None) -> Plan:
    """The windows and waves a morphology job would run, on the output grid (for ``--plan``): the
    input is cleaned and the grid scale chosen exactly as :func:`extend_morph` does."""
    prep = prepare(size, pipe.patch, pipe.model.info.get("grain_size_range_cells"), input_map, cond, place, phase, log)
    win = fit_window(window, pipe.patch, prep.grid)
    return output_plan(prep, make_plan(prep.grid, win, prep.grid_box, overlap=overlap))


def _relax_cuts(pre: np.ndarray, out: np.ndarray, pin: np.ndarray, t: dict, seed: int) -> np.ndarray:
    """:data:`SPLIT_RELAX` steps of curvature flow (kernel of the shapes ``t``) on the grains the
    merges and splits changed (``pre`` → ``out``) and their neighbours of at least the median area;
    all else held."""
    changed = out != pre
    n = int(max(out.max(), pre.max())) + 1
    cut = np.zeros(n, bool)
    cut[np.unique(out[changed])] = True
    cut[np.unique(pre[changed])] = True
    near = cut.copy()
    for a, b in ((out[:, 1:], out[:, :-1]), (out[1:], out[:-1])):
        d = a != b
        near[b[d][cut[a[d]]]] = True
        near[a[d][cut[b[d]]]] = True
    area = np.bincount(out.ravel(), minlength=n)
    near &= cut | (area >= np.median(area[area > 0]))
    hold = pin | ~near[out]
    return relax(out, hold, SPLIT_RELAX, t["aspect"], t["angle_deg"], seed)


def target_area_mean(prep: Prepared) -> float | None:
    """Mean grain area (output cells) the generated region is held to, or None (generating from
    metrics: the target's size row gives it).

    An input gives two estimates: its grains per area as a counting frame counts them
    (:func:`~.growth.counted_size`, what growth stops on; cut grains count, so it is steady, but its
    specks count as much as its largest grains) and the mean area of its whole grains'
    Miles–Lantuéjoul-corrected size distribution (what the network reads; a few whole grains
    make it noisy). On 96² crops of four grain-growth maps they erred by −16 % to +41 % against the
    whole map's counted mean area, in opposite directions on three of the four; their geometric mean by at
    most 9 % (bench/RESULTS.md)."""
    if prep.input_labels is None:
        return None
    d = counted_size(prep.input_labels)
    a_cond = expected_grain_area(prep.model_cond) / prep.f ** 2
    if not np.isfinite(d) or not np.isfinite(a_cond):
        return None
    return float(np.sqrt(np.pi / 4 * d * d * a_cond))


def output_target(prep: Prepared) -> tuple[np.ndarray, int | None]:
    """The target on the output grid: the input's whole grains (Miles–Lantuéjoul-weighted) as the
    input's own cells show them, or the given metrics with shapes filled in as isotropic growth's.
    The network's conditioning (``prep.model_cond``) is read off the grain-scale grid, where the
    smallest grains may not survive the resize (a 96² crop of a 16-cell map on a grid 0.73× as fine:
    5th size percentile 6.6 cells there, 6.1 on the input's own cells and on the whole map).
    Returns (target, the number of whole grains it rests on, or None without an input)."""
    if prep.input_labels is not None:
        t = grain_table(prep.input_labels, prep.input_quat)
        n_whole = int((~t.border).sum())
        return equiaxed_shape_prior(conditioning_tensor(edge_corrected_distributions(t, prep.input_labels)),
                                    prep.input_labels, n_whole), n_whole
    return assume_equiaxed(prep.cond)[0], None


def equiaxed_shape_prior(cond, in_labels: np.ndarray, n_whole: int) -> np.ndarray:
    """``cond`` (measured on an input) with its inertia-ratio row shrunk towards the equiaxed reference
    (:mod:`~infinityebsd.data.shape_reference`) by ``n_whole : CV_PRIOR_GRAINS`` when the input's grains
    are not elongated (:func:`.growth.input_targets`), as the growth shrinks a measured CV.

    A shape distribution from a few whole grains is mostly noise: the 96² centre of a 24-cell
    grain-growth map holds 6, whose Miles–Lantuéjoul-weighted median inertia ratio is 3.7 against
    the whole map's 1.8, and the cuts of :func:`split_to_count`, aimed at that median, drew
    lens-shaped grains all over the 4× extension. An elongated input keeps its own row: its shape is
    what the extension must carry on."""
    out = np.array(cond, dtype=np.float32, copy=True)
    k = METRIC_NAMES.index("inertia_ratio")
    if not np.all(np.isfinite(out[k])) or input_targets(in_labels)["aspect"] != 1.0:
        return out
    ref = assume_equiaxed(np.full_like(out, np.nan))[0][k]
    w = n_whole / (n_whole + CV_PRIOR_GRAINS)
    out[k] = w * out[k] + (1 - w) * ref
    return out


def finish(prep: Prepared, plan: Plan, work: LabelWork, seed: int = 0, min_area: int = MIN_AREA, log=None):
    """Step 4: labels on the output grid, the input exact, small grains merged, orientations.
    Returns (EBSDMap, labels, plan on the output grid)."""
    R, C = prep.size
    labels = np.asarray(work.labels)
    protected = np.zeros(labels.shape, bool)
    if prep.grid_box is not None:
        r0, c0, hs, ws = prep.grid_box
        protected[r0:r0 + hs, c0:c0 + ws] = True
    labels, n_split = split_oversized(labels, protected, prep.model_cond, seed)
    if SPLIT_TAIL:
        labels, n_tail = split_tail(labels, protected, prep.model_cond, seed)
    if n_split and log is not None:
        log(f"size bound: split {n_split} generated grain{'s' * (n_split > 1)} larger than the target's "
            "size distribution allows")
    field = np.asarray(work.field[0])
    if prep.grid_box is not None:  # the field of the input region, for the valleys there too
        r0, c0, hs, ws = prep.grid_box
        field = field.copy()
        field[r0:r0 + hs, c0:c0 + ws] = distance_field(prep.grid_labels)
    if prep.f != 1.0 or labels.shape != (R, C):
        if min(prep.factors) < 1.0:
            out = _upsample_labels(labels, field, (R, C))
        else:
            out = resize_nearest(labels, (R, C))
    else:
        out = labels.copy()
    fixed = np.zeros((R, C), bool)
    rim_cells = None
    known_euler = np.zeros((R, C, 3))
    if prep.box is not None:
        r0, c0, h, w = prep.box
        out[r0:r0 + h, c0:c0 + w] = prep.input_labels
        fixed[r0:r0 + h, c0:c0 + w] = True
        known_euler[r0:r0 + h, c0:c0 + w] = prep.input_clean.euler
    if prep.box is not None and CONTINUATION_RIM > 0:
        # the network draws a boundary right at the input border under about one cut grain in seven
        # (the truth: a few in a hundred); the first cells beyond the border stay with the input's
        # grains, as far as each cut grain's implied disc reaches, capped at CONTINUATION_RIM mean
        # grain sizes (growth.continuation). Where the network did continue a grain it is unchanged.
        rim = input_continuation((R, C), prep.box, prep.input_labels, cap=CONTINUATION_RIM)
        out[rim >= 0] = rim[rim >= 0]
        rim_cells = rim >= 0
    # a generated cell must not join an input grain it does not touch: split disconnected pieces
    out = cc_label(out + 1, connectivity=1, background=0) - 1
    out = _merge_small(out, fixed, min_area)
    if RELAX_STEPS > 0:
        # a few steps of curvature flow on the generated grains (the input's grains, with the cells
        # the network or the rim continued them into, stay put): the network draws where grains
        # are and how large, but wavier boundaries and less compact shapes than grain growth
        # leaves (bench/RESULTS.md). The kernel follows the input's grain shapes (generating from
        # metrics: the generated grains' own, from the centre at most 1024² of them) so that
        # elongated grains are not rounded off.
        pin = np.isin(out, np.unique(out[fixed])) if fixed.any() else fixed
        if prep.input_labels is not None:
            t = input_targets(prep.input_labels)
        else:
            r0, c0 = max(0, (R - 1024) // 2), max(0, (C - 1024) // 2)
            t = input_targets(np.unique(out[r0:r0 + 1024, c0:c0 + 1024], return_inverse=True)[1].reshape(
                min(R, 1024), min(C, 1024)))
        a_mean = target_area_mean(prep)
        before = out
        out = relax(out, pin, RELAX_STEPS, t["aspect"], t["angle_deg"], seed)
        # grains the flow removed come back while the map is coarser than the target the network read
        # (the input's whole grains, or the metrics), on its grid f times finer
        out = _restore_to_target(before, out, pin, prep.model_cond, scale=prep.f, area_mean=a_mean)
        grid_target = rescale_cond(prep.model_cond, 1.0 / prep.f)  # the network's target, output grid
        if SPLIT_TO_COUNT:
            pre = out
            target, n_whole = output_target(prep)
            n_merged = n_held = 0
            if CUT_CONTINUED and prep.input_labels is not None and t["aspect"] == 1.0:
                # only for equiaxed inputs: a lath the border crosses at a slant goes on much further
                # outside than any inside part shows (316L at 2×: three of the truth's laths cut)
                out, n_held = cut_continued(out, fixed, target, seed, keep=rim_cells)
                if n_held:  # the pieces cut off are generated grains now
                    pin = np.isin(out, np.unique(out[fixed]))
            if MERGE_HEAD:
                out, n_merged = merge_head(out, pin, target, n_target=n_whole)
            out, n_cut = split_to_count(out, pin, grid_target, seed,
                                        inertia=_median_of(target, "inertia_ratio"), area_mean=a_mean)
            n_tail = n_long = 0
            if SPLIT_TAIL_AFTER:
                out, n_tail = split_tail(out, pin, grid_target, seed)
            if SPLIT_ELONGATED:
                out, n_long = split_elongated(out, pin, target, n_target=n_whole)
            if (n_cut or n_merged or n_tail or n_long or n_held) and SPLIT_RELAX > 0:
                out = _relax_cuts(pre, out, pin, t, seed)
        elif SPLIT_TAIL_AFTER:
            out, _ = split_tail(out, pin, grid_target, seed)
        out = _merge_small(out, fixed, min_area)
    _, out = np.unique(out, return_inverse=True)
    out = out.reshape(R, C)
    t_area = None if prep.input_labels is None else np.bincount(prep.input_labels.ravel(), minlength=len(prep.input_quat))
    euler = orientations_for_labels(out, fixed, known_euler, cond=prep.cond, target_quat=prep.input_quat, target_area=t_area,
                                    target_disorientation_deg=prep.input_disorientation_deg, seed=seed,
                                    min_neighbour_deg=10.0)
    ref = prep.input_clean
    m = EBSDMap.from_euler(euler, step=ref.step if ref is not None else (1.0, 1.0),
                           phase=ref.phases[0] if ref is not None else None, source="infinityebsd")
    return m, out, output_plan(prep, plan)


def _key(**kw) -> str:
    return hashlib.sha1(json.dumps(kw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def extend_morph(pipe, input_map: EBSDMap | None, size, cond=None, place: str = "center", seed: int = 0,
                 steps: int = 25, sampler: str = "ddim", guidance: float = 1.0, batch: int = 8, resample: int = 2,
                 overlap: float = 0.5, work_dir=None, resume: bool = False, progress: bool = True, log=print,
                 phase: str | None = None, stop_after_waves: int | None = None, guidance_until: float = 1.0,
                 window: int | None = None, resample_input_only: bool = False):
    """Extend ``input_map`` to ``size`` cells (or generate from ``cond`` alone) with a morphology
    model: :func:`prepare` → plan → :func:`run_waves` → :func:`finish`. Returns a
    :class:`~.extend.Result`, or None when stopped early by ``stop_after_waves``."""
    prep = prepare(size, pipe.patch, pipe.model.info.get("grain_size_range_cells"), input_map, cond, place, phase, log)
    win = fit_window(window, pipe.patch, prep.grid)
    plan = make_plan(prep.grid, win, prep.grid_box, overlap=overlap)
    key = _key(size=prep.size, place=place, seed=seed, steps=steps, sampler=sampler, guidance=guidance,
               resample=resample, overlap=overlap, f=prep.f, stretch=list(prep.stretch), decode=getattr(pipe, "decode_options", {}), window=win,
               resample_input_only=resample_input_only,
               guidance_until=guidance_until,
               cond=hashlib.sha1(np.nan_to_num(prep.model_cond).tobytes()).hexdigest(),
               inp=None if prep.grid_labels is None else hashlib.sha1(prep.grid_labels.tobytes()).hexdigest())
    own_tmp = work_dir is None
    if own_tmp:
        work_dir = tempfile.mkdtemp(prefix="infinityebsd-")
    work = LabelWork(work_dir)
    if resume and work.exists():
        work.open(key)
        log(f"resuming after wave {work.state['waves_done']} of {len(plan.waves)}")
    else:
        n_in = int(prep.input_labels.max()) + 1 if prep.input_labels is not None else 0
        work.create({"key": key, "waves_done": 0, "next_label": n_in, "plan": plan.to_json()},
                    labels=(np.int64, prep.grid), field=(np.float32, (pipe.channels,) + tuple(prep.grid)))
        work.labels[:] = -1
        if prep.grid_box is not None:
            r0, c0, hs, ws = prep.grid_box
            work.labels[r0:r0 + hs, c0:c0 + ws] = prep.grid_labels
        work.save()
    finished = run_waves(pipe, plan, work, prep.model_cond, seed, steps, sampler, guidance, batch, resample,
                         progress, stop_after_waves, guidance_until=guidance_until,
                         resample_input_only=resample_input_only)
    if not finished:
        return None
    m, _, out_plan = finish(prep, plan, work, seed, log=log)
    work.remove()
    if own_tmp:
        shutil.rmtree(work_dir, ignore_errors=True)
    return Result(map=m, plan=out_plan, scale=prep.f, input_box=prep.box)

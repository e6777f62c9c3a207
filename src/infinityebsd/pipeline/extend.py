"""Extension of a map to any size, and generation from metrics alone (the paper's sections 3.6–3.7).

With a morphology model the job is :func:`~.morph_extend.extend_morph`. With a latent model,
:func:`extend` runs these steps, each a function:

1. :func:`prepare` — clean the input, choose the grid scale so its grains fall in the model's
   trained range (:func:`grain_scale`, on the *median* grain size), the input on that grid;
2. :func:`~.planner.make_plan` — windows in waves on that grid;
3. :func:`open_work` then :func:`run_plan` — each wave denoised in batches by
   :class:`~.inpaint.InpaintPipeline`, the canvas saved after every wave so that a killed job resumes
   where it stopped (several processes share each wave: :func:`processes`);
4. :func:`finish` — back to the output grid, the input pasted back exactly, the paper's
   post-processing (:func:`postprocess`, the ``clean`` pre-processing) applied to the generated cells
   without touching the input, and optionally matching crystallography (:func:`refine_orientations`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..crystal import quat_to_euler
from ..errors import InputError
from ..grains import clean_with_grains, reconstruct
from ..io import EBSDMap
from ..metrics import conditioning_tensor, grain_table, metrics_of
from .crystallography import match_crystallography, target_disorientation_hist
from .morph_extend import extend_morph, resize_nearest
from .planner import Plan, make_plan, place_input
from .result import Result, clean_input
from .work import Work

__all__ = ["GENERATED_SEGMENT_DEG", "Prepared", "Result", "extend", "finish", "grain_scale", "job_key",
           "open_work", "postprocess", "prepare", "processes", "refine_orientations", "run_plan"]


def grain_scale(median_size: float, info: dict, log=print) -> float:
    """Factor by which to stretch the cell grid so grains of median size ``median_size`` cells (ECD)
    fall in the model's trained range (``info['grain_size_range_cells']``, a range of per-patch
    medians); 1.0 when already inside."""
    rng = info.get("grain_size_range_cells") or info.get("grain_size_range")
    if not rng or not np.isfinite(median_size) or median_size <= 0:
        return 1.0
    lo, hi = float(rng[0]), float(rng[1])
    if lo <= median_size <= hi:
        return 1.0
    target = float(np.sqrt(lo * hi))
    f = target / median_size
    log(f"median grain size {median_size:.1f} cells lies outside the model's range {lo:g}-{hi:g}: generating "
        f"on a grid rescaled by {f:.2f} and resampling back")
    return f


def processes():
    """Accelerate's process state when this job runs as several processes (``accelerate launch`` or
    ``torchrun``), else None. Several processes share each wave's windows and exchange the results."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # without a GPU, cpu=True makes Accelerate set up gloo (else each process would run alone)
    return PartialState(cpu=not torch.cuda.is_available())


@dataclass
class Prepared:
    """What a latent job needs from its input (step 1): sizes, the grid scale ``f`` (grid cells per
    output cell), the conditioning the network reads, and the cleaned input on both grids."""

    size: tuple[int, int]              # output cells
    grid: tuple[int, int]              # the grain-scale grid, at least one window large
    f: float
    cond: np.ndarray
    input_clean: EBSDMap | None = None
    grid_input: np.ndarray | None = None  # the cleaned input's angles on the grain-scale grid
    grid_box: tuple | None = None      # input box on the grain-scale grid
    box: tuple | None = None           # input box on the output grid


def prepare(size, patch: int, info: dict, input_map: EBSDMap | None = None, cond=None, place: str = "center",
            median_size: float | None = None, phase: str | None = None, log=print) -> Prepared:
    """Step 1: clean the input, choose the grain-scale grid and the conditioning.

    ``median_size`` (median grain ECD, cells) sets the scale when there is no input; with an input,
    the input's own median is used. ``cond`` defaults to the cleaned input's conditioning tensor; on a
    rescaled grid the network reads the rescaled input's metrics instead (a given ``cond`` is then
    replaced, and the log says so)."""
    R, C = int(size[0]), int(size[1])
    input_clean = table = None
    if input_map is not None:
        h, w = input_map.shape
        if min(h, w) < patch // 2:
            raise InputError(f"the input is {h}x{w} cells; this model needs at least {patch // 2} cells per side "
                             f"(half its {patch}-cell window)")
        input_clean, _, table = clean_input(input_map, (R, C), phase)
        median_size = float(np.median(table.size))  # the model records median sizes per patch
    elif cond is None:
        raise InputError("nothing to generate from: give an input map or target metrics")
    f = grain_scale(median_size, info, log) if median_size else 1.0
    # generate on a grid stretched by f (nearest neighbour), at least one window large
    grid = (max(patch, int(round(R * f))), max(patch, int(round(C * f))))
    if input_clean is None:
        return Prepared(size=(R, C), grid=grid, f=f, cond=cond)
    hs, ws = int(round(input_clean.shape[0] * f)), int(round(input_clean.shape[1] * f))
    if min(hs, ws) < patch // 2:
        raise InputError("after rescaling to the model's grain-size range the input is smaller than half "
                         "a window; give a larger input map")
    grid_input = resize_nearest(input_clean.euler, (hs, ws))
    if f != 1.0:
        if cond is not None:
            log(f"the given target metrics are replaced by those of the input rescaled by {f:.2f}, "
                "which the model reads at its own grain scale")
        cond = conditioning_tensor(metrics_of(EBSDMap.from_euler(grid_input), clean=True))
    elif cond is None:
        cond = conditioning_tensor(table)
    return Prepared(size=(R, C), grid=grid, f=f, cond=cond, input_clean=input_clean, grid_input=grid_input,
                    grid_box=place_input(grid, (hs, ws), place), box=place_input((R, C), input_clean.shape, place))


class _Work(Work):
    """A latent job's canvas (angles, float32) and mask of the cells known so far."""

    ARRAYS = ("canvas", "known")


def job_key(prep: Prepared, **options) -> str:
    """What a saved job must match to be resumed: the options, the conditioning and the input."""
    cond = hashlib.sha1(np.nan_to_num(np.asarray(prep.cond, np.float32)).tobytes()).hexdigest()
    inp = None if prep.grid_input is None else hashlib.sha1(prep.grid_input.astype(np.float32).tobytes()).hexdigest()
    kw = dict(options, size=list(prep.size), f=prep.f, cond=cond, inp=inp)
    return hashlib.sha1(json.dumps(kw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_work(prep: Prepared, plan: Plan, key: str, work_dir=None, resume: bool = False, state=None,
              log=print) -> tuple[_Work, str | None]:
    """Step 3a: the job's work folder, resumed (same ``key``) or created with the input on the canvas.
    Returns it and the temporary folder made when ``work_dir`` is None (to remove at the end).

    Each process keeps its own canvas (no shared file system needed): the first in ``work_dir``,
    process k in ``work_dir/rank-k``."""
    rank = state.process_index if state is not None else 0
    tmp = None
    if work_dir is None:
        work_dir = tmp = tempfile.mkdtemp(prefix="infinityebsd-")
    work = _Work(Path(work_dir) / f"rank-{rank}" if rank else work_dir)
    resuming = resume and work.exists()
    if resuming:
        work.open(key)
    if state is not None:
        from accelerate.utils import gather_object

        saved = gather_object([work.state["waves_done"] if resuming else -1])
        if resume and len(set(saved)) > 1:
            raise InputError(f"{work_dir}: the processes of this job were stopped at different waves; "
                             "run without --resume to start again")
        if rank == 0:
            log(f"{state.num_processes} processes share the windows of each wave")
    if resuming:
        if rank == 0:
            log(f"resuming after wave {work.state['waves_done']} of {len(plan.waves)}")
        return work, tmp
    # the first process (re)creates work_dir, which holds the others' folders
    if rank > 0:
        state.wait_for_everyone()
    work.create({"key": key, "waves_done": 0, "plan": plan.to_json()},
                canvas=(np.float32, prep.grid + (3,)), known=(np.bool_, prep.grid))
    if prep.grid_input is not None:
        r0, c0, hs, ws = prep.grid_box
        work.canvas[r0:r0 + hs, c0:c0 + ws] = prep.grid_input
        work.known[r0:r0 + hs, c0:c0 + ws] = True
    work.save()
    if rank == 0 and state is not None:
        state.wait_for_everyone()
    return work, tmp


def run_plan(pipe, plan: Plan, work: _Work, cond, seed: int, steps: int, scheduler: str, guidance: float,
             batch: int, progress: bool = True, stop_after_waves: int | None = None, state=None) -> bool:
    """Run the waves of ``plan`` not done yet on the work canvas; returns True when all are done.

    With several processes (``state`` from :func:`processes`), process k denoises windows k, k+n, ...
    of each wave; every process then writes all of the wave's windows into its own canvas. Windows
    carry their own seeds, so the map does not depend on how a wave is split.
    """
    from tqdm.auto import tqdm

    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    done = work.state["waves_done"]
    total = plan.n_windows
    start = sum(len(w) for w in plan.waves[:done])
    bar = tqdm(total=total, initial=start, unit="window", disable=not progress or rank > 0, desc="generating")
    for wi in range(done, len(plan.waves)):
        wave = plan.waves[wi]
        bar.set_postfix(wave=f"{wi + 1}/{len(plan.waves)}")
        mine = wave[rank::world]
        results = []
        for a in range(0, len(mine), max(1, batch)):
            idx = mine[a:a + batch]
            e = np.stack([np.asarray(work.canvas[_window_slice(plan, i)], dtype=np.float64) for i in idx])
            k = np.stack([np.asarray(work.known[_window_slice(plan, i)]) for i in idx])
            out = pipe(e, k, cond, seeds=[seed * 1_000_003 + i for i in idx], steps=steps,
                       scheduler=scheduler, guidance=guidance)
            results += [(i, o.astype(np.float32)) for i, o in zip(idx, out)]
            bar.update(len(idx) * world)
        if world > 1:
            from accelerate.utils import gather_object

            results = gather_object(results)
        for i, o in results:
            # only cells unknown before this wave are written; known ones stay as they are
            s = _window_slice(plan, i)
            work.canvas[s] = np.where(work.known[s][..., None], work.canvas[s], o)
        for i in wave:
            work.known[_window_slice(plan, i)] = True
        if work.end_wave(wi, done, stop_after_waves, len(plan.waves)):
            bar.close()
            return False
    bar.close()
    return True


def _window_slice(plan: Plan, i: int):
    r, c = plan.windows[i]
    return slice(r, r + plan.patch), slice(c, c + plan.patch)


_CLEAN_DEFAULTS = inspect.signature(clean_with_grains).parameters  # min_area: one definition, there

GENERATED_SEGMENT_DEG = 5.0
"""First-segmentation threshold for generated maps: decoded boundaries are blurred over a few cells,
which a 10° neighbour threshold would bridge (merging grains); see ``clean_with_grains``."""


def postprocess(canvas_euler: np.ndarray, input_box, input_clean: EBSDMap | None, **clean_options) -> np.ndarray:
    """The paper's filtering of a generated canvas, leaving the input region exactly as it was.

    The whole canvas is cleaned like ``clean`` (10° grains, 10-cell minimum, mean orientation per
    grain; first segmentation at :data:`GENERATED_SEGMENT_DEG`); the input cells are then restored, and
    generated cells of a grain that reaches into the input take the orientation of that input grain.
    """
    m = EBSDMap.from_euler(canvas_euler)
    clean_options.setdefault("segment_deg", GENERATED_SEGMENT_DEG)
    try:
        cm, g = clean_with_grains(m, **clean_options)
    except InputError:
        min_area = clean_options.get("min_area", _CLEAN_DEFAULTS["min_area"].default)
        raise InputError(f"the generated map holds no grain of at least {min_area} cells, only noise: the "
                         "model is untrained or does not fit these metrics") from None
    out = cm.euler.copy()
    if input_box is None or input_clean is None:
        return out
    r0, c0, h, w = input_box
    out[r0:r0 + h, c0:c0 + w] = input_clean.euler
    inside = np.zeros(g.labels.shape, bool)
    inside[r0:r0 + h, c0:c0 + w] = True
    lab_in = g.labels[inside]
    # for each grain touching the input: the input orientation found most often in it
    n = g.n
    touched = np.unique(lab_in)
    flat_in = np.flatnonzero(inside.ravel())
    for_grain = {}
    order = np.argsort(lab_in, kind="stable")
    sorted_lab = lab_in[order]
    bounds = np.searchsorted(sorted_lab, touched)
    bounds = np.append(bounds, len(sorted_lab))
    eul_flat = out.reshape(-1, 3)
    for k, gl in enumerate(touched):  # one entry per input-touching grain: not a per-cell loop
        cells = flat_in[order[bounds[k]:bounds[k + 1]]]
        vals, counts = np.unique(np.round(eul_flat[cells], 6), axis=0, return_counts=True)
        for_grain[gl] = vals[counts.argmax()]
    gen = ~inside
    lab_gen = g.labels[gen]
    has = np.zeros(n, bool)
    has[touched] = True
    repl = np.zeros((n, 3))
    for gl, v in for_grain.items():
        repl[gl] = v
    sel = has[lab_gen]
    gen_cells = out[gen]
    gen_cells[sel] = repl[lab_gen[sel]]
    out[gen] = gen_cells
    return out


def refine_orientations(euler, input_box, input_clean, cond, seed=0):
    """Matching crystallography on a post-processed canvas; input grains keep their orientations."""
    m = EBSDMap.from_euler(euler)
    g = reconstruct(m)
    t = grain_table(g.labels, g.quat)
    editable = np.ones(g.n, bool)
    target_q = target_d = None
    if input_box is not None:
        r0, c0, h, w = input_box
        editable[np.unique(g.labels[r0:r0 + h, c0:c0 + w])] = False
    if input_clean is not None:
        gi = reconstruct(input_clean)
        ti = grain_table(gi.labels, gi.quat)
        target_q, target_d = gi.quat, ti.disorientation_deg
    hist = target_disorientation_hist(cond, target_d)
    q = match_crystallography(t.pairs, g.quat, editable, hist, target_quat=target_q,
                              C=None if cond is None else np.asarray(cond), seed=seed)
    out = euler.copy()
    sel = editable[g.labels]
    out[sel] = quat_to_euler(q)[g.labels[sel]]
    return out


def finish(prep: Prepared, plan: Plan, work: _Work, refine: bool = False, seed: int = 0) -> Result:
    """Step 4: the canvas on the output grid with the input pasted back exactly, post-processed
    (:func:`postprocess`), optionally refined (:func:`refine_orientations`), and the plan in output cells."""
    R, C = prep.size
    canvas = np.asarray(work.canvas, dtype=np.float64)
    dr = dc = 0
    if prep.f != 1.0:
        canvas = resize_nearest(canvas, (R, C))
    elif canvas.shape[:2] != (R, C):
        # a side under one window was generated on a window-sized grid: the output is the part of
        # it whose input box falls on the input's, so the input meets the context generated for it
        if prep.box is not None:
            dr, dc = prep.grid_box[0] - prep.box[0], prep.grid_box[1] - prep.box[1]
        canvas = canvas[dr:dr + R, dc:dc + C]
    if prep.input_clean is not None:
        r0, c0, h, w = prep.box
        canvas[r0:r0 + h, c0:c0 + w] = prep.input_clean.euler
    euler = postprocess(canvas, prep.box, prep.input_clean)
    if refine:
        euler = refine_orientations(euler, prep.box, prep.input_clean, prep.cond, seed)
    ref = prep.input_clean
    m = EBSDMap.from_euler(euler, step=ref.step if ref is not None else (1.0, 1.0),
                           phase=ref.phases[0] if ref is not None else None, source="infinityebsd")
    f = prep.f
    if f != 1.0:  # the plan in output cells, for pictures and seam checks
        plan = Plan(canvas=(R, C), patch=int(round(plan.patch / f)), input_box=prep.box,
                    windows=[(int(round(r / f)), int(round(c / f))) for r, c in plan.windows], waves=plan.waves)
    elif prep.box is not None or (dr, dc) != (0, 0) or plan.canvas != (R, C):
        plan = Plan(canvas=(R, C), patch=plan.patch, input_box=prep.box,
                    windows=[(r - dr, c - dc) for r, c in plan.windows], waves=plan.waves)
    return Result(map=m, plan=plan, scale=f, input_box=prep.box)


def extend(pipe, input_map: EBSDMap | None, size, cond=None, place: str = "center", seed: int = 0,
           steps: int | None = None, scheduler: str | None = None, guidance: float | None = None, batch: int = 8,
           overlap: float | None = None, work_dir=None, resume: bool = False, progress: bool = True,
           median_size: float | None = None, log=print, phase: str | None = None,
           stop_after_waves: int | None = None, refine: bool = False, resample: int | None = None,
           guidance_until: float | None = None, window: int | None = None) -> Result | None:
    """Extend ``input_map`` (or generate from ``cond`` alone when it is None) to ``size`` cells.

    With a morphology model (:class:`~.morph.MorphPipeline`, the default) the job runs
    :func:`~.morph_extend.extend_morph`: the grain network is generated and segmented, orientations
    come from the input and matching crystallography (``refine`` is implied); ``scheduler``,
    ``steps``, ``resample``, ``overlap`` (of ``window``), ``guidance``, ``guidance_until`` (the guided fraction of
    the steps) and ``window`` (the inference window's side) left None take the model folder's sampling settings (``MorphPipeline.sampling``;
    ``guidance_generate`` when there is no input map). The rest of this docstring is about the latent model (whose
    defaults are DPM-Solver, 20 steps, overlap 0.5).

    The steps: :func:`prepare` → :func:`~.planner.make_plan` → :func:`open_work` and :func:`run_plan`
    → :func:`finish`. The input is cleaned first; its cells are never changed. ``cond`` defaults to
    the conditioning tensor of the cleaned input. ``median_size`` (median grain ECD in cells) sets the
    grid scale when there is no input. ``work_dir`` holds the resumable state (required for ``resume``).
    ``refine`` re-assigns the generated grains' orientations to match the target's orientation and
    disorientation statistics (:mod:`.crystallography`). Returns None when stopped early by
    ``stop_after_waves`` (tests of resumption), and in all processes but the first when the job runs
    as several processes (:func:`processes`).
    """
    if getattr(pipe, "space", None) == "pixel":
        if processes() is not None:
            raise InputError("morphology models run as one process; start without accelerate launch/torchrun")
        d = pipe.sampling
        return extend_morph(pipe, input_map, size, cond=cond, place=place, seed=seed, steps=steps or d["steps"],
                            sampler=scheduler or d["sampler"], batch=batch,
                            guidance=(d["guidance"] if input_map is not None else d["guidance_generate"])
                            if guidance is None else guidance,
                            resample=d["resample"] if resample is None else resample,
                            overlap=d["overlap"] if overlap is None else overlap, work_dir=work_dir,
                            resume=resume, progress=progress, log=log, phase=phase,
                            stop_after_waves=stop_after_waves,
                            guidance_until=d["guidance_until"] if guidance_until is None else guidance_until,
                            window=d.get("window") if window is None else window,
                            resample_input_only=bool(d.get("resample_input_only", False)))
    steps = steps or 20
    scheduler = scheduler or "dpm"
    overlap = 0.5 if overlap is None else overlap
    guidance = 1.0 if guidance is None else guidance
    prep = prepare(size, pipe.patch, pipe.model.info, input_map, cond, place, median_size, phase, log)
    plan = make_plan(prep.grid, pipe.patch, prep.grid_box, overlap=overlap)
    key = job_key(prep, place=place, seed=seed, refine=refine, steps=steps, scheduler=scheduler, guidance=guidance,
                  overlap=overlap)
    state = processes()
    work, tmp = open_work(prep, plan, key, work_dir, resume, state, log)
    finished = run_plan(pipe, plan, work, prep.cond, seed, steps, scheduler, guidance, batch, progress,
                        stop_after_waves, state)
    if state is not None:
        state.wait_for_everyone()
        if state.process_index > 0:  # the first process post-processes and writes the map
            if finished:
                work.remove()
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
            return None
    if not finished:
        return None
    res = finish(prep, plan, work, refine, seed)
    work.remove()  # the first process's folder is work_dir itself (or the temporary one)
    return res

"""Extension of a map to any size, and generation from metrics alone (the paper's sections 3.6–3.7).

Both run the same loop: a :class:`~.planner.Plan` of windows in waves, each wave denoised in batches
by :class:`~.inpaint.InpaintPipeline`, the canvas saved after every wave so that a killed job
resumes where it stopped, then the paper's post-processing (the ``clean`` pre-processing) applied to
the generated cells without touching the input.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..grains import clean_with_grains
from ..io import EBSDMap
from ..io._grid import atomic_write_bytes
from ..metrics import conditioning_tensor, grain_table, metrics_of
from .planner import Plan, make_plan, place_input


@dataclass
class Result:
    map: EBSDMap
    plan: Plan
    scale: float
    input_box: tuple | None


def _resize_nearest(a: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resampling of the first two axes to ``shape``."""
    r = np.minimum((np.arange(shape[0]) + 0.5) * a.shape[0] / shape[0], a.shape[0] - 1).astype(int)
    c = np.minimum((np.arange(shape[1]) + 0.5) * a.shape[1] / shape[1], a.shape[1] - 1).astype(int)
    return a[r][:, c]


def grain_scale(mean_size: float, info: dict, log=print) -> float:
    """Factor by which to stretch the cell grid so grains of typical size ``mean_size`` cells (ECD)
    fall in the model's trained range (``info['grain_size_range_cells']``); 1.0 when already inside."""
    rng = info.get("grain_size_range_cells") or info.get("grain_size_range")
    if not rng or not np.isfinite(mean_size) or mean_size <= 0:
        return 1.0
    lo, hi = float(rng[0]), float(rng[1])
    if lo <= mean_size <= hi:
        return 1.0
    target = float(np.sqrt(lo * hi))
    f = target / mean_size
    log(f"grain size {mean_size:.1f} cells lies outside the model's range {lo:g}-{hi:g}: generating on a "
        f"grid rescaled by {f:.2f} and resampling back")
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


class _Work:
    """The resumable state of a job: canvas and known mask as memory-mapped .npy files + state.json."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def exists(self):
        return (self.folder / "state.json").exists()

    def create(self, shape, state):
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.canvas = np.lib.format.open_memmap(self.folder / "canvas.npy", "w+", np.float32, tuple(shape) + (3,))
        self.known = np.lib.format.open_memmap(self.folder / "known.npy", "w+", np.bool_, tuple(shape))
        self.state = state

    def open(self):
        self.state = json.loads((self.folder / "state.json").read_text())
        self.canvas = np.load(self.folder / "canvas.npy", mmap_mode="r+")
        self.known = np.load(self.folder / "known.npy", mmap_mode="r+")

    def save(self):
        self.canvas.flush()
        self.known.flush()
        atomic_write_bytes(self.folder / "state.json", [json.dumps(self.state).encode()])

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


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
        work.state["waves_done"] = wi + 1
        work.save()
        if stop_after_waves is not None and wi + 1 - done >= stop_after_waves and wi + 1 < len(plan.waves):
            bar.close()
            return False
    bar.close()
    return True


def _window_slice(plan: Plan, i: int):
    r, c = plan.windows[i]
    return slice(r, r + plan.patch), slice(c, c + plan.patch)


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
        raise InputError("the generated map holds no grain of at least 10 cells, only noise: the model "
                         "is untrained or does not fit these metrics") from None
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
    from ..crystal import quat_to_euler
    from ..grains import reconstruct
    from .crystallography import match_crystallography, target_disorientation_hist

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


def _options_hash(**kw) -> str:
    return hashlib.sha1(json.dumps(kw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def extend(pipe, input_map: EBSDMap | None, size, cond=None, place: str = "center", seed: int = 0,
           steps: int | None = None, scheduler: str | None = None, guidance: float = 1.0, batch: int = 8,
           overlap: float = 0.5, work_dir=None, resume: bool = False, progress: bool = True,
           mean_size: float | None = None, log=print, phase: str | None = None,
           stop_after_waves: int | None = None, refine: bool = False, resample: int | None = None) -> Result | None:
    """Extend ``input_map`` (or generate from ``cond`` alone when it is None) to ``size`` cells.

    With a morphology model (:class:`~.morph.MorphPipeline`, the default) the job runs
    :func:`~.morph_extend.extend_morph`: the grain network is generated and segmented, orientations
    come from the input and matching crystallography (``refine`` is implied); ``scheduler`` None
    means its DDIM sampler with ``resample`` RePaint passes (default 2), ``steps`` None 25.
    The rest of this docstring is about the latent model.

    The input is cleaned first; its cells are never changed. ``cond`` defaults to the conditioning
    tensor of the cleaned input. ``work_dir`` holds the resumable state (required for ``resume``).
    ``refine`` re-assigns the generated grains' orientations to match the target's orientation and
    disorientation statistics (:mod:`.crystallography`). Returns None when stopped early by
    ``stop_after_waves`` (tests of resumption), and in all processes but the first when the job runs
    as several processes (:func:`processes`).
    """
    if getattr(pipe, "space", None) == "pixel":
        from .morph_extend import extend_morph

        if processes() is not None:
            raise InputError("morphology models run as one process; start without accelerate launch/torchrun")
        return extend_morph(pipe, input_map, size, cond=cond, place=place, seed=seed, steps=steps or 25,
                            sampler=scheduler or "ddim", guidance=guidance, batch=batch,
                            resample=2 if resample is None else resample, overlap=overlap, work_dir=work_dir,
                            resume=resume, progress=progress, log=log, phase=phase,
                            stop_after_waves=stop_after_waves)
    steps = steps or 20
    scheduler = scheduler or "dpm"
    R, C = int(size[0]), int(size[1])
    P = pipe.patch
    info = pipe.model.info
    input_clean = None
    if input_map is not None:
        h, w = input_map.shape
        if min(h, w) < P // 2:
            raise InputError(f"the input is {h}x{w} cells; this model needs at least {P // 2} cells per side "
                             f"(half its {P}-cell window)")
        if h > R or w > C:
            raise InputError(f"target size {R}x{C} is smaller than the input {h}x{w}")
        input_clean, g = clean_with_grains(input_map, phase=phase)
        table = grain_table(g.labels, g.quat, input_clean.step)
        if cond is None:
            cond = conditioning_tensor(table)
        mean_size = float(np.median(table.size))  # the model records median sizes per patch
    elif cond is None:
        raise InputError("nothing to generate from: give an input map or target metrics")
    f = grain_scale(mean_size, info, log) if mean_size else 1.0
    # generate on a grid stretched by f (nearest neighbour), at least one window large
    Rs, Cs = max(P, int(round(R * f))), max(P, int(round(C * f)))
    box = None
    src = None
    if input_clean is not None:
        hs, ws = int(round(input_clean.shape[0] * f)), int(round(input_clean.shape[1] * f))
        if min(hs, ws) < P // 2:
            raise InputError("after rescaling to the model's grain-size range the input is smaller than half "
                             "a window; give a larger input map")
        src = _resize_nearest(input_clean.euler, (hs, ws))
        if f != 1.0:
            cond = conditioning_tensor(metrics_of(EBSDMap.from_euler(src), clean=True))
        box = place_input((Rs, Cs), (hs, ws), place)
    plan = make_plan((Rs, Cs), P, box, overlap=overlap)
    opts = dict(size=[R, C], place=place, seed=seed, refine=refine, steps=steps, scheduler=scheduler, guidance=guidance,
                overlap=overlap, f=f, cond=hashlib.sha1(np.nan_to_num(np.asarray(cond, np.float32)).tobytes()).hexdigest(),
                inp=None if src is None else hashlib.sha1(src.astype(np.float32).tobytes()).hexdigest())
    key = _options_hash(**opts)
    state = processes()
    rank = state.process_index if state is not None else 0
    own_tmp = work_dir is None
    if own_tmp:
        import tempfile

        work_dir = tempfile.mkdtemp(prefix="infinityebsd-")
    # each process keeps its own canvas (no shared file system needed): the first in work_dir,
    # process k in work_dir/rank-k
    work = _Work(Path(work_dir) / f"rank-{rank}" if rank else work_dir)
    resuming = resume and work.exists()
    if resuming:
        work.open()
        if work.state.get("key") != key:
            raise InputError(f"{work.folder}: the saved job was started with other options or input; run "
                             "without --resume to start again")
    if state is not None:
        from accelerate.utils import gather_object

        saved = gather_object([work.state["waves_done"] if resuming else -1])
        if resume and len(set(saved)) > 1:
            raise InputError(f"{work_dir}: the processes of this job were stopped at different waves; "
                             "run without --resume to start again")
    if state is not None and rank == 0:
        log(f"{state.num_processes} processes share the windows of each wave")
    if resuming:
        if rank == 0:
            log(f"resuming after wave {work.state['waves_done']} of {len(plan.waves)}")
    else:
        # the first process (re)creates work_dir, which holds the others' folders
        if rank > 0:
            state.wait_for_everyone()
        work.create((Rs, Cs), {"key": key, "waves_done": 0, "plan": plan.to_json()})
        if src is not None:
            r0, c0, hs, ws = box
            work.canvas[r0:r0 + hs, c0:c0 + ws] = src
            work.known[r0:r0 + hs, c0:c0 + ws] = True
        work.save()
        if rank == 0 and state is not None:
            state.wait_for_everyone()
    finished = run_plan(pipe, plan, work, cond, seed, steps, scheduler, guidance, batch, progress,
                        stop_after_waves, state)
    if state is not None:
        state.wait_for_everyone()
        if rank > 0:  # the first process post-processes and writes the map
            if finished:
                work.remove()
                if own_tmp:
                    shutil.rmtree(work_dir, ignore_errors=True)
            return None
    if not finished:
        return None
    canvas = np.asarray(work.canvas, dtype=np.float64)
    if f != 1.0:
        canvas = _resize_nearest(canvas, (R, C))
    out_box = None
    if input_clean is not None:
        h, w = input_clean.shape
        out_box = place_input((R, C), (h, w), place)
        r0, c0 = out_box[:2]
        canvas[r0:r0 + h, c0:c0 + w] = input_clean.euler
    euler = postprocess(canvas, out_box, input_clean)
    if refine:
        euler = refine_orientations(euler, out_box, input_clean, cond, seed)
    ref = input_clean
    m = EBSDMap.from_euler(euler, step=ref.step if ref is not None else (1.0, 1.0),
                           phase=ref.phases[0] if ref is not None else None, source="infinityebsd")
    if f != 1.0:  # the plan in output cells, for pictures and seam checks
        plan = Plan(canvas=(R, C), patch=int(round(P / f)), input_box=out_box,
                    windows=[(int(round(r / f)), int(round(c / f))) for r, c in plan.windows], waves=plan.waves)
    elif out_box is not None:
        plan.input_box = out_box
    work.remove()
    return Result(map=m, plan=plan, scale=f, input_box=out_box)

"""Generation commands: extend a map to any size, or generate one from metrics alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .._shared import atomic_write_bytes
from ..errors import InputError
from ..io import write_ctf
from ..pipeline.planner import describe, make_plan, place_input
from . import main, seed_option
from .params import OutputFile, OutputFolder, claim_side_files, existing, parse_size, read_map_checked, side_files, wrote

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "pretrained" / "morph"

# The models, the pipelines that run them (torch, diffusers), the metrics (scipy, scikit-image) and the
# figures (matplotlib) are imported inside the commands that need them: `infinityebsd --help` stays fast.


# Written beside -o OUT.ctf; never replace an existing file unless --force (see params.py).
SIDE_OUTPUTS = (".png", ".plan.json", ".metrics.json")
PLAN_OUTPUTS = (".plan.png",)


# What extend and generate write, listed once in their help (where their docstrings say {outputs};
# _generation_options puts it there).
OUTPUTS_HELP = """\b
    Writes -o OUT.ctf and, beside it, side files that never replace an existing file unless --force:
      OUT.png            the IPF-Z picture
      OUT.plan.json      the window plan (read by `infinityebsd evaluate`)
      OUT.metrics.json   the eight metrics of the result
      OUT.plan.png       with --plan, instead of all the above
      OUT.work/          the resumable state while the job runs"""


def _with_outputs_help(f):
    f.__doc__ = f.__doc__.replace("{outputs}", OUTPUTS_HELP)
    return f


def claim_outputs(output, plan_only, force) -> set[str]:
    """Check, before any work, that the side files of ``output`` replace nothing unless --force; the
    outputs that exist now (to say later which were replaced)."""
    sides = side_files(output, PLAN_OUTPUTS if plan_only else SIDE_OUTPUTS)
    claim_side_files(output, sides, force)
    return existing(output, *sides)


def _generation_options(f):
    opts = [
        click.option("--force", is_flag=True,
                     help="Replace existing side files (OUT.png, OUT.plan.json, OUT.metrics.json, OUT.plan.png)."),
        click.option("--report", type=OutputFolder(), help="Also write the evaluation report into this folder."),
        click.option("--refine/--no-refine", default=True, show_default=True,
                     help="Re-assign generated grains' orientations to match the target's texture and "
                          "disorientation statistics (matching crystallography)."),
        click.option("--plan", "plan_only", is_flag=True, help="Print and draw the window plan, generate nothing."),
        click.option("--resume", is_flag=True, help="Continue a killed job (same options) from its last wave."),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                     help="Where the model runs; cuda uses the GPU (bf16), several under accelerate launch."),
        click.option("--batch", type=click.IntRange(1), default=8, show_default=True, help="Windows per forward pass."),
        click.option("--window", type=click.IntRange(16, 1024), default=None,
                     help="Morphology models: side of the windows denoised at once, in grain-scale cells "
                          "(default: the model folder's, 128 for the shipped one, trained on 64; larger "
                          "windows overlap less, so the job is faster)."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
                     help="Morphology models on the CPU: auto runs the network in bfloat16 where the CPU "
                          "has native bf16 (AVX-512 BF16 or AMX), fp32 elsewhere; fp32 forces full "
                          "precision (slower); bf16 forces bfloat16 (slow where emulated)."),
        click.option("--overlap", type=click.FloatRange(0.0, 0.9), default=None,
                     help="Fraction of a window shared with its neighbour on the plan's grid (default: the "
                          "model folder's setting for morphology models, 0.1875 of a 128-cell window for the "
                          "shipped one; 0.5 for latent ones)."),
        click.option("--guidance", type=float, default=None,
                     help="Classifier-free guidance on the metrics (1 = none; default: the model folder's "
                          "setting for morphology models, 3 for the shipped one when generating from metrics "
                          "and 1 when extending a map; 1 for latent models)."),
        click.option("--guidance-until", type=click.FloatRange(0.0, 1.0), default=None,
                     help="Morphology models: guide only the first this fraction of the steps (default: the "
                          "model folder's, 0.3 for the shipped one; 1 = every step, which follows grain "
                          "shapes more closely at some cost in size fidelity and time)."),
        click.option("--scheduler", type=click.Choice(["dpm", "pndm", "ddim"]), default=None,
                     help="Sampler. Default: the model folder's setting for morphology models (the shipped one: "
                          "ddim with RePaint resampling), dpm (multistep DPM-Solver) for latent models; pndm with "
                          "50 steps is the paper's."),
        click.option("--steps", type=click.IntRange(1, 1000), default=None,
                     help="Denoising steps per window (default: the model folder's setting for morphology "
                          "models, 10 for the shipped one; 20 for latent ones): more is slower and can be finer."),
        click.option("--resample", type=click.IntRange(1, 10), default=None,
                     help="Morphology models with --scheduler ddim: RePaint passes per step over the first "
                          "half of the steps, so new cells agree with the known ones (default: the model "
                          "folder's, 2 for the shipped one; 1 = plain known-region replacement)."),
        click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
                     help="Model folder (default: the model shipped with the package)."),
        click.option("--method", type=click.Choice(["model", "growth"]), default="model", show_default=True,
                     help="model: the diffusion model; growth: physics-based (grain growth seeded to the "
                          "target sizes, matching crystallography), needs no model."),
        seed_option,
        click.option("-o", "--output", required=True, type=OutputFile("ctf"), metavar="OUT.ctf",
                     help="Output CTF file (replaced if it exists); side files go beside it."),
        click.option("--size", "size_text", required=True,
                     help="Target size ROWSxCOLS (Y x X) in cells; one number gives a square."),
    ]
    for o in opts:
        f = o(f)
    return _with_outputs_help(f)


def target_step(path) -> tuple[float, float]:
    """The cell size (µm, (y, x)) a target-metrics JSON asks for: its "step" (a number, or [y, x] as
    `infinityebsd metrics --json` writes it), else 1 µm. Call after cond_from_json, which has checked
    the file and, with "units": "um", that the step is a positive number."""
    doc = json.loads(Path(path).read_text())
    s = doc.get("step")
    if isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0:
        return float(s), float(s)
    if (isinstance(s, list) and len(s) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    and v > 0 for v in s)):
        return float(s[0]), float(s[1])
    if s is not None:
        raise InputError(f"{path}: 'step' must be a positive number of µm per cell (or [y, x]), not {s!r}")
    return 1.0, 1.0


def load_pipeline(model_dir, device, precision: str = "auto"):
    from ..models.ldm import load_model, read_info
    from ..models.morph import is_pixel_model
    from ..pipeline.inpaint import InpaintPipeline
    from ..pipeline.morph import MorphPipeline

    folder = Path(model_dir) if model_dir else DEFAULT_MODEL
    if not folder.is_dir():
        if model_dir:
            raise InputError(f"{folder}: no such model folder")
        raise InputError("no model is shipped with this installation; pass --model DIR (train one with "
                         "'infinityebsd train-vae' and 'infinityebsd train')")
    try:
        pixel = is_pixel_model(read_info(folder))
    except ValueError:  # a corrupt infinityebsd.json
        raise InputError(f"{folder}: its infinityebsd.json is not valid JSON; is it a complete infinityebsd model?") from None
    needed = ("unet", "metric_encoder", "scheduler") if pixel else ("vae", "unet", "metric_encoder", "scheduler")
    for part in needed:
        if not (folder / part).is_dir():
            raise InputError(f"{folder}: model folder lacks '{part}/'; is it a complete infinityebsd model?")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda, but torch sees no CUDA device; use --device cpu")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # one GPU per process under accelerate launch
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    try:
        model = load_model(folder, device="cpu")
    except InputError:
        raise
    except Exception as exc:  # corrupt or truncated weights, bad config
        raise InputError(f"{folder}: cannot load the model ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if pixel:
        return MorphPipeline(model, device=device, dtype=dtype, folder=folder, precision=precision)
    return InpaintPipeline(model, device=device, dtype=dtype)


def write_outputs(result, path) -> list[str]:
    """The CTF, its plan (``<stem>.plan.json``), IPF picture (``<stem>.png``) and metrics JSON."""
    from ..evaluate.plots import plot_ipf
    from ..metrics import distributions, metrics_document, metrics_of

    path = Path(path)
    stem = path.with_suffix("")
    write_ctf(result.map, path)
    atomic_write_bytes(f"{stem}.plan.json", [result.plan.to_json().encode()])
    plot_ipf(result.map, f"{stem}.png", boxes=[result.input_box] if result.input_box else [])
    t = metrics_of(result.map, clean=False)
    atomic_write_bytes(f"{stem}.metrics.json", [json.dumps(metrics_document(t, distributions(t))).encode()])
    return [str(path), f"{stem}.plan.json", f"{stem}.png", f"{stem}.metrics.json"]


def _show_plan(plan, output):
    from ..evaluate.plots import _pyplot, save_figure

    click.echo(describe(plan))
    for k, wave in enumerate(plan.waves):
        click.echo(f"  wave {k + 1}: {len(wave)} windows at " + ", ".join(f"({plan.windows[i][0]},{plan.windows[i][1]})" for i in wave[:6])
                   + (" ..." if len(wave) > 6 else ""))
    plt = _pyplot()
    R, C = plan.canvas
    fig, ax = plt.subplots(figsize=(6, 6 * R / C))
    ax.set_xlim(0, C)
    ax.set_ylim(R, 0)
    cmap = plt.get_cmap("viridis", max(2, len(plan.waves)))
    for k, wave in enumerate(plan.waves):
        for i in wave:
            r, c = plan.windows[i]
            pr, pc = plan.window_shape
            ax.add_patch(plt.Rectangle((c, r), pc, pr, fill=False, ec=cmap(k), lw=1))
            ax.text(c + pc / 2, r + pr / 2, str(k + 1), ha="center", va="center", fontsize=6, color=cmap(k))
    if plan.input_box:
        r0, c0, h, w = plan.input_box
        ax.add_patch(plt.Rectangle((c0, r0), w, h, color="red", alpha=0.3))
    ax.set_title("windows, numbered by wave; input in red")
    out = str(Path(output).with_suffix("")) + ".plan.png"
    save_figure(fig, out)
    plt.close(fig)
    click.echo(f"wrote {out}")


def _run(pipe, input_map, size, cond, median_size, output, seed, steps, scheduler, guidance, batch, overlap,
         resume, plan_only, report, place="center", phase=None, target_map=None, refine=False, step=None,
         before=frozenset(), resample=None, mean_size=None, guidance_until=None, window=None):
    """Plan or run the generation and write the outputs. ``step`` (µm, (y, x)) is the output's cell
    size: the input map's for extend, the target's for generate. Without an input map, the target's
    median grain size (cells) sets a model's grid scale and its mean is grain growth's size target."""
    from ..pipeline import extend as extend_module  # looked up at call time: tests stand in for extend()

    if plan_only and pipe is None:
        raise InputError("--plan draws the model's windows; --method growth has none")
    if window is not None and getattr(pipe, "space", None) != "pixel":
        raise InputError("--window sets a morphology model's inference window; this model (or method) has none")
    if plan_only:
        if getattr(pipe, "space", None) == "pixel":  # windows at grain scale, drawn on the output grid
            from ..pipeline.morph_extend import plan_morph

            if overlap is None:
                overlap = pipe.sampling["overlap"]
            _show_plan(plan_morph(pipe, input_map, size, cond=cond, place=place, overlap=overlap, phase=phase,
                                  log=lambda s: click.echo(s, err=True),
                                  window=pipe.sampling.get("window") if window is None else window), output)
            return
        box = None if input_map is None else place_input(size, input_map.shape, place)
        _show_plan(make_plan(size, pipe.patch, box, overlap=0.5 if overlap is None else overlap), output)
        return
    work = str(Path(output).with_suffix("")) + ".work"
    if pipe is None:  # --method growth
        from ..pipeline.growth import extend_growth

        res = extend_growth(input_map, size, cond=cond, place=place, seed=seed, work_dir=work, resume=resume,
                            mean_size=mean_size, log=lambda s: click.echo(s, err=True), phase=phase)
    else:
        if getattr(pipe, "space", None) == "pixel" and getattr(getattr(pipe, "device", None), "type", None) == "cpu":
            # the precision sets the speed on the CPU (bfloat16 only where the CPU computes it natively)
            click.echo(f"network in {str(pipe.dtype).replace('torch.', '')} on the CPU (--precision)", err=True)
        res = extend_module.extend(pipe, input_map, size, cond=cond, place=place, seed=seed, steps=steps,
                                   scheduler=scheduler, guidance=guidance, batch=batch, overlap=overlap,
                                   work_dir=work, resume=resume, median_size=median_size,
                                   log=lambda s: click.echo(s, err=True), phase=phase, refine=refine,
                                   resample=resample, guidance_until=guidance_until, window=window)
    if res is None:  # a helper process of a multi-process job: the first one writes the outputs
        return
    if step is not None:  # the generated cells have the target's size, whatever extend() assumed
        res.map.step = (float(step[0]), float(step[1]))
    for p in write_outputs(res, output):
        wrote(p, before)
    if report:
        from ..evaluate.report import evaluate

        target = target_map if target_map is not None else input_map
        evaluate(res.map, target=target, plan=res.plan, report_dir=report, seed=seed,
                 progress=lambda s: click.echo(f"report: {s}", err=True))
        click.echo(f"wrote report to {report}")


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@_generation_options
@click.option("--place", default="center", show_default=True,
              help="Where the input sits: center, top-left, top, top-right, left, right, bottom-left, bottom, bottom-right.")
@click.option("--phase", default=None, metavar="NAME", help="Phase to use from a multiphase map.")
def extend(map_path, size_text, output, seed, model_dir, steps, scheduler, guidance, overlap, batch, device,
           resume, plan_only, report, force, refine, place, phase, method, resample, guidance_until, window,
           precision):
    """Extend MAP to --size cells, guided by MAP's own metrics (as in the paper).

    The input is cleaned like `clean` and never changed; the rest is generated window by window in
    waves, then filtered the same way. The output has MAP's step (cell size in µm).

    {outputs}

    \b
    Example:
      infinityebsd extend small.ctf --size 1024x1024 -o big.ctf
      infinityebsd extend small.ctf --size 1024x3000 --place top-left -o strip.ctf
      infinityebsd extend small.ctf --size 8192x8192 -o huge.ctf --resume

    \b
    On 4 GPUs, sharing each wave's windows:
      accelerate launch --num_processes 4 -m infinityebsd extend small.ctf --size 8192x8192 -o huge.ctf --device cuda
    """
    size = parse_size(size_text)
    before = claim_outputs(output, plan_only, force)
    m = read_map_checked(map_path)
    pipe = load_pipeline(model_dir, device, precision) if method == "model" else None
    _run(pipe, m, size, None, None, output, seed, steps, scheduler, guidance, batch, overlap, resume,
         plan_only, report, place=place, phase=phase, refine=refine, step=m.step, before=before,
         resample=resample, guidance_until=guidance_until, window=window)


@main.command()
@_generation_options
@click.option("--like", "like_path", type=click.Path(dir_okay=False), help="Reference map whose metrics to follow.")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False),
              help="JSON of target metrics (any subset of the eight; see examples/target_metrics.json). "
                   "Without inertia_ratio the morphology model draws equiaxed grains.")
@click.option("--phase", default=None, metavar="NAME", help="Phase of a multiphase reference map.")
def generate(size_text, output, seed, model_dir, steps, scheduler, guidance, overlap, batch, device, resume,
             plan_only, report, force, refine, like_path, metrics_path, phase, method, resample, guidance_until,
             window, precision):
    """Generate a new map of --size cells from metrics alone: a reference map's, or a JSON file's.

    The output's step (cell size in µm) is the reference map's, or the JSON file's "step" (1 µm if it
    gives none; sizes in µm, "units": "um", are converted to cells with it).

    {outputs}

    \b
    Example:
      infinityebsd generate --like reference.ctf --size 3072x3072 -o new.ctf
      infinityebsd generate --metrics target.json --size 1024x1024 -o new.ctf
    """
    from ..pipeline.targets import target_from_json, target_from_map

    if bool(like_path) == bool(metrics_path):
        raise InputError("give exactly one of --like MAP or --metrics FILE.json")
    if report and metrics_path:
        raise InputError("--report needs a target map (--like); for --metrics targets run "
                         "'infinityebsd evaluate MAP --target-metrics FILE' on the result")
    size = parse_size(size_text)
    before = claim_outputs(output, plan_only, force)
    ref = None
    if like_path:
        ref = read_map_checked(like_path)
        target = target_from_map(ref, phase)
        step = ref.step
    else:
        target = target_from_json(metrics_path)
        step = target_step(metrics_path)
    pipe = load_pipeline(model_dir, device, precision) if method == "model" else None
    _run(pipe, None, size, target.cond, target.median_size, output, seed, steps, scheduler, guidance, batch, overlap,
         resume, plan_only, report, target_map=ref, refine=refine, step=step, before=before, resample=resample,
         mean_size=target.mean_size, guidance_until=guidance_until, window=window)

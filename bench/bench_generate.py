"""Generation speed: one window, and whole extensions, batched waves against one window at a time.

Uses the model folder given (default: the shipped model; random weights of any config are fine for
timing, see --random CONFIG). Prints seconds per figure and the speed-up of batching (the peer is the
same plan run with --batch 1 in the same process).
The large jobs of the issue (512→1024, →2048, →3072 from a 512×512 grain-growth map, and a
2048×2048 map generated from metrics) run batched only: their one-window-at-a-time peers would take
longer than the batched runs by the ratio measured on the small sizes. Times include planning,
post-processing (cleaning of the whole canvas) and matching crystallography is off.
Run: python bench/bench_generate.py [--model DIR | --random compact] [--device cpu|cuda] [--steps 20]
         [--large 1024,2048,3072] [--generate 2048]
"""

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch

import infinityebsd as ie
from infinityebsd.grains import clean
from infinityebsd.pipeline.extend import extend
from infinityebsd.pipeline.inpaint import InpaintPipeline

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "src", "infinityebsd", "examples", "example_256.ctf")


def load(args):
    from infinityebsd.models.ldm import (
        build_metric_encoder, build_scheduler, build_unet, build_vae, load_config, load_model,
    )

    if args.random:
        cfg = load_config(args.random)
        torch.manual_seed(0)
        from infinityebsd.models.ldm import LatentDiffusionModel

        model = LatentDiffusionModel(info={"patch": cfg["patch"], "representation": cfg["representation"],
                                           "latent_scaling_factor": 1.0},
                                     vae=build_vae(cfg).eval(), unet=build_unet(cfg).eval(),
                                     metric_encoder=build_metric_encoder(cfg).eval(), scheduler=build_scheduler(cfg))
        name = f"random {args.random}"
    else:
        from infinityebsd.cli.generate import DEFAULT_MODEL

        folder = args.model or DEFAULT_MODEL
        model = load_model(folder)
        name = str(folder)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    return InpaintPipeline(model, device=args.device, dtype=dtype), name


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--random")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--large", default="1024,2048,3072", help="targets for the 512x512 input ('' = none)")
    ap.add_argument("--generate", type=int, default=2048, help="size of the map generated from metrics (0 = none)")
    a = ap.parse_args()
    pipe, name = load(a)
    P = pipe.patch
    inp = clean(ie.read_map(EXAMPLE))
    rows = []
    # one window
    e = np.zeros((1, P, P, 3))
    k = np.zeros((1, P, P), bool)
    k[:, :, : P // 2] = True
    e[0] = inp.euler[:P, :P]
    cond = np.full((8, 1024), np.nan, np.float32)
    pipe(e, k, cond, seeds=[0], steps=2)  # warm-up
    t1, _ = timed(lambda: pipe(e, k, cond, seeds=[0], steps=a.steps))
    rows.append((f"one {P}x{P} window, {a.steps} steps", t1, ""))
    eb = np.repeat(e, a.batch, 0)
    kb = np.repeat(k, a.batch, 0)
    tb, _ = timed(lambda: pipe(eb, kb, cond, seeds=list(range(a.batch)), steps=a.steps))
    rows.append((f"{a.batch} windows in one batch", tb, f"{a.batch * t1 / tb:.2f}x vs one by one"))
    with tempfile.TemporaryDirectory() as tmp:
        for s in [int(v) for v in a.sizes.split(",")]:
            kw = dict(seed=0, steps=a.steps, progress=False)
            ts, res = timed(lambda: extend(pipe, inp, (s, s), batch=1, work_dir=os.path.join(tmp, "a"), **kw))
            tw, resb = timed(lambda: extend(pipe, inp, (s, s), batch=a.batch, work_dir=os.path.join(tmp, "b"), **kw))
            differ = float((np.abs(res.map.euler - resb.map.euler).max(-1) > 1e-3).mean())
            n = res.plan.n_windows
            rows.append((f"extend 256->{s}, one window at a time ({n} windows)", ts, ""))
            rows.append((f"extend 256->{s}, waves batched by {a.batch} ({len(res.plan.waves)} waves)", tw,
                         f"{ts / tw:.2f}x; cells differing after cleaning {100 * differ:.2f} %"))
        from infinityebsd.data.synth import synth_map
        from infinityebsd.metrics import conditioning_tensor, metrics_of

        big = clean(synth_map((512, 512), 20.0, seed=0))
        for s in [int(v) for v in a.large.split(",") if v]:
            tw, res = timed(lambda: extend(pipe, big, (s, s), batch=a.batch, work_dir=os.path.join(tmp, "c"),
                                           seed=0, steps=a.steps, progress=False))
            rows.append((f"extend 512->{s}, waves batched by {a.batch} ({res.plan.n_windows} windows, "
                         f"{len(res.plan.waves)} waves)", tw, ""))
        if a.generate:
            g = a.generate
            tg, res = timed(lambda: extend(pipe, None, (g, g), cond=conditioning_tensor(metrics_of(inp, clean=False)),
                                           batch=a.batch, work_dir=os.path.join(tmp, "g"), seed=0, steps=a.steps,
                                           progress=False))
            rows.append((f"generate {g}x{g} from metrics, batched ({res.plan.n_windows} windows)", tg, ""))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, device {a.device}"
          + (f" ({torch.cuda.get_device_name()})" if a.device == "cuda" else "") + f"; model: {name}; scheduler dpm")
    print(f"{'figure':<64}{'seconds':>10}  note")
    for label, t, note in rows:
        print(f"{label:<64}{t:>10.2f}  {note}")


if __name__ == "__main__":
    main()

"""Morphology model: sampler study (seams and continuation against cost) and extension speed.

Part 1, samplers: held-out grain-growth maps (seeds outside the training corpus) of ``--size``² cells;
the centre half is extended back to the full map with each sampler setting, and the result is
compared with the truth: boundary density at the input border over the density elsewhere (the truth's
own ratio beside it), the share of the truth's cut grains that continue, the straight-run share, and
the wall time. The peer of every row is the replacement-only DDIM row measured in the same run.

Part 2, speed: 256→1024 (the demo) and 512→2048 extensions, batched against one window at a time on
the smaller one.

Run: python bench/bench_morph.py [--model DIR] [--size 160] [--maps 3] [--speed 1024,2048]
"""

import argparse
import os
import platform
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "src", "infinityebsd", "examples", "example_256.ctf")
DEFAULT_MODEL = os.path.join(HERE, "..", "src", "infinityebsd", "pretrained", "morph")

SETTINGS = [  # (label, sampler, steps, resample)
    ("ddim 25, replacement only", "ddim", 25, 1),
    ("ddim 25, RePaint x2 (first half)", "ddim", 25, 2),
    ("ddim 25, RePaint x3 (first half)", "ddim", 25, 3),
    ("ddim 50, replacement only", "ddim", 50, 1),
    ("dpm 20, replacement only", "dpm", 20, 1),
]


def crop_extend(pipe, truth, seed, sampler, steps, resample):
    from infinityebsd.evaluate.boundaries import border_density_ratio, continued_share, straight_run_share
    from infinityebsd.grains import reconstruct
    from infinityebsd.pipeline.extend import extend

    H, W = truth.shape
    h, w = H // 2, W // 2
    r0, c0 = (H - h) // 2, (W - w) // 2
    crop = truth.crop(r0, c0, h, w)
    t0 = time.perf_counter()
    res = extend(pipe, crop, (H, W), seed=seed, steps=steps, scheduler=sampler, resample=resample, progress=False,
                 log=lambda *a: None)
    sec = time.perf_counter() - t0
    lab = reconstruct(res.map, 10.0).labels
    tl = reconstruct(truth, 10.0).labels
    box = res.input_box
    return {"seconds": sec, "border_ratio": border_density_ratio(lab, box), "truth_border_ratio": border_density_ratio(tl, box),
            "continued": continued_share(lab, tl, box), "straight": straight_run_share(lab),
            "truth_straight": straight_run_share(tl), "grains": int(lab.max() + 1), "truth_grains": int(tl.max() + 1)}


def main():
    from infinityebsd.data.synth import synth_map
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.morph import MorphPipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--maps", type=int, default=3)
    ap.add_argument("--speed", default="1024,2048", help="extension sizes for part 2 ('' to skip)")
    ap.add_argument("--skip-samplers", action="store_true")
    ap.add_argument("--settings", default="0,1,4", help="rows of SETTINGS to run (default: 0,1,4)")
    a = ap.parse_args()
    pipe = MorphPipeline(load_model(a.model), folder=a.model)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; model {a.model}")
    if not a.skip_samplers:
        truths = [synth_map((a.size, a.size), d, seed=900 + k, workers=1) for k, d in
                  zip(range(a.maps), (10, 12, 9, 14, 11))]
        crop_extend(pipe, truths[0], 0, "ddim", 2, 1)  # warm-up: first-call costs out of the timings
        print("\n| setting | s / map | time vs peer | border ratio (truth) | continued | straight runs (truth) | grains (truth) |")
        print("|---|---|---|---|---|---|---|")
        peer = None
        for label, sampler, steps, resample in [SETTINGS[int(i)] for i in a.settings.split(",")]:
            rows = [crop_extend(pipe, t, 7 + k, sampler, steps, resample) for k, t in enumerate(truths)]
            m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            peer = peer or m["seconds"]
            print(f"| {label} | {m['seconds']:.1f} | {m['seconds'] / peer:.2f}x | {m['border_ratio']:.2f} "
                  f"({m['truth_border_ratio']:.2f}) | {m['continued']:.2f} | {m['straight']:.3f} "
                  f"({m['truth_straight']:.3f}) | {m['grains']:.0f} ({m['truth_grains']:.0f}) |", flush=True)
    if a.speed:
        import infinityebsd as ie
        from infinityebsd.data.synth import synth_map as sm
        from infinityebsd.pipeline.extend import extend

        print("\n| job | batch | seconds | vs batch 1 |")
        print("|---|---|---|---|")
        ex = ie.read_map(EXAMPLE)
        for k, size in enumerate(int(s) for s in a.speed.split(",") if s):
            src = ex if k == 0 else sm((512, 512), 24, seed=5, workers=1)
            times = {}
            for batch in ((8, 1) if k == 0 else (8,)):
                t0 = time.perf_counter()
                extend(pipe, src, (size, size), seed=0, batch=batch, progress=False, log=lambda *a: None)
                times[batch] = time.perf_counter() - t0
                ratio = f"{times[1] / times[8]:.2f}x faster batched" if batch == 1 else ""
                print(f"| {src.shape[0]}→{size} | {batch} | {times[batch]:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()

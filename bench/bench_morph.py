"""Morphology model: sampler study (seams and continuation against cost) and extension speed.

Part 1, samplers: held-out grain-growth maps (seeds outside the training corpus) of ``--size``² cells;
the centre half is extended back to the full map with each sampler setting, and the result is
compared with the truth: boundary density at the input border over the density elsewhere (the truth's
own ratio beside it), the share of the truth's cut grains that continue, the straight-run share, and
the wall time. The peer of every row is the replacement-only DDIM row measured in the same run.

Part 2, speed: 256→1024 (the demo; batched against one window at a time too), 512→1024 and
512→2048 (a 512² grain-growth map, mean ECD 24 cells), each also with the latent ``compact`` model
(``--peer``) in the same run for the ratio.

Run: python bench/bench_morph.py [--model DIR] [--size 160] [--maps 3] [--speed demo,1024,2048]
     [--skip-samplers] [--calibrate] [--settings 1,0,4] [--device cuda] [--batch 8,32] [--precision auto,bf16]
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

SETTINGS = [  # (label, sampler, steps, resample, window overlap)
    ("ddim 25, replacement only", "ddim", 25, 1, 0.5),
    ("ddim 25, RePaint x2 (first half)", "ddim", 25, 2, 0.5),
    ("ddim 25, RePaint x3 (first half)", "ddim", 25, 3, 0.5),
    ("ddim 50, replacement only", "ddim", 50, 1, 0.5),
    ("dpm 20, replacement only", "dpm", 20, 1, 0.5),
    ("dpm 10, replacement only", "dpm", 10, 1, 0.5),
    ("dpm 10, replacement only, overlap 3/8", "dpm", 10, 1, 0.375),
    ("dpm 15, replacement only, overlap 3/8", "dpm", 15, 1, 0.375),
    ("ddim 10, replacement only, overlap 3/8", "ddim", 10, 1, 0.375),
    ("dpm 10, replacement only, overlap 1/4", "dpm", 10, 1, 0.25),
    ("ddim 10, RePaint x2 (first half), overlap 3/8", "ddim", 10, 2, 0.375),
    ("ddim 15, RePaint x2 (first half), overlap 3/8", "ddim", 15, 2, 0.375),
    ("ddim 25, RePaint x2 (first half), overlap 3/8", "ddim", 25, 2, 0.375),
]


def crop_extend(pipe, truth, seed, sampler, steps, resample, overlap=0.5):
    from infinityebsd.evaluate.boundaries import border_density_ratio, continued_share, straight_run_share
    from infinityebsd.grains import reconstruct
    from infinityebsd.pipeline.extend import extend

    H, W = truth.shape
    h, w = H // 2, W // 2
    r0, c0 = (H - h) // 2, (W - w) // 2
    crop = truth.crop(r0, c0, h, w)
    t0 = time.perf_counter()
    res = extend(pipe, crop, (H, W), seed=seed, steps=steps, scheduler=sampler, resample=resample, overlap=overlap,
                 progress=False,
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
    from infinityebsd.models.precision import cpu_native_bf16
    from infinityebsd.pipeline.morph import MorphPipeline, calibrate_decoder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--maps", type=int, default=3)
    ap.add_argument("--speed", default="demo,1024,2048",
                    help="jobs of part 2: demo (256->1024), 1024 and 2048 (from a 512x512 map); '' to skip")
    ap.add_argument("--peer", default=os.path.join(HERE, "..", "src", "infinityebsd", "pretrained", "compact"),
                    help="model timed on the same jobs in the same run ('' for none)")
    ap.add_argument("--skip-samplers", action="store_true")
    ap.add_argument("--settings", default="0,1,4", help="rows of SETTINGS to run (default: 0,1,4)")
    ap.add_argument("--calibrate", action="store_true",
                    help="choose the segmentation thresholds for each sampler setting (calibrate_decoder) "
                         "instead of using the model folder's for all")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="run the model on this device (cuda: bf16 weights, as `extend --device cuda`)")
    ap.add_argument("--batch", default="8", help="windows per network call in the speed part, e.g. 8,32")
    ap.add_argument("--precision", default="auto",
                    help="CPU precision of the model (auto, fp32, bf16); more than one, e.g. auto,bf16, times "
                         "the others in the speed part of the same run as peers")
    a = ap.parse_args()
    precisions = a.precision.split(",")
    if a.device == "cuda":
        from infinityebsd.cli.generate import load_pipeline

        pipe = load_pipeline(a.model, "cuda")
        gpu = f"; {torch.cuda.get_device_name(0)}"
    else:
        pipe, gpu = MorphPipeline(load_model(a.model), folder=a.model, precision=precisions[0]), ""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{gpu}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_native_bf16()}; model {a.model} "
          f"in {pipe.dtype}")
    if not a.skip_samplers:
        truths = [synth_map((a.size, a.size), d, seed=900 + k, workers=1) for k, d in
                  zip(range(a.maps), (10, 12, 9, 14, 11))]
        crop_extend(pipe, truths[0], 0, "ddim", 2, 1)  # warm-up: first-call costs out of the timings
        print("\n| setting | s / map | time vs peer | border ratio (truth) | continued | straight runs (truth) | grains (truth) |")
        print("|---|---|---|---|---|---|---|")
        peer = None
        for label, sampler, steps, resample, overlap in [SETTINGS[int(i)] for i in a.settings.split(",")]:
            if a.calibrate:
                pipe.decode_options = calibrate_decoder(a.model, sampling={"sampler": sampler, "steps": steps,
                                                                           "resample": resample},
                                                        write=False, log=lambda *_: None)
                label = f"{label}; h {pipe.decode_options['h']}, merge {pipe.decode_options['merge_above']}"
            rows = [crop_extend(pipe, t, 7 + k, sampler, steps, resample, overlap) for k, t in enumerate(truths)]
            m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            peer = peer or m["seconds"]
            print(f"| {label} | {m['seconds']:.1f} | {m['seconds'] / peer:.2f}x | {m['border_ratio']:.2f} "
                  f"({m['truth_border_ratio']:.2f}) | {m['continued']:.2f} | {m['straight']:.3f} "
                  f"({m['truth_straight']:.3f}) | {m['grains']:.0f} ({m['truth_grains']:.0f}) |", flush=True)
    if a.speed:
        import infinityebsd as ie
        from infinityebsd.cli.generate import load_pipeline
        from infinityebsd.data.synth import synth_map as sm
        from infinityebsd.pipeline.extend import extend

        ex = ie.read_map(EXAMPLE)
        big = sm((512, 512), 24, seed=5, workers=1)
        jobs = {"demo": ("256→1024 (the README job)", ex, 1024), "1024": ("512→1024", big, 1024),
                "2048": ("512→2048", big, 2048)}
        peer = load_pipeline(a.peer, "cpu") if a.peer else None
        # rows name the folders: the peer may be the latent model or another morphology model
        me = os.path.basename(os.path.normpath(a.model))
        them = os.path.basename(os.path.normpath(a.peer)) if a.peer else "none"
        them_kind = "morphology" if hasattr(peer, "sampling") else "latent"
        print(f"\nmodel {me} sampling: {pipe.sampling}; peer: {them}"
              + (f" ({them_kind}, its own sampling settings)" if peer is not None else ""))
        print("\n| job | model | batch | seconds | note |")
        print("|---|---|---|---|---|")
        for key in (k for k in a.speed.split(",") if k):
            label, src, size = jobs[key]

            def run(p, batch=8):
                t0 = time.perf_counter()
                r = extend(p, src, (size, size), seed=0, batch=batch, progress=False, log=lambda *_: None)
                return time.perf_counter() - t0, r

            batches = [int(b) for b in a.batch.split(",")]
            if a.device == "cuda":
                run(pipe, batches[0])  # warm-up: CUDA context and kernel selection out of the timings
            t, r = run(pipe, batches[0])
            print(f"| {label} | morph ({a.device}) | {batches[0]} | {t:.1f} | {r.plan.n_windows} windows in "
                  f"{len(r.plan.waves)} waves, grid scale {r.scale:.2f} |", flush=True)
            for b in batches[1:]:
                tb, _ = run(pipe, b)
                print(f"| {label} | morph ({a.device}) | {b} | {tb:.1f} | {t / tb:.2f}x the batch-{batches[0]} "
                      f"speed |", flush=True)
            if key == "demo":
                t1, _ = run(pipe, 1)
                print(f"| {label} | morph | 1 | {t1:.1f} | batched {t1 / t:.2f}x faster |", flush=True)
            for prec in precisions[1:]:
                other = MorphPipeline(load_model(a.model), folder=a.model, precision=prec)
                to, _ = run(other, batches[0])
                print(f"| {label} | morph, {other.dtype} | {batches[0]} | {to:.1f} | {to / t:.2f}x the time in "
                      f"{pipe.dtype} |", flush=True)
            if peer is not None:
                tp, _ = run(peer)
                print(f"| {label} | peer {them} ({them_kind}) | 8 | {tp:.1f} | {me} {tp / t:.2f}x faster |",
                      flush=True)


if __name__ == "__main__":
    main()

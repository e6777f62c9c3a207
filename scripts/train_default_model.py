"""Reproducible recipe for the shipped default model, ``src/infinityebsd/pretrained/morph``.

The pixel-space morphology model (config ``morph``): trained on this project's 2-core CPU from a
synthetic grain-growth corpus plus the cleaned real maps given with ``--real`` (rescaled to grain
scale, all eight symmetries of the square). Resumable: run the same command again with ``--resume``.
At the end the EMA weights are exported into ``--export`` with the loss curve in its ``logs/``, and
the segmentation thresholds are calibrated for the model (:func:`calibrate_decoder`) on held-out
windows and written into its ``infinityebsd.json``.

    python scripts/train_default_model.py --work /work/morph-run --export src/infinityebsd/pretrained/morph \
        --steps 2400 --real ../shared/data/real/dream3d_edax_ni_h5/EdaxAngOnly.h5 \
        ../shared/data/real/kanapy_316L_am/ebsd_316L_500x500.ang

``--from-checkpoint CK`` exports (and calibrates) a checkpoint instead of training, e.g. to stop a run
early: ``--work W --from-checkpoint W/checkpoints/morph/step-0000800 --export DIR``.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))


def calibrate_decoder(folder, maps: int = 4, windows: int = 4, seed: int = 10_000, log=print) -> dict:
    """Choose the segmentation thresholds (h-maxima height, merge level) for a model's fields.

    Held-out grain-growth maps (seeds far from the training corpus'; one elongated), random 64-cell
    windows with their right half unknown, filled once with the pipeline's default sampler; each
    threshold pair segments the same fields, and the pair whose new grains best match the truth's in
    number and mean ECD (sum of absolute log ratios) wins. Written to ``infinityebsd.json["decode"]``.
    """
    from infinityebsd.data.synth import grain_growth_labels
    from infinityebsd.models.ldm import load_model, read_info, write_info
    from infinityebsd.pipeline.morph import MorphPipeline, segment_window
    from infinityebsd.train.morph import morph_conditioning

    pipe = MorphPipeline(load_model(folder), folder=folder)
    pipe.decode_options = {}
    P = pipe.patch
    rng = np.random.default_rng(seed)
    labs, conds = [], []
    for k in range(maps):
        median = float(rng.uniform(9.0, 12.5))
        aspect = 2.5 if k == maps - 1 else 1.0
        lab = grain_growth_labels((160, 160), median / 0.85, aspect=aspect, angle_deg=float(rng.uniform(0, 180)),
                                  rng=seed + k, workers=1)
        c = morph_conditioning(lab)
        for _ in range(windows):
            r, q = rng.integers(0, 160 - P, 2)
            labs.append(lab[r:r + P, q:q + P])
            conds.append(c)
    known = np.zeros((len(labs), P, P), bool)
    known[:, :, : P // 2] = True
    kf = np.stack([pipe.known_field(lab, k) for lab, k in zip(labs, known)])
    fields = pipe(kf, known, np.stack(conds), seeds=list(range(len(labs))))

    def new_grains(lab, unknown):
        area = np.bincount(lab.ravel())
        share = np.bincount(lab[unknown].ravel(), minlength=len(area)) / np.maximum(area, 1)
        g = np.flatnonzero(share > 0.5)
        return len(g), float(np.sqrt(4 * area[g] / np.pi).sum())

    truth = np.array([new_grains(lab, ~k) for lab, k in zip(labs, known)]).sum(0)
    best = None
    for h in (0.05, 0.1, 0.15, 0.25):
        for merge in (-0.85, -0.7, -0.6, -0.5, -0.4):
            got = np.array([new_grains(segment_window(f, lab, k, pipe.representation, 10**6, h=h, merge_above=merge)[0], ~k)
                            for lab, k, f in zip(labs, known, fields)]).sum(0)
            n_ratio = got[0] / truth[0]
            ecd_ratio = (got[1] / max(got[0], 1)) / (truth[1] / truth[0])
            score = abs(np.log(max(n_ratio, 1e-3))) + abs(np.log(max(ecd_ratio, 1e-3)))
            if best is None or score < best[0]:
                best = (score, h, merge, n_ratio, ecd_ratio)
    _, h, merge, n_ratio, ecd_ratio = best
    info = read_info(folder)
    info["decode"] = {"h": h, "merge_above": merge}
    info["decode_calibration"] = {"windows": len(labs), "grain_count_ratio": round(float(n_ratio), 3),
                                  "mean_ecd_ratio": round(float(ecd_ratio), 3), "seed": seed}
    write_info(folder, info)
    log(f"decoder: h={h}, merge_above={merge} (new grains / truth: count {n_ratio:.2f}, mean ECD {ecd_ratio:.2f})")
    return info["decode"]


def export(work: Path, dst: Path):
    """Copy a finished training folder's model parts into ``dst`` (swapped in whole)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for part in ("unet", "metric_encoder", "scheduler"):
        shutil.copytree(work / part, tmp / part)
    shutil.copy2(work / "infinityebsd.json", tmp / "infinityebsd.json")
    if (work / "logs").is_dir():
        shutil.copytree(work / "logs", tmp / "logs")
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="training folder (checkpoints, corpus cache, logs)")
    ap.add_argument("--export", help="copy the finished model folder here")
    ap.add_argument("--config", default="morph")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", nargs="*", default=[], help="cleaned real maps to add to the corpus")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--from-checkpoint", type=Path, help="export this checkpoint instead of training")
    args = ap.parse_args(argv)

    import torch

    from infinityebsd.train.morph import export_checkpoint, train_morphology

    t0 = time.time()
    work = Path(args.work)
    if args.from_checkpoint:
        if not args.export:
            ap.error("--from-checkpoint needs --export")
        out = Path(args.export)
        tmp = out.with_name(f".{out.name}.checkpoint")  # export() swaps in through its own .tmp
        shutil.rmtree(tmp, ignore_errors=True)
        export_checkpoint(args.from_checkpoint, tmp)
        if (work / "logs").is_dir():
            shutil.copytree(work / "logs", tmp / "logs")
        calibrate_decoder(tmp)
        export(tmp, out)
        shutil.rmtree(tmp, ignore_errors=True)
        print("exported", out, f"in {time.time() - t0:.0f} s")
        return
    r = train_morphology(work, args.config, steps=args.steps, batch=args.batch, seed=args.seed,
                         resume=args.resume, real_maps=args.real, checkpoint_every=args.checkpoint_every)
    print(json.dumps(r), f"wall {time.time() - t0:.0f} s, torch threads {torch.get_num_threads()}", flush=True)
    if r["interrupted"] or not args.export:
        return
    calibrate_decoder(work)
    export(work, Path(args.export))
    print("exported", args.export)


if __name__ == "__main__":
    main()

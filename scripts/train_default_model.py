"""Reproducible recipe for the shipped default model, ``src/infinityebsd/pretrained/morph``.

The pixel-space morphology model (config ``morph``): trained on this project's 2-core CPU from a
synthetic grain-growth corpus plus the cleaned real maps given with ``--real`` (rescaled to grain
scale, all eight symmetries of the square). Resumable: run the same command again with ``--resume``.
At the end the EMA weights are exported into ``--export`` and the loss curve into its ``logs/``.

    python scripts/train_default_model.py --work /work/morph-run --export src/infinityebsd/pretrained/morph \
        --steps 2400 --real ../shared/data/real/dream3d_edax_ni_h5/EdaxAngOnly.h5 \
        ../shared/data/real/kanapy_316L_am/ebsd_316L_500x500.ang

``--warm-start DIR`` starts from a model folder's weights (e.g. the shipped one) to train on.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))


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
    args = ap.parse_args(argv)

    import torch

    from infinityebsd.train.morph import train_morphology

    t0 = time.time()
    r = train_morphology(args.work, args.config, steps=args.steps, batch=args.batch, seed=args.seed,
                         resume=args.resume, real_maps=args.real, checkpoint_every=args.checkpoint_every)
    print(json.dumps(r), f"wall {time.time() - t0:.0f} s, torch threads {torch.get_num_threads()}", flush=True)
    if r["interrupted"] or not args.export:
        return
    work, dst = Path(args.work), Path(args.export)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for part in ("unet", "metric_encoder", "scheduler", "logs"):
        shutil.copytree(work / part, tmp / part)
    shutil.copy2(work / "infinityebsd.json", tmp / "infinityebsd.json")
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    print("exported", dst)


if __name__ == "__main__":
    main()

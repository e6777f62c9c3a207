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

The noise-schedule sweep (bench/RESULTS.md, stop 25) is this recipe with ``--steps 3000`` and one of
``--prediction-type epsilon``, ``--beta-schedule linear`` or ``--min-snr-gamma 0``; on a GPU add
``--workers 2`` (data-loader processes; the batches do not depend on their number).

``--init-from DIR`` warm-starts from a model folder's weights with a fresh optimiser and schedule
(give another ``--seed`` so the corpus is a new draw, and usually a lower ``--lr``); the exported
folder records its source under ``provenance.morph.init_from`` and keeps the source's sampler settings.

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
    ap.add_argument("--init-from", type=Path,
                    help="warm-start from this model folder's weights (fresh optimiser and schedule; "
                         "use another --seed than the source's so the windows are new draws)")
    ap.add_argument("--lr", type=float, help="peak learning rate (default: the config's)")
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--from-checkpoint", type=Path, help="export this checkpoint instead of training")
    ap.add_argument("--workers", type=int, default=0, help="data-loader processes (same batches with any number)")
    ap.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"],
                    help="default: bf16 autocast on a GPU and on a CPU with native bf16, no elsewhere "
                         "(the shipped weights were trained in fp32)")
    ap.add_argument("--no-calibrate", action="store_true", help="export without calibrating the decoder")
    sw = ap.add_argument_group("config overrides (the noise-schedule sweep in bench/RESULTS.md, stop 25)")
    sw.add_argument("--prediction-type", choices=["v_prediction", "epsilon"])
    sw.add_argument("--beta-schedule", choices=["squaredcos_cap_v2", "linear", "scaled_linear"])
    sw.add_argument("--min-snr-gamma", type=float, help="0: the plain loss of the parameterisation")
    args = ap.parse_args(argv)

    import torch

    from infinityebsd.models.morph import load_morph_config
    from infinityebsd.pipeline.morph import calibrate_decoder
    from infinityebsd.train.morph import export_checkpoint, train_morphology

    config = args.config
    if args.prediction_type or args.beta_schedule or args.min_snr_gamma is not None:
        config = load_morph_config(args.config)
        config["scheduler"].update({k: v for k, v in (("prediction_type", args.prediction_type),
                                                       ("beta_schedule", args.beta_schedule)) if v})
        if args.min_snr_gamma is not None:
            config["train_unet"]["min_snr_gamma"] = args.min_snr_gamma

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
    r = train_morphology(work, config, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                         init_from=args.init_from,
                         resume=args.resume, real_maps=args.real, checkpoint_every=args.checkpoint_every,
                         num_workers=args.workers, mixed_precision=args.mixed_precision)
    print(json.dumps(r), f"wall {time.time() - t0:.0f} s, torch threads {torch.get_num_threads()}", flush=True)
    if r["interrupted"] or not args.export:
        return
    if not args.no_calibrate:
        calibrate_decoder(work)
    export(work, Path(args.export))
    print("exported", args.export)


if __name__ == "__main__":
    from infinityebsd.errors import InputError

    try:
        main()
    except InputError as e:  # a user error: one line, no traceback
        sys.exit(f"error: {e}")

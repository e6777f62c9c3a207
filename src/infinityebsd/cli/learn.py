"""Learning commands: dataset, train-vae, train, train-morph."""

from __future__ import annotations

from pathlib import Path

import click

from ..data.augment import VARIANT_NAMES
from . import main, seed_option
from .params import OutputFolder

# The dataset builder and the trainings (torch, diffusers) are imported inside the commands, so that
# `infinityebsd --help` stays fast.

# The shipped configs, read from the package so the help can never miss one.
CONFIG_NAMES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.json"))

_CONFIG = click.option("--config", default=None, metavar="NAME|FILE.json",
                       help=f"Model config: {', '.join(CONFIG_NAMES)}, or a JSON file. Default: small for "
                            "train-vae; for train, the config the VAE was trained with. Ignored with --resume.")
_STEPS = click.option("--steps", type=click.IntRange(1), default=None,
                      help="Total optimisation steps (default: the config's).")
_BATCH = click.option("--batch", type=click.IntRange(1), default=None,
                      help="Batch size per process (default: the config's).")
_LR = click.option("--lr", type=float, default=None, help="Peak learning rate (default: the config's).")
_RESUME = click.option("--resume", is_flag=True,
                       help="Continue from the latest checkpoint in OUT (weights, optimizer, LR, EMA, data position).")
_CKPT = click.option("--checkpoint-every", type=click.IntRange(1), default=500, show_default=True,
                     help="Steps between checkpoints (one is also written on SIGTERM/SIGINT).")
_WORKERS = click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
                        help="DataLoader worker processes.")
_PREC = click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default=None,
                     help="Default: bf16 autocast on a GPU and on a CPU with native bf16 (AVX-512 BF16 or "
                          "AMX), none on other CPUs.")
_CPU = click.option("--cpu", is_flag=True, help="Train on the CPU even if a GPU is present.")


def _training_options(f):
    for opt in (_CPU, _PREC, _WORKERS, _CKPT, _RESUME, _LR, _BATCH, _STEPS, _CONFIG):
        f = opt(f)
    return f


@main.command("dataset")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=OutputFolder(), help="Dataset folder (created if missing).")
@click.option("--patch", type=click.IntRange(8), default=256, show_default=True, help="Patch size in cells.")
@click.option("--overlap", type=click.FloatRange(0.0, 0.9), default=0.5, show_default=True,
              help="Overlap of the sliding windows.")
@click.option("--augment", "augment_mode", type=click.Choice(["physical", "pixel", "none"]),
              default="physical", show_default=True,
              help="physical: 8 variants, orientations rotated with the sample; pixel: 8 variants, angles "
                   "kept (the paper); none: originals only.")
@click.option("--shard-size", type=click.IntRange(1), default=64, show_default=True, help="Patches per shard.")
@click.option("--threshold", type=click.FloatRange(0.1, 62.0), default=10.0, show_default=True,
              help="Grain boundary disorientation threshold (degrees), for cleaning and metrics.")
@click.option("--min-area", type=click.IntRange(1), default=10, show_default=True, help="Smallest grain kept, in cells.")
@click.option("--no-twins", is_flag=True, help="Keep Σ3 twins as separate grains.")
@click.option("--phase", default=None, metavar="NAME", help="Phase to use in multiphase maps.")
@seed_option
def dataset_cmd(inputs, output, patch, overlap, augment_mode, shard_size, threshold, min_area, no_twins,
                phase, seed):
    """Build a training corpus from EBSD maps (files or folders) in OUTPUT.

    Maps are cleaned like `infinityebsd clean`, cut into --patch windows with 50 % overlap (smaller
    maps are skipped with a note), augmented, and stored with each patch's conditioning tensor in
    shards plus manifest.json. Rerunning the same command resumes an interrupted build. --seed is
    accepted for uniformity; the build is deterministic.

    \b
    Example:
      infinityebsd dataset corpus/ real_maps/*.ctf -o data/ --patch 256
      infinityebsd dataset scans/ -o data512/ --patch 512 --augment pixel
    """
    from ..data.dataset import build_dataset

    variants = ("identity",) if augment_mode == "none" else VARIANT_NAMES
    mode = "pixel" if augment_mode == "none" else augment_mode
    man = build_dataset(list(inputs), output, patch=patch, overlap=overlap, augment_mode=mode,
                        variants=variants, shard_size=shard_size, threshold_deg=threshold,
                        min_area=min_area, merge_twins=not no_twins, phase=phase,
                        log=lambda s: click.echo(s, err=True))
    gs = man.get("grain_size_range")
    extra = f"; median grain size 5-95 %: {gs[0]:.1f}-{gs[1]:.1f} cells" if gs else ""
    click.echo(f"{man['n_patches']} patches in {len(man['shards'])} shards from {len(man['sources'])} maps "
               f"({len(man['skipped'])} skipped){extra}; wrote {output}")


@main.command("train-vae")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=OutputFolder(), help="Model folder (created if missing).")
@click.option("--representation", type=click.Choice(["euler", "quat"]), default=None,
              help="Network encoding of orientations (default: the config's).")
@_training_options
@seed_option
def train_vae_cmd(data, output, representation, config, steps, batch, lr, resume, checkpoint_every,
                  workers, mixed_precision, cpu, seed):
    """Train the VAE on the dataset DATA; writes OUTPUT/vae and OUTPUT/infinityebsd.json.

    Runs on one CPU as it is and on many GPUs under `accelerate launch`. A CSV log and a loss plot go
    to OUTPUT/logs; checkpoints to OUTPUT/checkpoints/vae.

    \b
    Example:
      infinityebsd train-vae data/ -o model/ --config small
      infinityebsd train-vae data/ -o model/ --resume
    """
    from ..train import train_vae

    r = train_vae(data, output, config=config, steps=steps, batch=batch, lr=lr, seed=seed, resume=resume,
                  checkpoint_every=checkpoint_every, num_workers=workers, representation=representation,
                  mixed_precision=mixed_precision, cpu=cpu)
    if r["interrupted"]:
        click.echo(f"interrupted at step {r['step']}; continue with --resume")
    else:
        mse = "n/a" if r["final_loss"] is None else f"{r['final_loss']:.4g}"
        click.echo(f"VAE trained for {r['step']} steps (last reconstruction MSE {mse}, "
                   f"latent scale {r['scaling_factor']:.4g}); wrote {output}")


@main.command("train")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=OutputFolder(),
              help="Model folder (holding the VAE from train-vae).")
@click.option("--vae", "vae_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Take the VAE from this model folder instead of OUTPUT.")
@_training_options
@seed_option
def train_cmd(data, output, vae_dir, config, steps, batch, lr, resume, checkpoint_every, workers,
              mixed_precision, cpu, seed):
    """Train the metric-conditioned inpainting UNet on DATA in the latent space of the VAE.

    Writes the EMA weights to OUTPUT/unet and OUTPUT/metric_encoder and the noise schedule to
    OUTPUT/scheduler. Checkpoints every --checkpoint-every steps and on SIGTERM/SIGINT; --resume
    continues exactly where the run stopped.

    \b
    Example:
      infinityebsd train data/ -o model/ --config small --steps 20000
      accelerate launch --multi_gpu -m infinityebsd train data/ -o model/ --config paper
      torchrun --nproc_per_node 2 -m infinityebsd train data/ -o model/   # 2 CPU processes (gloo)
      infinityebsd train data/ -o model/ --resume
    """
    from ..train import train_unet

    r = train_unet(data, output, config=config, steps=steps, batch=batch, lr=lr, seed=seed, resume=resume,
                   vae=vae_dir, checkpoint_every=checkpoint_every, num_workers=workers,
                   mixed_precision=mixed_precision, cpu=cpu)
    if r["interrupted"]:
        click.echo(f"interrupted at step {r['step']}; continue with --resume")
    else:
        click.echo(f"UNet trained for {r['step']} steps; wrote {output}")


@main.command("train-morph")
@click.option("-o", "--output", required=True, type=OutputFolder(),
              help="Model folder (created if missing; checkpoints go under OUTPUT/checkpoints).")
@click.option("--real", "real_maps", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A real map to add to the synthetic corpus, cleaned and rescaled to grain scale "
                   "(repeatable).")
@click.option("--no-calibrate", is_flag=True,
              help="Skip choosing the segmentation thresholds for the trained model (about half a minute "
                   "on a 2-core CPU for the morph config).")
@click.option("--config", default="morph", show_default=True, metavar="NAME|FILE.json",
              help="Morphology model config (a shipped name or a JSON file). Ignored with --resume.")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), metavar="MODEL_DIR",
              help="Warm-start from this morphology model's weights (e.g. the shipped one) with a fresh "
                   "optimiser and schedule; the config must build the same network. Use another --seed "
                   "than the source's so that the corpus is a new draw.")
@_STEPS
@_BATCH
@_LR
@_RESUME
@_CKPT
@_WORKERS
@_PREC
@_CPU
@seed_option
def train_morph_cmd(output, real_maps, no_calibrate, config, init_from, steps, batch, lr, resume,
                    checkpoint_every, workers, mixed_precision, cpu, seed):
    """Train a pixel-space morphology model (the kind the package ships) from a synthetic grain-growth
    corpus plus any real maps given with --real; no dataset or VAE needed.

    The corpus is drawn once and cached in OUTPUT/corpus.npz; the EMA weights go to OUTPUT/unet and
    OUTPUT/metric_encoder, and the segmentation thresholds are then calibrated on held-out windows and
    written to OUTPUT/infinityebsd.json; use the folder with `extend --model OUTPUT`. The shipped model
    trained for 2934 steps, 2.5 hours on a 2-core CPU (see MODEL_CARD.md).

    \b
    Example:
      infinityebsd train-morph -o my-morph/ --real my_map.ctf --steps 3200
      infinityebsd train-morph -o my-morph/ --resume
      infinityebsd train-morph -o tuned/ --init-from base/ --real my_map.ctf --steps 1000 --lr 5e-4 --seed 1
    """
    from ..pipeline.morph import calibrate_decoder
    from ..train.morph import train_morphology

    r = train_morphology(output, config, steps=steps, batch=batch, lr=lr, seed=seed, resume=resume,
                         init_from=init_from, real_maps=list(real_maps), checkpoint_every=checkpoint_every,
                         num_workers=workers, mixed_precision=mixed_precision, cpu=cpu,
                         log=lambda s: click.echo(s, err=True))
    if r["interrupted"]:
        click.echo(f"interrupted at step {r['step']}; continue with --resume")
        return
    if not no_calibrate:
        calibrate_decoder(output, log=lambda s: click.echo(s, err=True))
    click.echo(f"morphology model trained for {r['step']} steps; wrote {output}")

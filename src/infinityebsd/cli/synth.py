"""Synthetic maps: ``synth`` (one map) and ``synth-corpus`` (a varied training corpus)."""

from __future__ import annotations

import os

import click

from ..crystal import quat_to_euler
from ..data.texture import parse_texture
from ..errors import InputError
from ..io import EBSDMap, Phase, write_ctf
from . import main, seed_option
from .params import OutputFile, OutputFolder, existing, parse_size, wrote

# The simulations (data.synth: scipy, scikit-image) are imported inside the commands, so that
# `infinityebsd --help` stays fast.

MIN_SIDE = 8  # smaller maps hold too few grains for the simulation's statistics


@main.command("synth")
@click.option("-o", "--output", required=True, type=OutputFile("ctf"), metavar="OUT.ctf",
              help="Output CTF file (replaced if it exists).")
@click.option("--size", default="512x512", show_default=True,
              help="Map size, ROWSxCOLS (Y x X) cells; one number gives a square.")
@click.option("--grain-size", type=float, default=30.0, show_default=True,
              help="Target mean grain size: equivalent circle diameter in cells.")
@click.option("--method", type=click.Choice(["growth", "voronoi"]), default="growth", show_default=True,
              help="growth: simulated curvature-driven grain growth; voronoi: Voronoi/Laguerre baseline.")
@click.option("--aspect", type=float, default=1.0, show_default=True,
              help="Grain elongation, length over width (1 = equiaxed).")
@click.option("--angle", type=float, default=0.0, show_default=True,
              help="Elongation direction in degrees, from the X axis towards Y.")
@click.option("--texture", default="random", show_default=True,
              help="NAME:FRACTION[:SPREAD_DEG], comma-separated; names: cube, goss, brass, copper, s, "
                   "rotated-cube, fibre111, fibre100, fibre110. The rest is random.")
@click.option("--bimodal", type=float, default=0.0, show_default=True,
              help="growth: area share of a few abnormally grown grains (0 to 0.9).")
@click.option("--size-spread", type=float, default=None,
              help="growth: spread of the per-grain growth advantage (default 0.4; 0 = ideal growth).")
@click.option("--size-cv", type=float, default=0.0, show_default=True,
              help="voronoi: coefficient of variation of the Laguerre cell radii (0 = plain Voronoi).")
@click.option("--periodic", is_flag=True, help="Periodic boundaries: the map tiles seamlessly.")
@click.option("--step", type=float, default=1.0, show_default=True, help="Step size written to the file (µm).")
@seed_option
def synth(output, size, grain_size, method, aspect, angle, texture, bimodal, size_spread, size_cv, periodic,
          step, seed):
    """Write one synthetic, clean, cubic (Nickel) EBSD map with one orientation per grain.

    \b
    Examples:
      infinityebsd synth -o grains.ctf --size 512x512 --grain-size 30 --seed 0
      infinityebsd synth -o aniso.ctf --size 512x768 --grain-size 25 --aspect 2.5 --angle 30 --texture cube:0.4
      infinityebsd synth -o voronoi.ctf --method voronoi --size 512x512 --grain-size 30
    """
    from ..data.synth import synth_grains

    shape = parse_size(size, minimum=MIN_SIDE)
    texture = parse_texture(texture)  # report a bad --texture before any work
    if step <= 0:
        raise InputError("--step must be positive")
    from tqdm import tqdm

    with tqdm(total=2, desc="synth", unit="stage") as bar:
        labels, q = synth_grains(shape, grain_size, method, aspect, angle, bimodal, size_cv, texture, periodic,
                                 seed, size_spread)
        bar.update(1)
        m = EBSDMap.from_euler(quat_to_euler(q)[labels], step=(step, step),
                               phase=Phase("Nickel", 11, 225, (3.524, 3.524, 3.524)),
                               source=f"infinityebsd synth --method {method} --seed {seed}")
        before = existing(output)
        write_ctf(m, output)
        bar.update(1)
    wrote(output, before, prefix=f"{int(labels.max()) + 1} grains; ")


@main.command("synth-corpus")
@click.option("-o", "--output", required=True, type=OutputFolder(), help="Output folder (created if missing).")
@click.option("--count", type=click.IntRange(1), default=100, show_default=True, help="Number of maps.")
@click.option("--size", default="512x512", show_default=True,
              help="Map size, ROWSxCOLS (Y x X) cells; one number gives a square.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Parallel processes [default: number of CPUs].")
@seed_option
def synth_corpus(output, count, size, workers, seed):
    """Write a varied training corpus of synthetic grain-growth maps and their parameter table.

    Each map's mean size (8–80 cells), elongation (1–3), size distribution (unimodal or bimodal) and
    texture (random or 1–2 components) are drawn from --seed; the table is params.jsonl in the
    output folder. Maps already present are skipped, so an interrupted run resumes.

    \b
    Example:
      infinityebsd synth-corpus -o corpus/ --count 2000 --size 512x512 --seed 0
    """
    from tqdm import tqdm

    from ..data.synth import write_corpus

    shape = parse_size(size, minimum=MIN_SIDE)
    workers = workers or os.cpu_count() or 1
    with tqdm(total=count, unit="map", desc="synth-corpus") as bar:
        def progress(done):
            bar.update(done - bar.n)

        table = write_corpus(output, count, shape, seed=seed, workers=workers, progress=progress)
    click.echo(f"{count} maps in {output}; parameters in {table}")

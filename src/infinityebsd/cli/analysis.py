"""Analysis commands: info, clean, metrics, plot."""

from __future__ import annotations

import json
import os
import time

import click
import numpy as np

from .._shared import atomic_write_bytes
from ..errors import SymmetryError
from ..io import write_ctf
from . import main
from .params import OutputFile, existing, read_map_checked, wrote

# Grains and metrics (scipy, scikit-image) and the figures (matplotlib) are imported inside the
# commands, so that `infinityebsd --help` stays fast.

PHASE_OPT = click.option("--phase", default=None, metavar="NAME",
                         help="Phase to analyse in a multiphase map (by name, as `info` lists).")


def _clean_options(f):
    f = click.option("--no-twins", is_flag=True, help="Keep Σ3 twins as separate grains.")(f)
    f = click.option("--min-area", type=click.IntRange(1), default=10, show_default=True,
                     help="Smallest grain kept, in cells.")(f)
    f = click.option("--threshold", type=click.FloatRange(0.1, 62.0), default=10.0, show_default=True,
                     help="Grain boundary disorientation threshold (degrees).")(f)
    return f


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
def info(map_path):
    """Grid, step, phases, symmetry and indexed fraction of MAP (.ctf, .ang or .h5).

    \b
    Example:
      infinityebsd info scan.ctf
    """
    m = read_map_checked(map_path, cubic=False)  # any symmetry reads
    rows, cols = m.shape
    click.echo(f"file:        {map_path}")
    click.echo(f"grid:        {rows} rows (Y) x {cols} columns (X), square")
    click.echo(f"step:        {m.step[0]:g} µm (Y), {m.step[1]:g} µm (X)")
    click.echo(f"size:        {rows * m.step[0]:g} µm x {cols * m.step[1]:g} µm")
    click.echo(f"indexed:     {100 * m.indexed_fraction:.1f} % of {rows * cols} cells")
    click.echo(f"phases:      {len(m.phases)}")
    counts = np.bincount(m.phase_id.ravel(), minlength=len(m.phases) + 1)
    for k, p in enumerate(m.phases, start=1):
        click.echo(f"  {k}: {p.name:<24} symmetry {p.symmetry:<6} Laue {p.laue_group:<3} "
                   f"{100 * counts[k] / m.phase_id.size:5.1f} % of cells")


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=OutputFile("ctf"), metavar="OUT.ctf",
              help="Output CTF file (replaced if it exists).")
@_clean_options
@PHASE_OPT
def clean(map_path, output, threshold, min_area, no_twins, phase):
    """The paper's pre-processing of MAP, written as a CTF file.

    Grains by a disorientation threshold; grains below --min-area removed and their cells, with the
    non-indexed ones, filled from the nearest grain; Σ3 twins merged into their parent; every cell
    given its grain's mean orientation.

    \b
    Example:
      infinityebsd clean raw.ang -o clean.ctf
      infinityebsd clean duplex.ang --phase austenite/austenite -o austenite.ctf
    """
    from ..grains import clean_with_grains

    before = existing(output)
    m = read_map_checked(map_path)
    cm, g = clean_with_grains(m, threshold_deg=threshold, min_area=min_area, merge_twins=not no_twins,
                              phase=phase)
    write_ctf(cm, output)
    wrote(output, before, prefix=f"{g.n} grains; ")


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=OutputFile("json"), metavar="FILE.json",
              help="Write grains, boundaries and distributions.")
@click.option("--plot", "plot_path", type=OutputFile("image"), metavar="FILE.png",
              help="Write the eight histograms (.png, .pdf, .svg, .jpg, .tif).")
@click.option("--exclude-border", is_flag=True, help="Drop grains touching the map edge from the distributions.")
@click.option("--no-clean", is_flag=True, help="Measure the map as it is, without the pre-processing.")
@_clean_options
@PHASE_OPT
def metrics(map_path, json_path, plot_path, exclude_border, no_clean, threshold, min_area, no_twins, phase):
    """The eight grain metrics of MAP, after the paper's pre-processing.

    size (equivalent circle diameter, cells), perimeter (cell edges), inertia ratio, coordination,
    boundary disorientation, and the grains' φ1, Φ, φ2.

    \b
    Example:
      infinityebsd metrics scan.ctf --json metrics.json --plot metrics.png
    """
    from ..metrics import distributions, metrics_document, metrics_of

    t0 = time.perf_counter()
    before = existing(json_path, plot_path)
    m = read_map_checked(map_path)
    table = metrics_of(m, clean=not no_clean, phase=phase, threshold_deg=threshold,
                       **({} if no_clean else {"min_area": min_area, "merge_twins": not no_twins}))
    dists = distributions(table, exclude_border=exclude_border)
    if json_path:
        doc = metrics_document(table, dists)
        doc["exclude_border"] = bool(exclude_border)
        atomic_write_bytes(json_path, [json.dumps(doc).encode()])
        wrote(json_path, before)
    if plot_path:
        from ..evaluate.plots import plot_metric_histograms

        plot_metric_histograms(dists, plot_path, title=os.path.basename(map_path))
        wrote(plot_path, before)
    sel = ~table.border if exclude_border else np.ones(table.n, bool)
    click.echo(f"{table.n} grains ({int(table.border.sum())} touch the border) in {time.perf_counter() - t0:.1f} s")
    if sel.any():
        for name, v in (("size (ECD, cells)", table.size[sel]), ("perimeter (edges)", table.perimeter[sel]),
                        ("inertia ratio", table.inertia_ratio[sel]), ("coordination", table.coordination[sel]),
                        ("disorientation (°)", table.values("disorientation", exclude_border))):
            if len(v):
                click.echo(f"  {name:<20} mean {np.mean(v):8.2f}   median {np.median(v):8.2f}")


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=OutputFile("image"), metavar="OUT.png",
              help="Output picture (.png, .pdf, .svg, .jpg, .tif; replaced if it exists).")
@PHASE_OPT
def plot(map_path, output, phase):
    """IPF-Z orientation map of MAP with its colour key (non-indexed cells black).

    \b
    Example:
      infinityebsd plot scan.ctf -o ipf.png
    """
    from ..evaluate.plots import plot_ipf

    before = existing(output)
    m = read_map_checked(map_path)
    if phase is not None:
        m = m.select_phase(phase)
    # without --phase every phase is drawn, so all of them must be cubic (the key is m-3m's)
    present = {int(k) for k in np.unique(m.phase_id) if 0 < k <= len(m.phases)}
    bad = [m.phases[k - 1] for k in sorted(present) if not m.phases[k - 1].is_cubic]
    if bad:
        cubic = ", ".join(f"'{m.phases[k - 1].name}'" for k in sorted(present) if m.phases[k - 1].is_cubic)
        raise SymmetryError(f"{map_path}: phase '{bad[0].name}' has symmetry {bad[0].symmetry} and the IPF "
                            f"key is cubic m-3m's; draw a cubic phase with --phase NAME ({cubic})")
    plot_ipf(m, output)
    wrote(output, before)

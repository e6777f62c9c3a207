"""Analysis commands: info, clean, metrics, plot."""

from __future__ import annotations

import json
import os
import time

import click
import numpy as np

from . import main

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
    from ..io import read_map

    m = read_map(map_path)
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
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output .ctf file.")
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
    from ..io import read_map, write_ctf

    m = read_map(map_path)
    cm, g = clean_with_grains(m, threshold_deg=threshold, min_area=min_area, merge_twins=not no_twins,
                              phase=phase)
    if not output.lower().endswith(".ctf"):
        output += ".ctf"
    write_ctf(cm, output)
    click.echo(f"{g.n} grains; wrote {output}")


@main.command()
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write grains, boundaries and distributions.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the eight histograms (PNG).")
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
    from ..io import read_map
    from ..metrics import distributions, metrics_document, metrics_of

    t0 = time.perf_counter()
    m = read_map(map_path)
    table = metrics_of(m, clean=not no_clean, phase=phase, threshold_deg=threshold,
                       **({} if no_clean else {"min_area": min_area, "merge_twins": not no_twins}))
    dists = distributions(table, exclude_border=exclude_border)
    if json_path:
        from ..io._grid import atomic_write_bytes

        doc = metrics_document(table, dists)
        doc["exclude_border"] = bool(exclude_border)
        atomic_write_bytes(json_path, [json.dumps(doc).encode()])
    if plot_path:
        from ..evaluate.plots import plot_metric_histograms

        plot_metric_histograms(dists, plot_path, title=os.path.basename(map_path))
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
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output PNG.")
@PHASE_OPT
def plot(map_path, output, phase):
    """IPF-Z orientation map of MAP with its colour key (non-indexed cells black).

    \b
    Example:
      infinityebsd plot scan.ctf -o ipf.png
    """
    from ..evaluate.plots import plot_ipf
    from ..io import read_map

    m = read_map(map_path)
    if phase is not None or len({int(k) for k in np.unique(m.phase_id) if k > 0}) > 1:
        m = m.select_phase(phase) if phase else m
    if not all(p.is_cubic for p in m.phases if p):
        from ..errors import SymmetryError

        bad = next(p for p in m.phases if not p.is_cubic)
        raise SymmetryError(f"{map_path}: phase '{bad.name}' has symmetry {bad.symmetry}; the IPF key "
                            "here is for cubic m-3m only")
    plot_ipf(m, output)
    click.echo(f"wrote {output}")

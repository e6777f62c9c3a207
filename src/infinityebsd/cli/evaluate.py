"""Evaluation commands: ``evaluate`` (a generated map against its target) and ``compare`` (several maps)."""

from __future__ import annotations

import os

import click

from ..errors import InputError
from ..evaluate.seams import plan_beside, read_plan
from . import main, seed_option
from .params import OutputFolder, read_map_checked

# The measurements (scipy, scikit-image) and the report (matplotlib) are imported inside the
# commands, so that `infinityebsd --help` stays fast.


def _parse_box(text):
    if text is None:
        return None
    try:
        box = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] < 1 or box[3] < 1 or box[0] < 0 or box[1] < 0:
        raise InputError(f"--input-box '{text}' must read r0,c0,rows,cols (cells), e.g. 132,132,512,512")
    return box


class _Stages:
    """A tqdm bar over named stages; ``__call__(desc)`` advances to the next stage."""

    def __init__(self, total, desc):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="stage")
        self.started = False

    def __call__(self, text):
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_postfix_str(text)

    def close(self):
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()


def _print_table(summary):
    from ..evaluate.report import summary_rows

    header, rows = summary_rows(summary)
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    click.echo("  ".join(h.ljust(w[i]) for i, h in enumerate(header)))
    for r in rows:
        click.echo("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))


@main.command("evaluate")
@click.argument("map_path", metavar="MAP", type=click.Path(dir_okay=False))
@click.option("--target", "target_path", type=click.Path(dir_okay=False), help="Target map (e.g. the input map).")
@click.option("--target-metrics", "target_json", type=click.Path(dir_okay=False),
              help="Target metrics instead of a map: the JSON of `infinityebsd metrics --json`.")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False),
              help="Larger true map holding the input crop, for the border-grain study.")
@click.option("--input-box", default=None, metavar="R0,C0,ROWS,COLS",
              help="The input crop inside --truth, in cells.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False),
              help="Generation plan JSON (default: MAP.plan.json beside the map, if any).")
@click.option("--report", "report_dir", required=True, type=OutputFolder(),
              help="Folder for summary.json, report.md, report.html and the figures.")
@click.option("--crops", type=int, default=16, show_default=True, help="Number of k×k crops for homogeneity.")
@click.option("--no-clean", is_flag=True, help="Measure the maps as they are, without the pre-processing.")
@seed_option
def evaluate_cmd(map_path, target_path, target_json, truth_path, input_box, plan_path, report_dir, crops, no_clean,
                 seed):
    """Compare a generated MAP with its target: distances with reference levels, texture,
    homogeneity, seams (when a generation plan lies beside MAP) and border grains (with --truth).

    Per metric the report gives the paper's L2, the Wasserstein-1 distance over the target's standard
    deviation and the Kolmogorov–Smirnov statistic, next to the same figures for two halves of the
    target (real vs real) and for a Voronoi map of the same mean grain size.

    \b
    Examples:
      infinityebsd evaluate generated.ctf --target input.ctf --report report/
      infinityebsd evaluate generated.ctf --target-metrics target.json --report report/
      infinityebsd evaluate extended.ctf --truth full_real.ctf --input-box 132,132,512,512 --report report/
    """
    from ..evaluate.report import evaluate
    from ..metrics import read_metrics_json

    if target_path and target_json:
        raise InputError("give either --target or --target-metrics, not both")
    box = _parse_box(input_box)
    if (truth_path is None) != (box is None):
        raise InputError("--truth and --input-box go together: the true map and the input crop inside it")
    if not (target_path or target_json or truth_path):
        raise InputError("nothing to compare with: give --target MAP, --target-metrics JSON or --truth MAP")
    plan_path = plan_path or plan_beside(map_path)
    plan = read_plan(plan_path) if plan_path else None
    stages = _Stages(10, "evaluate")
    try:
        stages("reading maps")
        gen = read_map_checked(map_path)
        target = read_map_checked(target_path) if target_path else None
        ttab = read_metrics_json(target_json) if target_json else None
        truth = read_map_checked(truth_path) if truth_path else None
        names = {"generated": os.path.basename(map_path),
                 "target": os.path.basename(target_path or target_json or truth_path),
                 "truth": os.path.basename(truth_path) if truth_path else "truth"}
        summary = evaluate(gen, target, ttab, truth, box, plan, crops=crops, seed=seed, clean=not no_clean,
                           report_dir=report_dir, names=names, progress=stages)
    finally:
        stages.close()
    _print_table(summary)
    if "seams" in summary:
        click.echo(f"seam boundary-density ratio {summary['seams']['ratio']:.2f} (1 = no tiling artefacts)")
    if "border_grains" in summary:
        b = summary["border_grains"]
        click.echo(f"border grains: {b['n_cut_grains']} cut, {100 * b['continued_fraction']:.0f} % continued")
    click.echo(f"wrote {os.path.join(report_dir, 'report.md')}")


@main.command("compare")
@click.argument("map_paths", metavar="MAP...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--labels", default=None, help="Comma-separated names of the maps (default: file names).")
@click.option("--report", "report_dir", required=True, type=OutputFolder(),
              help="Folder for summary.json, report.md, report.html and the figures.")
@click.option("--no-clean", is_flag=True, help="Measure the maps as they are, without the pre-processing.")
@seed_option
def compare_cmd(map_paths, labels, report_dir, no_clean, seed):
    """Distances of each MAP to the first (the reference), with the reference's two halves as the
    real-vs-real level; IPF maps, histograms and texture side by side.

    \b
    Example:
      infinityebsd compare a.ctf b.ctf c.ctf --labels real,model,voronoi --report report/
    """
    from ..evaluate.report import compare

    if len(map_paths) < 2:
        raise InputError("compare needs at least two maps; the first is the reference")
    labs = labels.split(",") if labels else [os.path.basename(p) for p in map_paths]
    if len(labs) != len(map_paths) or len(set(labs)) != len(labs):
        raise InputError(f"--labels needs {len(map_paths)} distinct comma-separated names, one per map")
    stages = _Stages(len(map_paths) * 2 + 3, "compare")
    try:
        maps = []
        for p in map_paths:
            stages(f"reading {os.path.basename(p)}")
            maps.append(read_map_checked(p))
        summary = compare(maps, labs, report_dir, clean=not no_clean, seed=seed, progress=stages)
    finally:
        stages.close()
    _print_table(summary)
    click.echo(f"wrote {os.path.join(report_dir, 'report.md')}")

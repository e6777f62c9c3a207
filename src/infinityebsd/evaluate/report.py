"""The evaluation report: distances with reference levels, texture, homogeneity, seams, border grains.

:func:`evaluate` compares a generated map with its target (a map or a metrics JSON) in three steps a
caller can also run one by one:

1. :func:`measure_maps` cleans and measures every map (generated, target, truth, the references);
2. :func:`summarize` computes the numbers: the content of ``summary.json``, plus the arrays the figures
   need;
3. :func:`write_figures` and :func:`write_report` write the PNG figures, ``summary.json``,
   ``report.md`` and ``report.html`` into a folder (each file atomically).

:func:`compare` does the distances and pictures for several maps against the first.

Reference levels, so the numbers can be read:

* ``real_vs_real``: the target's two disjoint halves against each other (cut across the longer side;
  with only a metrics JSON, a random half split of its grains). Sampling noise of a map this size.
* ``target_vs_voronoi``: the target against a Voronoi map (:func:`infinityebsd.data.synth.synth_map`,
  ``method='voronoi'``) of the generated map's size and the target's mean grain size: what a user
  would otherwise use. A generated map is good where it is near real-vs-real and clearly below Voronoi.
* ``target_vs_growth``: the target against a map of the same size grown by ``--method growth`` from the
  target's statistics (:func:`reference_growth`): the physics-based baseline a learned model must beat.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .._shared import atomic_write_text
from ..data.synth import synth_map
from ..errors import InputError
from ..metrics import GrainTable
from ..pipeline.planner import Plan
from .border_grains import border_grains
from .compare import ALL_METRICS, common_edges, compare_tables, mackenzie_w1, metric_sample, texture_comparison
from .homogeneity import compare_homogeneity, homogeneity
from .measure import Measured, half_tables, measure, split_table
from .plots import fig_border, fig_histograms, fig_homogeneity, fig_ipf_panels, fig_texture
from .seams import as_plan, seam_lines, seam_statistics


def _nop(*_a, **_k):
    pass


# ------------------------------------------------------------------------------------------ step 1: measure
@dataclass
class Measurements:
    """Every map of an evaluation, measured (:func:`measure_maps`).

    ``target`` is None when only the target's table is known (``target_table``, from a metrics JSON);
    ``truth`` is the larger true map of the border-grain study; ``references`` the maps made to read the
    distances against (``{"voronoi": Measured}``); ``box_generated`` the input box in the generated map.
    """

    generated: Measured
    target_table: GrainTable
    target: Measured | None = None
    truth: Measured | None = None
    references: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    input_box: tuple | None = None
    box_generated: tuple | None = None
    plan: Plan | None = None
    seed: int = 0
    growth: Measured | None = None  # the physics-based baseline (:func:`reference_growth`)


def measure_maps(generated, target=None, target_table=None, truth=None, input_box=None, plan=None,
                 clean: bool = True, seed: int = 0, names=None, progress=_nop) -> Measurements:
    """Step 1 of :func:`evaluate` (same parameters): check what is given and measure every map."""
    names = {"generated": "generated", "target": "target", "truth": "truth", **(names or {})}
    plan = as_plan(plan)
    if truth is not None and input_box is None:
        raise InputError("a true map needs --input-box r0,c0,rows,cols (the input crop inside it)")
    if target is None and target_table is None and truth is None:
        raise InputError("nothing to compare with: give --target MAP, --target-metrics JSON or --truth MAP")
    progress("measuring generated map")
    gen = measure(generated, clean)
    tru = tm = None
    if truth is not None:
        progress("measuring true map")
        tru = measure(truth, clean)
        if target is None and target_table is None:
            target = truth.crop(*input_box)
            names["target"] = f"{names['truth']} (input box)"
    if target is not None:
        progress("measuring target map")
        tm = measure(target, clean)
        target_table = tm.table
    progress("reference: Voronoi map")
    references = {"voronoi": reference_voronoi(gen, target_table, seed)}
    progress("reference: growth map")
    growth = reference_growth(gen, target_table, seed)
    return Measurements(generated=gen, target_table=target_table, target=tm, truth=tru, references=references,
                        names=names, input_box=None if input_box is None else tuple(int(x) for x in input_box),
                        box_generated=_box_in_generated(input_box, gen.shape, plan), plan=plan, seed=seed,
                        growth=growth)


def reference_voronoi(generated: Measured, target_table: GrainTable, seed: int = 0) -> Measured:
    """A Voronoi map of the generated map's shape and the target's mean grain size, measured as it is."""
    m = synth_map(generated.shape, max(float(np.mean(target_table.size)), 4.0), method="voronoi", seed=seed,
                  step=generated.map.step[0])
    return measure(m, False)


def reference_growth(generated: Measured, target_table: GrainTable, seed: int = 0) -> Measured | None:
    """A map of the generated map's shape made by ``--method growth`` from the target's statistics
    (grain growth to its size distribution, orientations matched to its grains and boundaries): the
    physics-based baseline a learned model must beat. None when the target's grains are too small."""
    from ..metrics import conditioning_tensor
    from ..pipeline.growth import extend_growth

    try:
        res = extend_growth(None, generated.shape, cond=conditioning_tensor(target_table),
                            mean_size=float(np.mean(target_table.size)), seed=seed, progress=False, log=_nop,
                            target_quat=target_table.quat, target_disorientation_deg=target_table.disorientation_deg)
    except InputError:
        return None
    res.map.step = generated.map.step
    return measure(res.map, False)


# ------------------------------------------------------------------------------------------ step 2: summary
@dataclass
class Evaluation:
    """What :func:`summarize` finds: ``summary`` (the content of ``summary.json``) and the arrays the
    figures draw (texture sections, crop envelopes, border-grain samples)."""

    summary: dict
    measurements: Measurements
    texture: dict
    homogeneity_generated: dict
    homogeneity_target: dict | None = None
    border: dict | None = None


def summarize(meas: Measurements, crops: int = 16, progress=_nop) -> Evaluation:
    """Step 2 of :func:`evaluate`: distances, reference levels, texture, homogeneity, seams, border grains."""
    gen, tm, tru, ttab, names = meas.generated, meas.target, meas.truth, meas.target_table, meas.names
    summary = {"generated": names["generated"], "target": names["target"], "created": _now(),
               "definitions": _DEFINITIONS, "grains": {"generated": gen.table.n, "target": ttab.n},
               "mean_size": {"generated": float(np.mean(gen.table.size)), "target": float(np.mean(ttab.size))}}
    progress("distances")
    summary["distances"] = compare_tables(ttab, gen.table)

    progress("reference: real vs real")
    if tm is not None:
        ha, hb = half_tables(tm)
        summary["reference_split"] = "two halves of the target map"
    else:
        ha, hb = split_table(ttab, meas.seed)
        summary["reference_split"] = "random half split of the target's grains (no target map)"
    summary["real_vs_real"] = compare_tables(ha, hb)

    vor = meas.references["voronoi"]
    summary["target_vs_voronoi"] = compare_tables(ttab, vor.table)
    summary["voronoi"] = {"shape": list(gen.shape), "grain_size": float(np.mean(ttab.size)), "seed": meas.seed,
                          "grains": vor.table.n}

    progress("texture")
    tex = texture_comparison(ttab, gen.table)
    summary["texture"] = {k: v for k, v in tex.items() if not k.startswith("section")}
    summary["texture"]["mackenzie_w1_voronoi"] = mackenzie_w1(vor.table.disorientation_deg)
    gro = meas.growth
    if gro is not None:
        summary["target_vs_growth"] = compare_tables(ttab, gro.table)
        summary["texture"]["mackenzie_w1_growth"] = mackenzie_w1(gro.table.disorientation_deg)

    progress("homogeneity")
    hom_gen = homogeneity(gen, crops)
    summary["homogeneity"] = {"crops": crops, "generated": {k: v["spread"] for k, v in hom_gen.items()}}
    hom_tgt = None
    if tm is not None:
        try:
            edges = {k: common_edges(metric_sample(tm.table, k)[0], metric_sample(gen.table, k)[0], k)
                     for k in ALL_METRICS}  # one set of bins, so the envelopes compare bin by bin
            hom_tgt = homogeneity(tm, crops, edges=edges)
            hom_gen = homogeneity(gen, crops, edges=edges)
            summary["homogeneity"]["comparison"] = compare_homogeneity(hom_gen, hom_tgt)
        except InputError as exc:  # a target too small for the crops: report it, keep the rest
            hom_tgt = None
            summary["homogeneity"]["target_note"] = str(exc)

    if meas.plan is not None:
        progress("seams")
        summary["seams"] = seam_statistics(gen.labels, meas.plan)

    border = None
    if tru is not None:
        progress("border grains")
        border = border_grains(tru, gen, meas.input_box, meas.box_generated)
        summary["border_grains"] = {k: v for k, v in border.items() if k != "samples"}
        summary["border_grains"]["box_truth"] = list(meas.input_box)
        summary["border_grains"]["box_generated"] = list(map(int, meas.box_generated))
    return Evaluation(summary, meas, tex, hom_gen, hom_tgt, border)


# ------------------------------------------------------------------------------------------ step 3: write
def write_figures(ev: Evaluation, report_dir) -> dict:
    """Step 3a of :func:`evaluate`: the PNG figures; returns ``{figure: file name}``."""
    meas, names = ev.measurements, ev.measurements.names
    gen, tm, tru = meas.generated, meas.target, meas.truth
    os.makedirs(report_dir, exist_ok=True)
    path = lambda name: os.path.join(report_dir, name)  # noqa: E731
    panels = []
    if tm is not None:
        panels.append((names["target"], tm.map, [], []))
    if tru is not None:
        panels.append((names["truth"], tru.map, [meas.input_box], []))
    lines = []
    if meas.plan is not None:
        hor, ver = seam_lines(meas.plan)
        lines = [((ln, a), (ln, b)) for ln, a, b in hor] + [((a, ln), (b, ln)) for ln, a, b in ver]
    panels.append((names["generated"], gen.map, [meas.box_generated] if meas.box_generated else [], lines))
    figs = {"ipf": fig_ipf_panels(panels, path("ipf.png"))}
    others = [(names["generated"], gen.table, ev.summary["distances"])]
    others += [("Voronoi", meas.references["voronoi"].table, None)]
    figs["histograms"] = fig_histograms(meas.target_table, others, path("histograms.png"), names["target"])
    figs["texture"] = fig_texture([(names["target"], ev.texture["section_target"], meas.target_table),
                                   (names["generated"], ev.texture["section_other"], gen.table)], path("texture.png"))
    figs["homogeneity"] = fig_homogeneity(ev.homogeneity_generated, ev.homogeneity_target, path("homogeneity.png"),
                                          names["generated"], names["target"])
    if ev.border is not None and ev.border["n_cut_grains"]:
        figs["border_grains"] = fig_border(ev.border, path("border_grains.png"))
    return figs


# ------------------------------------------------------------------------------------------ main API
def evaluate(generated, target=None, target_table=None, truth=None, input_box=None, plan=None, crops: int = 16,
             seed: int = 0, clean: bool = True, report_dir=None, names=None, progress=_nop) -> dict:
    """Evaluate a generated map against its target; write the report into ``report_dir`` if given.

    Parameters
    ----------
    generated : EBSDMap
    target : EBSDMap, optional. The map whose statistics were the goal (e.g. the input map).
    target_table : GrainTable, optional. The target's metrics when there is no target map
        (e.g. from ``metrics --json``); ignored when ``target`` is given.
    truth, input_box : a larger true map and the box (r0, c0, rows, cols) of the input crop in it, for the
        border-grain study. Without a target, the truth's crop is the target.
    plan : the generation :class:`~infinityebsd.pipeline.planner.Plan` (a dictionary of its JSON is
        accepted too), for seams and to locate the input box in the generated map (otherwise it is
        assumed centred).
    crops : number of k×k crops for the homogeneity check.
    seed : seed of the Voronoi reference (and of the grain split without a target map).
    clean : clean the maps like ``infinityebsd clean`` before measuring.
    names : display names ``{"generated", "target", "truth"}``.
    progress : called with a short stage description before each stage.

    Returns the summary dictionary (the content of ``summary.json``).
    """
    meas = measure_maps(generated, target, target_table, truth, input_box, plan, clean, seed, names, progress)
    ev = summarize(meas, crops, progress)
    if report_dir is not None:
        progress("figures and pages")
        ev.summary["figures"] = write_figures(ev, report_dir)
        write_report(ev.summary, report_dir)
    return ev.summary


def compare(maps, labels, report_dir=None, clean: bool = True, seed: int = 0, progress=_nop) -> dict:
    """Distances of maps[1:] to maps[0] (the reference), with the reference's own half-vs-half level."""
    if len(maps) < 2:
        raise InputError("compare needs at least two maps; the first is the reference")
    meas = []
    for lab, m in zip(labels, maps):
        progress(f"measuring {lab}")
        meas.append(measure(m, clean))
    ref = meas[0]
    summary = {"reference": labels[0], "created": _now(), "definitions": _DEFINITIONS,
               "grains": {lab: mm.table.n for lab, mm in zip(labels, meas)},
               "mean_size": {lab: float(np.mean(mm.table.size)) for lab, mm in zip(labels, meas)}}
    progress("distances")
    summary["real_vs_real"] = compare_tables(*half_tables(ref))
    summary["comparisons"] = {lab: compare_tables(ref.table, mm.table) for lab, mm in zip(labels[1:], meas[1:])}
    progress("texture")
    secs, tex = [], {}
    for lab, mm in zip(labels, meas):
        t = texture_comparison(ref.table, mm.table)
        secs.append((lab, t["section_other"], mm.table))
        tex[lab] = {"rms_mrd_vs_reference": t["rms_mrd"], "max_mrd": t["max_mrd_other"],
                    "mackenzie_w1": t["mackenzie_w1_other"]}
    summary["texture"] = tex
    if report_dir is not None:
        progress("figures and pages")
        os.makedirs(report_dir, exist_ok=True)
        figs = {"ipf": fig_ipf_panels([(lab, mm.map, [], []) for lab, mm in zip(labels, meas)],
                                      os.path.join(report_dir, "ipf.png"))}
        figs["histograms"] = fig_histograms(
            ref.table, [(lab, mm.table, summary["comparisons"][lab]) for lab, mm in zip(labels[1:], meas[1:])],
            os.path.join(report_dir, "histograms.png"), labels[0])
        figs["texture"] = fig_texture(secs, os.path.join(report_dir, "texture.png"))
        summary["figures"] = figs
        write_report(summary, report_dir)
    return summary


# ------------------------------------------------------------------------------------------ helpers
def _box_in_generated(input_box, shape, plan):
    """The input box in generated-map coordinates: the plan's, else ``input_box``'s size centred in the
    generated map; None without either."""
    if plan is not None and plan.input_box:
        return tuple(int(x) for x in plan.input_box)
    if input_box is None:
        return None
    _, _, nr, nc = (int(x) for x in input_box)
    return ((shape[0] - nr) // 2, (shape[1] - nc) // 2, nr, nc)


def _now():
    return _dt.datetime.now().isoformat(timespec="seconds")


_DEFINITIONS = {
    "l2": "Euclidean norm of the difference of bin probabilities on common bins (the paper's L2)",
    "w1": "Wasserstein-1 distance divided by the target's standard deviation (area-weighted for "
          "size_area_weighted)",
    "ks": "two-sample Kolmogorov-Smirnov statistic",
    "real_vs_real": "the same distances between two disjoint halves of the target",
    "target_vs_voronoi": "the same distances between the target and a Voronoi map of the target's mean "
                         "grain size and the generated map's shape",
    "target_vs_growth": "the same distances between the target and a map of the generated map's shape grown "
                        "by --method growth from the target's statistics (the physics-based baseline)",
    "homogeneity spread": "mean over k x k crops of the L2 between a crop's and the whole map's distribution",
    "seams ratio": "grain-boundary edges per cell within 2 cells of the window seams over elsewhere",
    "mackenzie_w1": "Wasserstein-1 (degrees) between boundary disorientations and the Mackenzie distribution",
    "continued_fraction": "share of cut grains whose orientation continues across the input border (5°)",
}


# ------------------------------------------------------------------------------------------ pages
def _fmt(x, nd=3):
    if x is None:
        return "–"
    if isinstance(x, float) and not np.isfinite(x):
        return "–"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def summary_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table (one row per metric)."""
    if "comparisons" in summary:
        cols = [("real vs real", summary["real_vs_real"])] + [
            (f"{summary['reference']} vs {lab}", d) for lab, d in summary["comparisons"].items()]
    else:
        cols = [("real vs real", summary["real_vs_real"]), ("generated", summary["distances"]),
                ("Voronoi", summary["target_vs_voronoi"])]
        if summary.get("target_vs_growth"):
            cols.append(("growth", summary["target_vs_growth"]))
    header = ["metric"] + [f"{c} {k}" for c, _ in cols for k in ("L2", "W1/σ", "KS")]
    rows = []
    for name in ALL_METRICS:
        row = [name]
        for _, d in cols:
            row += [_fmt(d[name]["l2"]), _fmt(d[name]["w1"]), _fmt(d[name]["ks"])]
        rows.append(row)
    return header, rows


def _md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _json_ready(x):
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_ready(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_report(summary: dict, report_dir) -> None:
    """Write ``summary.json``, ``report.md`` and ``report.html`` (atomically) into ``report_dir``."""
    atomic_write_text(os.path.join(report_dir, "summary.json"), json.dumps(_json_ready(summary), indent=1))
    header, rows = summary_rows(summary)
    title = (f"# Evaluation: {summary['generated']} against {summary['target']}" if "distances" in summary
             else f"# Comparison against {summary['reference']}")
    md = [title, "", f"Created {summary['created']}. Grains: "
          + ", ".join(f"{k} {v}" for k, v in summary["grains"].items())
          + ". Mean grain size (ECD, cells): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["mean_size"].items())
          + ".", "", "## Distances per metric", "",
          "L2: the paper's norm between bin probabilities on common bins; W1/σ: Wasserstein-1 over the target's "
          "standard deviation; KS: Kolmogorov–Smirnov statistic. 0 means identical. Real vs real: two disjoint "
          f"halves of the reference ({summary.get('reference_split', 'two halves of the reference map')}), "
          "the level of sampling noise. A generated map is good where it is near real vs real and clearly "
          "below Voronoi.", "", _md_table(header, rows), ""]
    tex = summary.get("texture", {})
    md += ["## Texture", ""]
    if "comparisons" in summary:
        md += [_md_table(["map", "RMS ΔMRD vs reference (φ2=45°)", "max MRD", "Mackenzie W1 (°)"],
                         [[k, _fmt(v["rms_mrd_vs_reference"]), _fmt(v["max_mrd"], 2), _fmt(v["mackenzie_w1"], 2)]
                          for k, v in tex.items()]), ""]
    else:
        md += [f"φ2 = 45° sections (area-weighted kernel ODF, 10° half width, MRD): RMS difference "
               f"{_fmt(tex.get('rms_mrd'))}, max MRD target {_fmt(tex.get('max_mrd_target'), 2)}, generated "
               f"{_fmt(tex.get('max_mrd_other'), 2)}. Boundary disorientation vs Mackenzie, W1 (degrees): target "
               f"{_fmt(tex.get('mackenzie_w1_target'), 2)}, generated {_fmt(tex.get('mackenzie_w1_other'), 2)}, "
               f"Voronoi {_fmt(tex.get('mackenzie_w1_voronoi'), 2)}.", ""]
    hom = summary.get("homogeneity")
    if hom:
        md += ["## Homogeneity", "", f"{hom['crops']} non-overlapping crops. Spread = mean L2 between a crop's "
               "distribution and the whole map's; envelope = share of the generated crops' mean distribution "
               "(by probability) in bins where it lies within the target crops' min–max.", ""]
        comp = hom.get("comparison")
        if comp:
            md += [_md_table(["metric", "spread generated", "spread target", "ratio", "inside target envelope"],
                             [[k, _fmt(v["spread_generated"]), _fmt(v["spread_target"]), _fmt(v["spread_ratio"], 2),
                               _fmt(v["inside_target_envelope"], 2)] for k, v in comp.items()]), ""]
        else:
            md += [_md_table(["metric", "spread generated"], [[k, _fmt(v)] for k, v in hom["generated"].items()]), ""]
            if hom.get("target_note"):
                md += [f"Target not cut: {hom['target_note']}", ""]
    if summary.get("seams"):
        s = summary["seams"]
        md += ["## Seams", "", f"{s['n_seams']} seam segments. Boundary density (edges per cell) within "
               f"{s['band']} cells of a seam {_fmt(s['density_seam'])}, elsewhere {_fmt(s['density_elsewhere'])}, "
               f"ratio **{_fmt(s['ratio'], 2)}** (1 = no tiling artefacts). Cell edges on the seam lines that are "
               f"boundaries: {_fmt(s['on_seam_fraction'])} against {_fmt(s['control_fraction'])} on other lines "
               f"(ratio {_fmt(s['straightness_ratio'], 2)}); mean straight run along seams "
               f"{_fmt(s['mean_run_seam'], 1)} cells, elsewhere {_fmt(s['mean_run_control'], 1)}.", ""]
    if summary.get("border_grains"):
        b = summary["border_grains"]
        md += ["## Border grains", "", f"{b['n_cut_grains']} grains of the true map are cut by the input box "
               f"border. Continued across the border with their orientation (within {b.get('tol_deg', 5)}°): "
               f"**{_fmt(b['continued_fraction'], 2)}** of the grains, {_fmt(b['edge_continued_fraction'], 2)} of "
               "the crossing cell edges.", ""]
        if b.get("distances"):
            md += [_md_table(["metric", "L2", "W1/σ", "KS", "n truth", "n extended"],
                             [[k, _fmt(v["l2"]), _fmt(v["w1"]), _fmt(v["ks"]), str(v["n_target"]), str(v["n_other"])]
                              for k, v in b["distances"].items()]), ""]
    md += ["## Figures", ""]
    for key, fn in summary.get("figures", {}).items():
        md += [f"### {key}", "", f"![{key}]({fn})", ""]
    text = "\n".join(md)
    atomic_write_text(os.path.join(report_dir, "report.md"), text)
    atomic_write_text(os.path.join(report_dir, "report.html"), _html(text))


def _html(md: str) -> str:
    """A plain HTML rendering of the Markdown page (tables, headings, images, paragraphs)."""
    out, in_table = [], False
    for line in md.split("\n"):
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            out.append(f'<p><img src="{html.escape(src)}" style="max-width:100%"></p>')
        elif line.strip():
            t = html.escape(line)
            while "**" in t:
                t = t.replace("**", "<b>", 1).replace("**", "</b>", 1)
            out.append(f"<p>{t}</p>")
    if in_table:
        out.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}")
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>" + \
        "\n".join(out) + "</body></html>"

"""The evaluation report: distances with reference levels, texture, homogeneity, seams, border grains.

:func:`evaluate` compares a generated map with its target (a map or a metrics JSON) and writes
``summary.json``, ``report.md``, ``report.html`` and PNG figures into a folder (each file atomically).
:func:`compare` does the distances and pictures for several maps against the first.

Reference levels, so the numbers can be read:

* ``real_vs_real``: the target's two disjoint halves against each other (cut across the longer side;
  with only a metrics JSON, a random half split of its grains). Sampling noise of a map this size.
* ``target_vs_voronoi``: the target against a Voronoi map (:func:`infinityebsd.data.synth.synth_map`,
  ``method='voronoi'``) of the generated map's size and the target's mean grain size: what a user
  would otherwise use. A generated map is good where it is near real-vs-real and clearly below Voronoi.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os

import numpy as np

from ..io._grid import atomic_write_bytes
from .compare import (
    ALL_METRICS, bin_probabilities, common_edges, compare_tables, mackenzie_w1, metric_sample,
    phi2_section_grid, texture_comparison,
)
from .spatial import (
    BORDER_METRICS, border_grains, compare_homogeneity, halves, homogeneity, measure, seam_lines,
    seam_statistics, split_table, sub_table,
)

LABELS = {
    "size": "grain size (ECD, cells)", "perimeter": "perimeter (cell edges)",
    "inertia_ratio": "inertia ratio", "coordination": "coordination number",
    "disorientation": "boundary disorientation (°)", "phi1": "φ1 (°)", "Phi": "Φ (°)", "phi2": "φ2 (°)",
    "size_area_weighted": "grain size, area-weighted (cells)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _nop(*_a, **_k):
    pass


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
    plan : generation plan dict (``canvas``, ``input_box``, ``patch``, ``windows``), for seams and to
        locate the input box in the generated map (otherwise it is assumed centred).
    crops : number of k×k crops for the homogeneity check.
    seed : seed of the Voronoi reference (and of the grain split without a target map).
    clean : clean the maps like ``infinityebsd clean`` before measuring.
    names : display names ``{"generated", "target", "truth"}``.
    progress : called with a short stage description before each stage.

    Returns the summary dictionary (the content of ``summary.json``).
    """
    from ..data.synth import synth_map

    names = {"generated": "generated", "target": "target", "truth": "truth", **(names or {})}
    progress("measuring generated map")
    gen = measure(generated, clean)
    tm = tru = None
    if truth is not None:
        if input_box is None:
            from ..errors import InputError

            raise InputError("a true map needs --input-box r0,c0,rows,cols (the input crop inside it)")
        progress("measuring true map")
        tru = measure(truth, clean)
        if target is None and target_table is None:
            target = truth.crop(*input_box)
            names["target"] = f"{names['truth']} (input box)"
    if target is not None:
        progress("measuring target map")
        tm = measure(target, clean)
        ttab = tm.table
    elif target_table is not None:
        ttab = target_table
    else:
        from ..errors import InputError

        raise InputError("nothing to compare with: give --target MAP, --target-metrics JSON or --truth MAP")

    summary = {"generated": names["generated"], "target": names["target"], "created": _now(),
               "definitions": _DEFINITIONS, "grains": {"generated": gen.table.n, "target": ttab.n},
               "mean_size": {"generated": float(np.mean(gen.table.size)), "target": float(np.mean(ttab.size))}}
    progress("distances")
    summary["distances"] = compare_tables(ttab, gen.table)

    progress("reference: real vs real")
    if tm is not None:
        ha, hb = (sub_table(tm.labels, tm.quat, b, tm.table.step) for b in halves(tm.shape))
        summary["reference_split"] = "two halves of the target map"
    else:
        ha, hb = split_table(ttab, seed)
        summary["reference_split"] = "random half split of the target's grains (no target map)"
    summary["real_vs_real"] = compare_tables(ha, hb)

    progress("reference: Voronoi map")
    vor_map = synth_map(gen.shape, max(float(np.mean(ttab.size)), 4.0), method="voronoi", seed=seed,
                        step=gen.map.step[0])
    vor = measure(vor_map, False)
    summary["target_vs_voronoi"] = compare_tables(ttab, vor.table)
    summary["voronoi"] = {"shape": list(gen.shape), "grain_size": float(np.mean(ttab.size)), "seed": seed,
                          "grains": vor.table.n}

    progress("texture")
    tex = texture_comparison(ttab, gen.table)
    summary["texture"] = {k: v for k, v in tex.items() if not k.startswith("section")}
    summary["texture"]["mackenzie_w1_voronoi"] = mackenzie_w1(vor.table.disorientation_deg)

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
        except Exception as exc:  # a target too small for the crops: report it, keep the rest
            from ..errors import InputError

            if not isinstance(exc, InputError):
                raise
            summary["homogeneity"]["target_note"] = str(exc)

    seams = None
    if plan is not None:
        progress("seams")
        seams = seam_statistics(gen.labels, plan)
        summary["seams"] = seams
    box_gen = None
    if input_box is not None:
        box_gen = _box_in_generated(input_box, gen.shape, plan)
    elif plan is not None and plan.get("input_box"):
        box_gen = tuple(plan["input_box"])

    border = None
    if tru is not None:
        progress("border grains")
        border = border_grains(tru, gen, input_box, box_gen)
        summary["border_grains"] = {k: v for k, v in border.items() if k != "samples"}
        summary["border_grains"]["box_truth"] = list(map(int, input_box))
        summary["border_grains"]["box_generated"] = list(map(int, box_gen))

    if report_dir is not None:
        progress("figures and pages")
        figs = {}
        os.makedirs(report_dir, exist_ok=True)
        panels = []
        if tm is not None:
            panels.append((names["target"], tm.map, [], []))
        if tru is not None:
            panels.append((names["truth"], tru.map, [tuple(input_box)], []))
        lines = []
        if plan is not None:
            hor, ver = seam_lines(plan)
            lines = [((ln, a), (ln, b)) for ln, a, b in hor] + [((a, ln), (b, ln)) for ln, a, b in ver]
        panels.append((names["generated"], gen.map, [box_gen] if box_gen else [], lines))
        figs["ipf"] = _fig_ipf(panels, os.path.join(report_dir, "ipf.png"))
        figs["histograms"] = _fig_histograms(
            ttab, [(names["generated"], gen.table, summary["distances"]), ("Voronoi", vor.table, None)],
            os.path.join(report_dir, "histograms.png"), names["target"])
        figs["texture"] = _fig_texture(
            [(names["target"], tex["section_target"], ttab), (names["generated"], tex["section_other"], gen.table)],
            os.path.join(report_dir, "texture.png"))
        figs["homogeneity"] = _fig_homogeneity(hom_gen, hom_tgt, os.path.join(report_dir, "homogeneity.png"),
                                               names["generated"], names["target"])
        if border is not None and border["n_cut_grains"]:
            figs["border_grains"] = _fig_border(border, os.path.join(report_dir, "border_grains.png"))
        summary["figures"] = figs
        write_report(summary, report_dir)
    return summary


def compare(maps, labels, report_dir=None, clean: bool = True, seed: int = 0, progress=_nop) -> dict:
    """Distances of maps[1:] to maps[0] (the reference), with the reference's own half-vs-half level."""
    if len(maps) < 2:
        from ..errors import InputError

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
    ha, hb = (sub_table(ref.labels, ref.quat, b, ref.table.step) for b in halves(ref.shape))
    summary["real_vs_real"] = compare_tables(ha, hb)
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
        figs = {"ipf": _fig_ipf([(lab, mm.map, [], []) for lab, mm in zip(labels, meas)],
                                os.path.join(report_dir, "ipf.png"))}
        figs["histograms"] = _fig_histograms(
            ref.table, [(lab, mm.table, summary["comparisons"][lab]) for lab, mm in zip(labels[1:], meas[1:])],
            os.path.join(report_dir, "histograms.png"), labels[0])
        figs["texture"] = _fig_texture(secs, os.path.join(report_dir, "texture.png"))
        summary["figures"] = figs
        write_report(summary, report_dir)
    return summary


def _box_in_generated(input_box, shape, plan):
    """The input box in generated-map coordinates: the plan's, else centred in the generated map."""
    if plan is not None and plan.get("input_box"):
        return tuple(int(x) for x in plan["input_box"])
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
    atomic_write_bytes(os.path.join(report_dir, "summary.json"),
                       [json.dumps(_json_ready(summary), indent=1).encode()])
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
    atomic_write_bytes(os.path.join(report_dir, "report.md"), [text.encode()])
    atomic_write_bytes(os.path.join(report_dir, "report.html"), [_html(text).encode()])


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


# ------------------------------------------------------------------------------------------ figures
def _save(fig, path):
    from .plots import save_figure

    save_figure(fig, path)
    _pyplot().close(fig)
    return os.path.basename(path)


def _fig_ipf(panels, path):
    """IPF-Z maps side by side (same µm scale), with boxes (dashed white) and seam lines (thin white)."""
    from .plots import draw_ipf_key, ipf_image

    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * n + 1.6, 4.6),
                             gridspec_kw={"width_ratios": [1] * n + [0.35]})
    for ax, (title, m, boxes, lines) in zip(axes, panels):
        rows, cols = m.shape
        sy, sx = m.step
        ax.imshow(ipf_image(m), interpolation="nearest", extent=(0, cols * sx, rows * sy, 0))
        for (r0, c0, nr, nc) in boxes:
            ax.add_patch(plt.Rectangle((c0 * sx, r0 * sy), nc * sx, nr * sy, fill=False, ec="white", lw=1.4, ls="--"))
        for (p0, p1) in lines:
            ax.plot([p0[1] * sx, p1[1] * sx], [p0[0] * sy, p1[0] * sy], color="white", lw=0.5, alpha=0.6)
        ax.set_title(f"{title}\n{rows}×{cols} cells", fontsize=9)
        ax.set_xlabel("X (µm)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("Y (µm)", fontsize=8)
    draw_ipf_key(axes[-1])
    axes[-1].set_title("IPF-Z", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _fig_histograms(target, others, path, target_label):
    """Per metric: target bin probabilities (bars) and the others (step lines) on the first pair's bins."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(14, 10.5))
    colours = ["#c0504d", "#4f81bd", "#9bbb59", "#8064a2", "#f79646"]
    for ax, name in zip(axes.ravel(), ALL_METRICS):
        a, wa = metric_sample(target, name)
        b, _ = metric_sample(others[0][1], name)
        edges = common_edges(a[np.isfinite(a)], b[np.isfinite(b)], name)
        ax.bar(edges[:-1], bin_probabilities(a, edges, wa), width=np.diff(edges), align="edge", color="#aaaaaa",
               edgecolor="white", lw=0.3, label=target_label)
        for k, (lab, tab, dist) in enumerate(others):
            v, w = metric_sample(tab, name)
            p = bin_probabilities(v, edges, w)
            ax.step(edges, np.append(p, p[-1] if len(p) else 0), where="post", color=colours[k % 5], lw=1.5,
                    label=lab if dist is None else f"{lab}: L2 {dist[name]['l2']:.3f}, W1/σ {dist[name]['w1']:.2f}, "
                                                     f"KS {dist[name]['ks']:.2f}")
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.set_ylabel("fraction of area" if name == "size_area_weighted" else "fraction", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _fig_texture(sections, path):
    """φ2 = 45° sections side by side (shared colour scale, MRD) and disorientations against Mackenzie."""
    from ..crystal import mackenzie_density

    plt = _pyplot()
    n = len(sections)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.3 * n + 4.5, 3.6))
    vmax = max(float(s.max()) for _, s, _ in sections)
    phi1, Phi = phi2_section_grid()
    im = None
    for ax, (lab, s, _) in zip(axes, sections):
        im = ax.imshow(s, origin="upper", extent=(phi1[0], phi1[-1], Phi[-1], Phi[0]), aspect="auto",
                       cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"{lab}: φ2 = 45° (max {s.max():.2f} MRD)", fontsize=9)
        ax.set_xlabel("φ1 (°)", fontsize=8)
        ax.set_ylabel("Φ (°)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=axes[n - 1], fraction=0.05, pad=0.02, label="MRD")
    ax = axes[-1]
    th = np.linspace(0, 63, 200)
    edges = np.arange(0, 66, 3.0)
    for lab, _, tab in sections:
        d = tab.disorientation_deg
        ax.hist(d, bins=edges, density=True, histtype="step", lw=1.4,
                label=f"{lab} (W1 {mackenzie_w1(d):.1f}°)")
    ax.plot(th, mackenzie_density(th, n_axes=20_000), "k--", lw=1.2, label="Mackenzie (random)")
    ax.set_xlabel("boundary disorientation (°)", fontsize=8)
    ax.set_ylabel("density (per °)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _fig_homogeneity(hom_gen, hom_tgt, path, gen_label, tgt_label):
    """Per metric: whole-map bars, the crops' min–max as error bars; the target's crop envelope shaded."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(14, 10.5))
    for ax, name in zip(axes.ravel(), ALL_METRICS):
        h = hom_gen[name]
        e = h["edges"]
        mid = 0.5 * (e[1:] + e[:-1])
        if hom_tgt is not None:
            t = hom_tgt[name]
            ax.fill_between(e, np.append(t["min"], t["min"][-1]), np.append(t["max"], t["max"][-1]), step="post",
                            color="#4f81bd", alpha=0.25, label=f"{tgt_label} crops min–max")
        ax.bar(e[:-1], h["whole"], width=np.diff(e), align="edge", color="#c0504d", alpha=0.75, edgecolor="white",
               lw=0.3, label=f"{gen_label} whole map")
        ax.errorbar(mid, 0.5 * (h["min"] + h["max"]), yerr=0.5 * (h["max"] - h["min"]), fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2, label=f"{gen_label} crops min–max")
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.set_ylabel("fraction", fontsize=8)
        ax.set_title(f"spread {h['spread']:.3f}" + (f" (target {hom_tgt[name]['spread']:.3f})" if hom_tgt else ""),
                     fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _fig_border(border, path):
    """Cut grains: truth (blue) against the extended map (red), paper Figs. 30–32."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    for ax, name in zip(axes, BORDER_METRICS):
        a, b = border["samples"][name]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        edges = common_edges(a, b, name)
        ax.hist(a, bins=edges, density=True, alpha=0.55, color="#4f81bd", label=f"truth ({len(a)})")
        ax.hist(b, bins=edges, density=True, alpha=0.55, color="#c0504d", label=f"extended ({len(b)})")
        d = border["distances"][name]
        ax.set_title(f"W1/σ {d['w1']:.2f}  KS {d['ks']:.2f}", fontsize=9)
        ax.set_xlabel(LABELS[name], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"grains cut by the input border: {border['n_cut_grains']}; continued across it: "
                 f"{100 * border['continued_fraction']:.0f} %", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

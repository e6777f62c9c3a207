"""Extension methods side by side: the centre crop of a map extended back to full size, against the truth.

For each method (``voronoi``: Poisson-Voronoi fill; ``growth``: ``--method growth``; ``model``: the
public ``extend()`` path with the model folder given by ``--model``), on held-out synthetic maps (four
192x192 maps from ``data.synth``: three grain sizes and one elongated, textured map) and on the cleaned
cubic single-phase real maps in ../shared/data/real (the nickel and the 316L maps; the copper map is
on a hexagonal grid, which the readers refuse), the centre of the map (half of it in each direction unless ``--crop`` says otherwise) is
extended back to the full map and compared with the truth:

* border density ratio (boundary density in a 2-cell band on each side of the input border over
  the density in the rest of the generated region), for the extension and for the truth, and their
  quotient (issue 11: <= 1.15);
* straight-run share (boundary length in straight axis-aligned runs of >= 12 edges between the
  same two grains), extension and truth;
* share of the truth's cut grains that continue (orientation within 5° across the border on most
  of their crossing edges: ``evaluate.border_grains.border_grains``; issue 11: >= 90 %), and the
  same over the grains that go on at least 3 cells past the border in the truth (a grain crossing by
  a cell or two is continued or not within the width of a boundary);
* W1/σ of size, perimeter, inertia ratio and coordination between the grains of the generated
  region (grains not wholly inside the input) and the truth's grains in the same region, next to the
  real-vs-real level (the truth's two halves).

Writes a JSON of all figures and prints a Markdown table.

    python scripts/evaluate_methods.py --methods voronoi growth --seeds 0 1 2 --out methods_eval.json
    python scripts/evaluate_methods.py --methods voronoi growth model --model path/to/model
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))

import infinityebsd as ie  # noqa: E402
from infinityebsd.evaluate.boundaries import border_density_ratio, continued_share, straight_run_share  # noqa: E402
from infinityebsd.evaluate.compare import compare_tables  # noqa: E402
from infinityebsd.evaluate.border_grains import border_grains  # noqa: E402
from infinityebsd.evaluate.measure import halves, measure, sub_table  # noqa: E402
from infinityebsd.grains import clean  # noqa: E402
from infinityebsd._shared import atomic_write_text  # noqa: E402  (makes the folder; a kill leaves no half file)

REAL = HERE.parent / "shared" / "data" / "real"
REAL_MAPS = {"nickel": REAL / "dream3d_edax_ni_h5" / "EdaxAngOnly.h5",
             "316L": REAL / "kanapy_316L_am" / "ebsd_316L_500x500.ang"}
SYNTH = [  # (name, grain size, aspect, angle, texture, seed): held out (seeds outside any corpus)
    ("synth-d10", 10, 1.0, 0.0, "random", 101),
    ("synth-d16", 16, 1.0, 0.0, "cube:0.3", 102),
    ("synth-d24", 24, 1.0, 0.0, "random", 103),
    ("synth-d14-elongated", 14, 2.5, 30.0, "goss:0.3", 104),
]
SHAPE_METRICS = ("size", "perimeter", "inertia_ratio", "coordination")


def cases(size=192, real=True):
    from infinityebsd.data.synth import synth_map

    for name, d, asp, ang, tex, seed in SYNTH:
        yield name, synth_map((size, size), d, aspect=asp, angle_deg=ang, texture=tex, seed=seed)
    if real:
        for name, path in REAL_MAPS.items():
            if path.exists():
                yield name, clean(ie.read_map(path))


def run_method(method, crop, shape, seed, model=None, guidance=None):
    from infinityebsd.pipeline.growth import extend_growth, extend_voronoi

    quiet = dict(progress=False, log=lambda s: None, seed=seed)
    if method == "growth":
        return extend_growth(crop, shape, **quiet).map
    if method == "voronoi":
        return extend_voronoi(crop, shape, **quiet).map
    if method == "model":
        from infinityebsd.pipeline.extend import extend

        return extend(model, crop, shape, guidance=guidance, **quiet).map
    raise SystemExit(f"unknown method {method}")


def generated_grains(labels, box):
    """Grains with at least one cell outside the box."""
    r0, c0, h, w = box
    out = np.ones(labels.shape, bool)
    out[r0:r0 + h, c0:c0 + w] = False
    sel = np.zeros(int(labels.max()) + 1, bool)
    sel[np.unique(labels[out])] = True
    return sel


def area_weighted_ecd(table, sel):
    """Area-weighted mean ECD of the selected grains: the size a random cell's grain has, which a
    few oversized grains move far more than the number-weighted distribution."""
    ecd = np.asarray(table.size, np.float64)
    area = np.asarray(table.area, np.float64)
    keep = sel[: len(ecd)]  # grain i of a table is label i
    return float((area[keep] * ecd[keep]).sum() / area[keep].sum())


def evaluate_case(name, truth_map, methods, seed, model=None, guidance=None, crop_fraction=0.5):
    R, C = truth_map.shape
    h, w = int(round(R * crop_fraction)), int(round(C * crop_fraction))
    box = ((R - h) // 2, (C - w) // 2, h, w)  # where every method places a centred input
    T = measure(truth_map)
    mt = generated_grains(T.labels, box)
    h1, h2 = (sub_table(T.labels, T.quat, b, T.table.step) for b in halves(T.shape))
    rvr = compare_tables(h1, h2, SHAPE_METRICS)
    row = {"case": name, "shape": [R, C], "box": list(box), "truth_grains": int(T.table.n),
           "truth": {"border_density_ratio": border_density_ratio(T.labels, box),
                     "straight_run_share": straight_run_share(T.labels)},
           "real_vs_real_w1": {k: rvr[k]["w1"] for k in SHAPE_METRICS}, "methods": {}}
    crop = truth_map.crop(*box)
    for method in methods:
        t0 = time.time()
        out = run_method(method, crop, (R, C), seed, model, guidance)
        dt = time.time() - t0
        E = measure(out)
        me = generated_grains(E.labels, box)
        d = compare_tables(T.table, E.table, SHAPE_METRICS, mt, me)
        bg = border_grains(T, E, box, box)
        bdr = border_density_ratio(E.labels, box)
        row["methods"][method] = {
            "seconds": dt, "grains": int(E.table.n),
            "border_density_ratio": bdr, "border_ratio_vs_truth": bdr / row["truth"]["border_density_ratio"],
            "straight_run_share": straight_run_share(E.labels),
            "continued_fraction": bg["continued_fraction"], "n_cut_grains": bg["n_cut_grains"],
            "deep_continued_fraction": bg["deep_continued_fraction"], "n_deep_cut_grains": bg["n_deep_cut_grains"],
            "continued_share_labels": continued_share(E.labels, T.labels, box),
            "w1": {k: d[k]["w1"] for k in SHAPE_METRICS},
            "area_weighted_size_ratio": area_weighted_ecd(E.table, me) / area_weighted_ecd(T.table, mt),
            "largest_grain_ratio": float(E.table.area[me[: E.table.n]].max() / T.table.area[mt[: T.table.n]].max()),
            "input_exact": bool(np.allclose(out.euler[box[0]:box[0] + box[2], box[1]:box[1] + box[3]],
                                            measure(crop).map.euler)),
        }
        m = row["methods"][method]
        print(f"{name:22s} {method:8s} {dt:6.1f}s border {m['border_ratio_vs_truth']:.2f}x truth, "
              f"continued {m['continued_fraction']:.2f} (>= 3 cells deep {m['deep_continued_fraction']:.2f}), straight {m['straight_run_share']:.3f} "
              f"(truth {row['truth']['straight_run_share']:.3f}), area-weighted size {m['area_weighted_size_ratio']:.2f}x, "
              f"largest {m['largest_grain_ratio']:.2f}x, W1 "
              + " ".join(f"{k[:5]} {v:.2f}" for k, v in m["w1"].items()), flush=True)
    return row


def _mean(rs, get):
    return float(np.mean([get(r) for r in rs]))


def table(rows, methods):
    """Markdown: one line per case and method (means over the seeds), then the means over the cases."""
    groups = {}
    for r in rows:
        groups.setdefault(r["case"].rsplit(" s", 1)[0] if " s" in r["case"] else r["case"], []).append(r)
    lines = ["| case | method | border ratio (× truth's) | straight-run share | cut grains continued "
             "| ≥ 3 cells deep | W1/σ size | perimeter | inertia ratio | coordination | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in groups.items():
        lines.append(f"| {name} | truth; real vs real (halves) | {_mean(rs, lambda r: r['truth']['border_density_ratio']):.2f} | "
                     f"{_mean(rs, lambda r: r['truth']['straight_run_share']):.3f} | | | "
                     + " | ".join(f"{_mean(rs, lambda r: r['real_vs_real_w1'][k]):.2f}" for k in SHAPE_METRICS) + " | |")
        for mth in methods:
            def g(key, sub=None):
                return _mean(rs, (lambda r: r["methods"][mth][key]) if sub is None else (lambda r: r["methods"][mth][key][sub]))
            lines.append(f"| {name} | {mth} | {g('border_density_ratio'):.2f} ({g('border_ratio_vs_truth'):.2f}×) | "
                         f"{g('straight_run_share'):.3f} | {100 * g('continued_fraction'):.0f} % of {rs[0]['methods'][mth]['n_cut_grains']} | "
                         f"{100 * g('deep_continued_fraction'):.0f} % of {rs[0]['methods'][mth]['n_deep_cut_grains']} | "
                         + " | ".join(f"{g('w1', k):.2f}" for k in SHAPE_METRICS) + f" | {g('seconds'):.1f} |")
    lines.append("")
    lines.append("| method | mean border ratio × truth | worst case | mean continued | worst case | continued, ≥ 3 cells deep "
                 "| mean W1/σ size | perimeter | inertia ratio | coordination | area-weighted size × truth | largest grain × truth |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mth in methods:
        br = [_mean(rs, lambda r: r["methods"][mth]["border_ratio_vs_truth"]) for rs in groups.values()]
        cf = [_mean(rs, lambda r: r["methods"][mth]["continued_fraction"]) for rs in groups.values()]
        dcf = [_mean(rs, lambda r: r["methods"][mth]["deep_continued_fraction"]) for rs in groups.values()]
        w = {k: _mean(rows, lambda r: r["methods"][mth]["w1"][k]) for k in SHAPE_METRICS}
        lines.append(f"| {mth} | {np.mean(br):.2f} | {np.max(br):.2f} | {100 * np.mean(cf):.0f} % | {100 * np.min(cf):.0f} % | "
                     f"{100 * np.mean(dcf):.0f} % (worst {100 * np.min(dcf):.0f} %) | "
                     + " | ".join(f"{w[k]:.2f}" for k in SHAPE_METRICS)
                     + f" | {_mean(rows, lambda r: r['methods'][mth]['area_weighted_size_ratio']):.2f}"
                     + f" | {_mean(rows, lambda r: r['methods'][mth]['largest_grain_ratio']):.2f} |")
    rv = {k: _mean(rows, lambda r: r["real_vs_real_w1"][k]) for k in SHAPE_METRICS}
    lines.append("| real vs real (halves of the truth) | | | | | | " + " | ".join(f"{rv[k]:.2f}" for k in SHAPE_METRICS) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["voronoi", "growth"], choices=["voronoi", "growth", "model"])
    ap.add_argument("--model", type=Path, help="model folder for the 'model' method (default: the shipped one)")
    ap.add_argument("--size", type=int, default=192, help="side of the synthetic maps")
    ap.add_argument("--no-real", action="store_true", help="synthetic maps only")
    ap.add_argument("--crop", type=float, default=0.5,
                    help="side of the centred input as a fraction of the map's (0.25: a 4x extension, as the README job)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one extension per case and seed")
    ap.add_argument("--cases", nargs="+", default=None, help="only these cases (e.g. 316L nickel synth-d16)")
    ap.add_argument("--out", type=Path, default=Path("methods_eval.json"))
    ap.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance of the model (default: the model folder's for extension)")
    a = ap.parse_args()
    model = None
    if "model" in a.methods:
        from infinityebsd.cli.generate import load_pipeline

        model = load_pipeline(str(a.model) if a.model else None, "cpu")
    t0 = time.time()
    rows = []
    for name, m in cases(a.size, not a.no_real):
        if a.cases and name not in a.cases:
            continue
        for seed in a.seeds:
            rows.append(evaluate_case(name if len(a.seeds) == 1 else f"{name} s{seed}", m, a.methods, seed, model, a.guidance,
                                      a.crop))
    doc = {"methods": a.methods, "seeds": a.seeds, "crop": a.crop, "seconds": time.time() - t0, "cases": rows}
    atomic_write_text(a.out, json.dumps(doc, indent=1, default=float))
    print()
    print(table(rows, a.methods))
    print(f"\n{time.time() - t0:.0f} s in all; wrote {a.out}")


if __name__ == "__main__":
    main()

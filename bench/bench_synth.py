"""Synthetic polycrystals: generation speed, and how close growth and Voronoi maps come to a real map.

Measures
  * wall time per 512×512 map (grain growth at mean sizes 30 and 12 cells, Voronoi at 30), orientation
    assignment and the Nickel EBSDMap included, several seeds;
  * against the real nickel map ``../shared/data/real/dream3d_edax_ni_h5/EdaxAngOnly.h5`` after
    ``grains.clean`` (10°, 10 cells, Σ3 merged): Wasserstein-1 distances of
      - the normalised grain size distribution (ECD / its mean),
      - the perimeter–size relation, as the distribution of perimeter / (π·ECD) (1 for a digital
        circle's ideal outline, larger for jagged or elongated grains), and the exponent b of a fit
        perimeter ∝ ECD^b,
    for growth maps and Voronoi maps generated at the real map's mean grain size.
Writes bench/RESULTS_synth.md (and prints the same table).

Run: python bench/bench_synth.py [--seeds 3] [--compare-size 384] [--images docs/images]
"""

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from infinityebsd import read_map
from infinityebsd.data.synth import synth_map, write_corpus
from infinityebsd.grains import clean
from infinityebsd.metrics import compute_metrics

HERE = Path(__file__).resolve().parent
REAL = HERE.parent.parent / "shared" / "data" / "real" / "dream3d_edax_ni_h5" / "EdaxAngOnly.h5"


def features(tables, interior=False):
    """Normalised sizes, perimeter/(π·ECD) and the exponent of P ∝ ECD^b over the maps' grains."""
    keep_g = [~t.border if interior else np.ones(t.n, bool) for t in tables]
    s = np.concatenate([t.size[k] / t.size[k].mean() for t, k in zip(tables, keep_g)])
    p = np.concatenate([t.perimeter[k] / (np.pi * t.size[k]) for t, k in zip(tables, keep_g)])
    size = np.concatenate([t.size[k] for t, k in zip(tables, keep_g)])
    per = np.concatenate([t.perimeter[k] for t, k in zip(tables, keep_g)])
    keep = size > 4
    b = np.polyfit(np.log(size[keep]), np.log(per[keep]), 1)[0]
    return s, p, b


def skew(x):
    return float(np.mean((x - x.mean()) ** 3) / x.std() ** 3)


def write_images(folder: Path, real):
    """IPF-Z pictures of generated maps and of the cleaned real map (docs/images/synth_*.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from infinityebsd.crystal import euler_to_quat, ipf_colors

    folder.mkdir(parents=True, exist_ok=True)

    def save(m, name, title):
        h, w = m.shape
        fig = plt.figure(figsize=(w / 100, (h + 35) / 100), dpi=100)
        ax = fig.add_axes([0, 0, 1, h / (h + 35)])
        ax.imshow(ipf_colors(euler_to_quat(m.euler)), interpolation="nearest")
        ax.axis("off")
        fig.text(0.5, 1 - 0.5 * 35 / (h + 35), title, ha="center", va="center", fontsize=9)
        tmp = folder / (name + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, folder / name)

    cases = [
        ("synth_growth.png", dict(grain_size=30), "grain growth, mean ECD 30 cells, random texture"),
        ("synth_anisotropic.png", dict(grain_size=25, aspect=2.5, angle_deg=30), "grain growth, aspect 2.5 at 30°"),
        ("synth_textured.png", dict(grain_size=25, texture="cube:0.4:8,goss:0.2:8"),
         "grain growth, 40 % cube + 20 % Goss"),
        ("synth_bimodal.png", dict(grain_size=20, bimodal=0.3), "grain growth, bimodal (30 % abnormal grains)"),
        ("synth_voronoi.png", dict(grain_size=30, method="voronoi"), "Voronoi baseline, mean ECD 30 cells"),
    ]
    for name, kw, title in cases:
        save(synth_map((512, 512), seed=0, **kw), name, title)
    # the real map is small (151×186): enlarge it 2× so its grains compare on screen
    big = real.copy(euler=np.repeat(np.repeat(real.euler, 2, 0), 2, 1),
                    phase_id=np.repeat(np.repeat(real.phase_id, 2, 0), 2, 1))
    save(big, "synth_real_nickel_clean.png", "real Ni (EdaxAngOnly.h5) cleaned, shown 2x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--compare-size", type=int, default=384)
    ap.add_argument("--images", default=None, metavar="DIR",
                    help="also write the IPF-Z pictures there (e.g. docs/images)")
    args = ap.parse_args()

    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    out("# Synthetic polycrystals (bench/bench_synth.py)")
    out()
    out(f"Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), shared; "
        f"Python {platform.python_version()}; date {datetime.date.today().isoformat()}; load average at start "
        f"{os.getloadavg()[0]:.1f} (other jobs share the cores, so times vary by up to ~2×).")
    out()
    out("## Time per 512×512 map")
    out()
    out("| method | mean size (cells) | grains | seconds per map (mean of seeds) | max |")
    out("|---|---|---|---|---|")
    for method, gs, extra in (("growth", 30, {}), ("growth", 12, {}), ("growth", 25, {"aspect": 2.5, "angle_deg": 30,
                              "texture": "cube:0.4"}), ("growth", 25, {"bimodal": 0.3}), ("voronoi", 30, {})):
        ts, ns = [], []
        for seed in range(args.seeds):
            t = time.perf_counter()
            m = synth_map((512, 512), gs, method=method, seed=seed, **extra)
            ts.append(time.perf_counter() - t)
            ns.append(compute_metrics(m).n)
        name = method + (" " + ", ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")
        out(f"| {name} | {gs} | {int(np.mean(ns))} | {np.mean(ts):.2f} | {np.max(ts):.2f} |")
    out()
    # corpus throughput: maps with the corpus's own parameter mix, two processes
    import resource
    import tempfile

    count = 4 * args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        write_corpus(tmp, count, (512, 512), seed=0, workers=2)
        wall = time.perf_counter() - t
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    out(f"Corpus (`write_corpus`, {count} maps of 512×512 with the corpus parameter mix, CTF writing "
        f"included, 2 processes): {wall / count:.2f} s wall per map, {cpu / count:.2f} CPU-s per map "
        f"→ 2000 maps ≈ {2000 * wall / count / 60:.0f} min at this wall rate, "
        f"{2000 * cpu / count / 2 / 60:.0f} min with both cores free.")
    out()

    real = clean(read_map(REAL))
    rt = compute_metrics(real)
    gs = float(rt.size.mean())
    n = args.compare_size
    tabs = {"growth": [], "voronoi": []}
    for method in tabs:
        for seed in range(args.seeds):
            tabs[method].append(compute_metrics(synth_map((n, n), gs, method=method, seed=100 + seed)))
    out(f"## Against the real nickel map ({REAL.name}, {real.shape[0]}×{real.shape[1]}, cleaned: {rt.n} grains, "
        f"mean ECD {gs:.1f} cells)")
    out()
    out(f"Synthetic maps: {args.seeds} seeds of {n}×{n} at mean size {gs:.1f} cells. W1 = Wasserstein-1 "
        f"distance to the real map's distribution (smaller is closer).")
    out()
    res = {}
    for interior in (False, True):
        rs, rp, rb = features([rt], interior)
        out(f"{'Interior grains only (not touching the map edge)' if interior else 'All grains'}:")
        out()
        out("| maps | grains | size/mean CV | skew | W1 size/mean | mean P/(π·ECD) | W1 P/(π·ECD) "
            "| exponent b (P ∝ ECD^b) |")
        out("|---|---|---|---|---|---|---|---|")
        out(f"| real (cleaned) | {len(rs)} | {rs.std():.3f} | {skew(rs):.2f} | – | {rp.mean():.3f} | – "
            f"| {rb:.3f} |")
        for method, ts in tabs.items():
            s, p, b = features(ts, interior)
            if not interior:
                res[method] = (wasserstein_distance(s, rs), wasserstein_distance(p, rp), abs(b - rb))
            out(f"| {method} | {len(s)} | {s.std():.3f} | {skew(s):.2f} | {wasserstein_distance(s, rs):.3f} | "
                f"{p.mean():.3f} | {wasserstein_distance(p, rp):.3f} | {b:.3f} |")
        out()
    g, v = res["growth"], res["voronoi"]
    out("Verdict (all grains): grain growth is " + ("closer to" if g[0] < v[0] else "farther from")
        + f" the real map than Voronoi in normalised size (W1 {g[0]:.3f} vs {v[0]:.3f}), "
        + ("closer" if g[1] < v[1] else "farther") + f" in perimeter/size (W1 {g[1]:.3f} vs {v[1]:.3f}) and "
        + ("closer" if g[2] < v[2] else "farther") + f" in the perimeter–size exponent (|Δb| {g[2]:.3f} vs "
        f"{v[2]:.3f}).")
    if args.images:
        write_images(Path(args.images), real)
    tmp = HERE / "RESULTS_synth.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, HERE / "RESULTS_synth.md")


if __name__ == "__main__":
    main()

"""Measure the shipped model the way MODEL_CARD.md reports it (issue 7's quality figures).

On held-out synthetic maps (never trained on) and on the real nickel map:
  1. VAE round trip: per-cell disorientation (median, 95th percentile) and grain count after the
     post-processing applied to generated maps (cleaning with a 5° first segmentation);
  2. generation from each held-out map's metrics: normalised W1 per metric against the target, next to
     the real-vs-real level (two halves of the target), the Voronoi baseline and the growth baseline
     (``--method growth`` from the same metrics; scripts/evaluate_methods.py compares extensions),
     without and with the matching-crystallography step;
  3. extension of the centre crop of each held-out map back to its full size: seam boundary-density
     ratio and the share of grains cut by the input border that keep their orientation across it;
  4. random-texture generation: W1 (degrees) of the boundary disorientations against Mackenzie.
Writes a JSON of all figures and prints a Markdown summary.

    python scripts/evaluate_default_model.py --model src/infinityebsd/pretrained/compact \\
        --corpus /tmp/recipe/corpus --out model_eval.json
(--corpus defaults to regenerating the recipe's corpus: 60 maps of 256x256, seed 0.)
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))

import infinityebsd as ie  # noqa: E402
from infinityebsd.crystal import disorientation_angle, euler_to_quat  # noqa: E402
from infinityebsd.data.representation import decode, encode  # noqa: E402
from infinityebsd.evaluate.report import evaluate  # noqa: E402
from infinityebsd.grains import clean_with_grains  # noqa: E402
from infinityebsd.metrics import METRIC_NAMES, conditioning_tensor, metrics_of  # noqa: E402
from infinityebsd.models.ldm import load_model  # noqa: E402
from infinityebsd.pipeline.extend import GENERATED_SEGMENT_DEG, extend  # noqa: E402
from infinityebsd.pipeline.inpaint import InpaintPipeline  # noqa: E402
from infinityebsd._shared import atomic_write_text  # noqa: E402  (makes the folder; a kill leaves no half file)

NI = HERE.parent / "shared" / "data" / "real" / "dream3d_edax_ni_h5" / "EdaxAngOnly.h5"


def vae_round_trip(pipe, m):
    f = 4
    r, c = (m.shape[0] // f) * f, (m.shape[1] // f) * f
    m = m.crop(0, 0, r, c)
    x = torch.from_numpy(encode(m.euler, pipe.representation))[None]
    with torch.no_grad():
        z = pipe.model.vae.encode(x).latent_dist.mean
        y = pipe.model.vae.decode(z).sample[0]
    rec = decode(y, pipe.representation)
    err = np.rad2deg(disorientation_angle(euler_to_quat(m.euler), euler_to_quat(rec))).ravel()
    n_in = clean_with_grains(m)[1].n
    n_out = clean_with_grains(ie.EBSDMap.from_euler(rec), segment_deg=GENERATED_SEGMENT_DEG)[1].n
    return {"median_deg": float(np.median(err)), "p95_deg": float(np.percentile(err, 95)),
            "grains_in": int(n_in), "grains_out": int(n_out), "grain_ratio": n_out / max(n_in, 1)}


def w1_row(summary, key="distances"):
    return {k: summary[key][k]["w1"] for k in METRIC_NAMES}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--holdout-every", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("model_eval.json"))
    a = ap.parse_args()
    pipe = InpaintPipeline(load_model(a.model))
    tmp = Path(tempfile.mkdtemp())
    if a.corpus is None:
        from infinityebsd.data.synth import write_corpus

        a.corpus = write_corpus(tmp / "corpus", 60, size=(256, 256), seed=0, workers=2)
    files = sorted(Path(a.corpus).glob("*.ctf"))
    held = [f for i, f in enumerate(files) if i % a.holdout_every == 0]
    params = {}
    pj = Path(a.corpus) / "params.jsonl"
    if pj.exists():
        for line in pj.read_text().splitlines():
            d = json.loads(line)
            params[d.get("file", d.get("name", ""))] = d
    res = {"model": str(a.model), "holdout": [f.name for f in held], "vae": [], "generation": [],
           "generation_refined": [], "extension": [], "mackenzie_w1_random": []}
    for k, f in enumerate(held):
        m = ie.read_map(f)
        res["vae"].append(vae_round_trip(pipe, m))
        t = metrics_of(m, clean=False)
        C = conditioning_tensor(t)
        for refine, key in ((False, "generation"), (True, "generation_refined")):
            g = extend(pipe, None, m.shape, cond=C, median_size=float(np.median(t.size)), seed=k, steps=a.steps,
                       progress=False, refine=refine, log=lambda s: None)
            s = evaluate(g.map, target=m, seed=k, clean=True)
            res[key].append({"w1": w1_row(s), "real_vs_real": w1_row(s, "real_vs_real"),
                             "voronoi": w1_row(s, "target_vs_voronoi"),
                             "growth": w1_row(s, "target_vs_growth") if s.get("target_vs_growth") else None,
                             "mackenzie_w1": s["texture"]["mackenzie_w1_other"],
                             "mackenzie_w1_target": s["texture"]["mackenzie_w1_target"]})
            rnd = params.get(f.name, {}).get("texture") in (None, "", "random", [])
            if rnd and not refine:
                res["mackenzie_w1_random"].append(s["texture"]["mackenzie_w1_other"])
        R, Cc = m.shape
        box = (R // 4, Cc // 4, R // 2, Cc // 2)
        e = extend(pipe, m.crop(*box), m.shape, seed=k, steps=a.steps, progress=False, log=lambda s: None)
        s = evaluate(e.map, truth=m, input_box=box, plan=json.loads(e.plan.to_json()), seed=k)
        res["extension"].append({"seam_ratio": s.get("seams", {}).get("ratio"),
                                 "continued_fraction": s.get("border_grains", {}).get("continued_fraction"),
                                 "w1": w1_row(s)})
        print(f"{f.name}: vae {res['vae'][-1]['median_deg']:.1f}°, ext seam {res['extension'][-1]['seam_ratio']}, "
              f"continued {res['extension'][-1]['continued_fraction']}", flush=True)
    if NI.exists():
        ni = ie.read_map(NI)
        cm = clean_with_grains(ni)[0]
        res["nickel_vae"] = vae_round_trip(pipe, cm)
        g = extend(pipe, None, (256, 256), cond=conditioning_tensor(metrics_of(cm, clean=False)),
                   median_size=float(np.median(metrics_of(cm, clean=False).size)), seed=0, steps=a.steps, progress=False,
                   log=lambda s: None)
        s = evaluate(g.map, target=cm, seed=0)
        res["nickel_generation"] = {"w1": w1_row(s), "real_vs_real": w1_row(s, "real_vs_real"),
                                    "voronoi": w1_row(s, "target_vs_voronoi"),
                                    "growth": w1_row(s, "target_vs_growth") if s.get("target_vs_growth") else None}
        box = (27, 45, 96, 96)
        e = extend(pipe, cm.crop(*box), cm.shape, seed=0, steps=a.steps, progress=False, log=lambda s: None)
        s = evaluate(e.map, truth=cm, input_box=box, plan=json.loads(e.plan.to_json()), seed=0)
        res["nickel_extension"] = {"seam_ratio": s.get("seams", {}).get("ratio"),
                                   "continued_fraction": s.get("border_grains", {}).get("continued_fraction")}
    atomic_write_text(a.out, json.dumps(res, indent=1))
    # summary
    med = lambda key, sub: float(np.median([r[sub] for r in res[key]]))  # noqa: E731
    print("\n| figure | measured | target |\n|---|---|---|")
    print(f"| VAE median per-cell disorientation (held-out) | {med('vae', 'median_deg'):.2f}° | ≤ 2° |")
    print(f"| VAE 95th percentile | {med('vae', 'p95_deg'):.2f}° | |")
    print(f"| VAE grain count ratio after cleaning | {med('vae', 'grain_ratio'):.2f} | 0.95–1.05 |")
    for name in METRIC_NAMES:
        g = np.mean([r["w1"][name] for r in res["generation"]])
        gr = np.mean([r["w1"][name] for r in res["generation_refined"]])
        rr = np.mean([r["real_vs_real"][name] for r in res["generation"]])
        vo = np.mean([r["voronoi"][name] for r in res["generation"]])
        gw = np.mean([r["growth"][name] for r in res["generation"] if r.get("growth")] or [np.nan])
        print(f"| generation W1/σ {name}: model / refined / real-vs-real / Voronoi / growth | {g:.2f} / {gr:.2f} / "
              f"{rr:.2f} / {vo:.2f} / {gw:.2f} | model ≤ 2× real-vs-real, below growth |")
    sr = [r["seam_ratio"] for r in res["extension"] if r["seam_ratio"] is not None]
    cf = [r["continued_fraction"] for r in res["extension"] if r["continued_fraction"] is not None]
    print(f"| extension seam ratio (mean) | {np.mean(sr):.2f} | ≤ 1.15 |")
    print(f"| extension border grains continued (mean) | {np.mean(cf):.2f} | ≥ 0.80 |")
    if res["mackenzie_w1_random"]:
        print(f"| random-texture Mackenzie W1 | {np.mean(res['mackenzie_w1_random']):.2f}° | ≤ 2° |")
    if "nickel_vae" in res:
        print(f"| nickel: VAE median / p95 / grain ratio | {res['nickel_vae']['median_deg']:.2f}° / {res['nickel_vae']['p95_deg']:.1f}° / {res['nickel_vae']['grain_ratio']:.2f} | |")
        print(f"| nickel: extension seam ratio / continued | {res['nickel_extension']['seam_ratio']} / {res['nickel_extension']['continued_fraction']} | |")


if __name__ == "__main__":
    main()

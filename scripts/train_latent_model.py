"""Reproducible recipe for the latent model formerly shipped as ``pretrained/compact`` (the paper's design).

Steps (each resumable on its own):
  1. a synthetic corpus with ``write_corpus`` (grain growth, varied sizes, shapes, textures);
     maps whose index is a multiple of ``--holdout-every`` are held out and never trained on;
  2. the dataset: cleaned patches + conditioning, built by several processes in parallel and merged;
  3. the VAE (``train_vae``), then the UNet (``train_unet``), ``small`` config;
  4. the model folder exported in fp16 into ``--export`` (and a tarball split into 15 MB parts, which is
     how the weights come back from a rented GPU).

The shipped model was made on a 2-core CPU with (see MODEL_CARD.md):
    python scripts/train_default_model.py --work /work/recipe --export /work/recipe/export/compact \
        --maps 60 --map-size 256 --config compact --vae-steps 1500 --unet-steps 3000 --batch 16 \
        --workers 2 --loader-workers 0
    infinityebsd train /work/recipe/data -o /work/recipe/model --resume --steps 5000
then the fp16 export (``export_fp16``) of /work/recipe/model. On a GPU (bf16) use ``--config small`` and
far more maps and steps.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "src"))


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def _build_part(args):
    from infinityebsd.data.dataset import build_dataset

    files, out, patch = args
    build_dataset(files, out, patch=patch, progress=False, log=lambda *a: None)
    return out


def build_parallel(maps, out: Path, patch: int, workers: int):
    """Build one dataset per group of maps in parallel, then merge them into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.json").exists():
        return json.loads((out / "manifest.json").read_text())
    groups = [maps[k::workers] for k in range(workers) if maps[k::workers]]
    parts = [out / f"part{k:02d}" for k in range(len(groups))]
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_build_part, [(g, p, patch) for g, p in zip(groups, parts)]))
    merged = None
    for p in parts:
        m = json.loads((p / "manifest.json").read_text())
        if merged is None:
            merged = {k: v for k, v in m.items() if k not in ("shards", "sources")}
            merged["shards"], merged["sources"] = [], []
        merged["sources"] += m["sources"]
        for s in m["shards"]:
            k = len(merged["shards"])
            for key in ("euler", "cond"):
                new = f"shard-{k:05d}.{key}.npy"
                os.replace(p / s[key], out / new)
                s[key] = new
            merged["shards"].append(s)
        shutil.rmtree(p)
    sizes = [x for s in merged["shards"] for x in s["median_grain_size"]]
    merged["grain_size_range"] = [float(np.percentile(sizes, 5)), float(np.percentile(sizes, 95))]
    merged["n_patches"] = int(sum(s["n"] for s in merged["shards"]))
    (out / "manifest.json").write_text(json.dumps(merged))
    return merged


def export_fp16(model_dir: Path, export: Path):
    """Copy the model folder without checkpoints/logs, weights in fp16."""
    import torch
    from safetensors.torch import load_file, save_file

    if export.exists():
        shutil.rmtree(export)
    export.mkdir(parents=True)
    for part in ("vae", "unet", "metric_encoder", "scheduler"):
        src = model_dir / part
        if not src.is_dir():
            continue
        shutil.copytree(src, export / part)
        for f in (export / part).glob("*.safetensors"):
            sd = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(f).items()}
            save_file(sd, f)
    shutil.copy(model_dir / "infinityebsd.json", export / "infinityebsd.json")
    for extra in ("logs",):
        if (model_dir / extra).is_dir():
            shutil.copytree(model_dir / extra, export / extra)
    return export


def pack(a):
    """The export as a tarball split into 15 MB parts in ``--parts-to`` (if given)."""
    if not a.parts_to:
        return
    a.parts_to.mkdir(parents=True, exist_ok=True)
    tar = a.work / "model.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", str(a.export.parent), a.export.name], check=True)
    for old in a.parts_to.glob("model.tar.part*"):
        old.unlink()
    subprocess.run(["split", "-b", "15M", "-d", str(tar), str(a.parts_to / "model.tar.part")], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--export", type=Path, default=None)
    ap.add_argument("--maps", type=int, default=160)
    ap.add_argument("--map-size", type=int, default=256)
    ap.add_argument("--holdout-every", type=int, default=10)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--config", default="small")
    ap.add_argument("--vae-steps", type=int, default=600)
    ap.add_argument("--unet-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--loader-workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts-to", type=Path, default=None, help="also write the export as a split tarball here")
    a = ap.parse_args()

    from infinityebsd.data.synth import write_corpus
    from infinityebsd.models.ldm import load_config
    from infinityebsd.train.trainer import train_unet, train_vae

    patch = load_config(a.config)["patch"]
    t0 = time.time()
    corpus = a.work / "corpus"
    write_corpus(corpus, a.maps, size=(a.map_size, a.map_size), seed=a.seed, workers=a.workers)
    files = sorted(corpus.glob("*.ctf"))
    train_files = [f for i, f in enumerate(files) if i % a.holdout_every != 0]
    (a.work / "holdout.txt").write_text("\n".join(str(f) for i, f in enumerate(files) if i % a.holdout_every == 0))
    log(f"corpus: {len(files)} maps ({len(train_files)} for training) in {time.time() - t0:.0f} s")
    t1 = time.time()
    man = build_parallel(train_files, a.work / "data", patch, a.workers)
    log(f"dataset: {man['n_patches']} patches, grain sizes {man['grain_size_range']} in {time.time() - t1:.0f} s")
    model = a.work / "model"
    t2 = time.time()
    r = train_vae(a.work / "data", model, config=a.config, steps=a.vae_steps, batch=a.batch, seed=a.seed,
                  num_workers=a.loader_workers, progress=False, checkpoint_every=10**9)
    log(f"vae: {r} in {time.time() - t2:.0f} s")
    if a.export:  # a usable VAE comes back even if the UNet stage is cut short
        export_fp16(model, a.export)
        pack(a)
    t3 = time.time()
    r = train_unet(a.work / "data", model, steps=a.unet_steps, batch=a.batch, seed=a.seed,
                   num_workers=a.loader_workers, progress=False, checkpoint_every=10**9)
    log(f"unet: {r} in {time.time() - t3:.0f} s")
    info = json.loads((model / "infinityebsd.json").read_text())
    info["recipe"] = {"script": "scripts/train_default_model.py", "args": {k: str(v) for k, v in vars(a).items()},
                      "corpus_maps": len(files), "train_maps": len(train_files), "patches": man["n_patches"],
                      "wall_s": round(time.time() - t0)}
    (model / "infinityebsd.json").write_text(json.dumps(info, indent=2))
    if a.export:
        export_fp16(model, a.export)
        pack(a)
    log(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""Training speed of a morphology model on this machine, fp32 against bf16 autocast, same steps.

Each precision trains the same config (``--config``, default the shipped ``morph``) for ``--steps``
steps from the same seed on the same small synthetic corpus, each in a fresh process (Accelerate keeps
one precision per process), through ``train_morphology``, the code path of ``train-morph`` and of
``scripts/train_default_model.py``. Reported per precision: seconds per step after ``--warmup`` steps,
images per second, the mean loss of the last 50 steps, and the speed ratio to the first precision
listed (the peer). On a CPU without native bf16 the bf16 row shows what emulation costs; training's
default there is fp32.

Run: python bench/bench_train_morph.py [--precisions no,bf16] [--steps 120] [--maps 24]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import multiprocessing as mp
import platform
import tempfile
from pathlib import Path

import torch


def _train(cfg, corpus, steps, precision, seed, folder, queue):
    from infinityebsd.train.morph import train_morphology

    r = train_morphology(folder, cfg, steps=steps, seed=seed, corpus=corpus, mixed_precision=precision,
                         checkpoint_every=10**9, progress=False, log=lambda s: None)
    with open(Path(folder) / "logs" / "morph_log.csv") as fh:
        rows = [(int(x["step"]), float(x["loss"]), float(x["elapsed_s"])) for x in csv.DictReader(fh)]
    queue.put((r["seconds"], rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="morph")
    ap.add_argument("--precisions", default="no,bf16", help="comma-separated; the first is the peer")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=10, help="steps left out of the timing")
    ap.add_argument("--maps", type=int, default=24, help="synthetic maps in the corpus")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from infinityebsd.models.morph import load_morph_config
    from infinityebsd.models.precision import cpu_native_bf16
    from infinityebsd.train.morph import build_morph_corpus

    cfg = load_morph_config(a.config)
    cfg["train_unet"]["synthetic_maps"] = a.maps
    corpus = build_morph_corpus(cfg, a.seed, progress=False, log=lambda s: None)
    batch = int(cfg["train_unet"]["batch"])
    print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, native bf16: {cpu_native_bf16()}; config {a.config}, batch {batch}, "
          f"{a.steps} steps (timed after {a.warmup})")
    print("| precision | s/step | images/s | mean loss, last 50 steps | speed × peer |")
    print("|---|---|---|---|---|")
    ctx = mp.get_context("spawn")
    peer = None
    for prec in a.precisions.split(","):
        with tempfile.TemporaryDirectory() as d:
            q = ctx.Queue()
            p = ctx.Process(target=_train, args=(cfg, corpus, a.steps, prec, a.seed, d, q))
            p.start()
            _, rows = q.get()
            p.join()
        t0 = next(e for s, _, e in rows if s == a.warmup)
        per_step = (rows[-1][2] - t0) / (rows[-1][0] - a.warmup)
        tail = [l for s, l, _ in rows if s > rows[-1][0] - 50]
        peer = peer or per_step
        print(f"| {prec} | {per_step:.3f} | {batch / per_step:.1f} | {sum(tail) / len(tail):.5f} | "
              f"{peer / per_step:.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""Morphology UNet shapes: inference and training cost per shape, against the shipped `morph` shape.

For each shape (block widths; every other setting taken from ``configs/morph.json``), a fresh
UNet with random weights is timed on this machine:

* inference: one network call on ``--batch`` windows of ``--window``² cells (channels_last, no
  gradients), best of ``--repeats`` after one warm-up call, reported per window;
* training: one forward + backward + AdamW step on 16 windows of the training patch (64²), best of
  three after one warm-up step.

The cost of a job is about the inference figure times the window evaluations it makes (stop 26: 720
for 512→2048), so the ratio column says how much a shape could save before any retraining. A shape
must be trained and evaluated (scripts/train_default_model.py, scripts/evaluate_methods.py) before it
can replace the shipped one; stop 28 did that for ``morph-lite`` (bench/RESULTS.md).

Run: python bench/bench_unet_shapes.py [--window 128] [--batch 8] [--shapes 32/64/128,16/64/128]
"""

import argparse
import copy
import math
import os
import platform
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from infinityebsd.models.morph import build_morph_unet, load_morph_config  # noqa: E402

SHIPPED = "32/64/128"


def shape_config(base: dict, lite: dict, blocks: str) -> dict:
    """The ``morph`` config with the UNet's block widths ``blocks`` ('16/32/64/128': four levels,
    cross-attention at the coarsest, as in ``morph-lite``)."""
    widths = [int(b) for b in blocks.split("/")]
    cfg = copy.deepcopy(base)
    src = base["unet"] if len(widths) == len(base["unet"]["block_out_channels"]) else lite["unet"]
    if len(widths) != len(src["block_out_channels"]):
        raise SystemExit(f"shape {blocks}: only {len(base['unet']['block_out_channels'])} or "
                         f"{len(lite['unet']['block_out_channels'])} levels are set up here")
    # group norm needs every level's width divisible by the group count: the largest count up to the
    # source config's that divides all of them
    g = math.gcd(*widths)
    groups = max(d for d in range(1, min(src["norm_num_groups"], g) + 1) if g % d == 0)
    cfg["unet"] = dict(src, block_out_channels=widths, norm_num_groups=groups)
    return cfg


def time_shape(cfg: dict, window: int, batch: int, repeats: int) -> tuple[float, float, float]:
    """(parameters in millions, seconds per window of inference, seconds per training step)."""
    net = build_morph_unet(cfg).to(memory_format=torch.channels_last)
    n_tok = cfg["metric_encoder"].get("n_tokens", 8)
    width = cfg["unet"]["cross_attention_dim"]
    c_in = net.config.in_channels
    params = sum(p.numel() for p in net.parameters()) / 1e6
    x = torch.randn(batch, c_in, window, window).to(memory_format=torch.channels_last)
    enc = torch.randn(batch, n_tok, width)
    t = torch.full((batch,), 500)
    with torch.no_grad():
        net(x, t, encoder_hidden_states=enc)  # warm-up: first-call allocations out of the timing
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x, t, encoder_hidden_states=enc)
            best = min(best, time.perf_counter() - t0)
    patch = cfg["patch"]
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    xb, eb = torch.randn(16, c_in, patch, patch), torch.randn(16, n_tok, width)
    tb = torch.randint(0, 1000, (16,))
    steps = []
    for _ in range(4):
        t0 = time.perf_counter()
        net(xb, tb, encoder_hidden_states=eb).sample.pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        steps.append(time.perf_counter() - t0)
    return params, best / batch, min(steps[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="32/64/128,16/32/64/128,16/64/128,24/64/128",
                    help="block widths, comma-separated; the shipped 32/64/128 is always timed first as the peer")
    ap.add_argument("--window", type=int, default=128, help="inference window side (the shipped sampling uses 128)")
    ap.add_argument("--batch", type=int, default=8, help="windows per inference call")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    base, lite = load_morph_config("morph"), load_morph_config("morph-lite")
    shapes = [SHIPPED] + [s for s in a.shapes.split(",") if s and s != SHIPPED]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, fp32")
    print(f"\n| blocks | parameters | ms per {a.window}² window (batch {a.batch}) | × shipped | "
          f"s per training step (16 × {base['patch']}²) | × shipped |")
    print("|---|---|---|---|---|---|")
    peer = None
    for s in shapes:
        params, inf, train = time_shape(shape_config(base, lite, s), a.window, a.batch, a.repeats)
        peer = peer or (inf, train)
        label = f"{s} (shipped `morph`)" if s == SHIPPED else s
        print(f"| {label} | {params:.2f} M | {1000 * inf:.0f} | {inf / peer[0]:.2f} | {train:.2f} | "
              f"{train / peer[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""Training throughput of the VAE and the inpainting UNet, and a representation comparison.

Throughput (``--configs small`` on the CPU; ``--device cuda --configs small,paper`` on a GPU, bf16):
each config's models are built from its JSON file and trained for a few steps on random patches of
its size with the same step code as ``infinityebsd train`` (UNet steps include the frozen VAE encoding
of the map and of the masked map). Reported: images/s of a training step at ``--batch``, and the
time of one UNet forward pass at batch 1.

Representation comparison (``--compare``): a VAE is trained for ``--compare-steps`` steps on synthetic
maps (``infinityebsd.data.synth`` when importable, else Voronoi grains) with each encoding, and the
round trip encode → decode is scored on held-out maps by the per-cell disorientation to the input
(median, 95th percentile) and by grain statistics after re-cleaning.

Run: python bench/bench_train.py [--device cpu|cuda] [--configs small,paper] [--batch 8] [--steps 3]
     python bench/bench_train.py --compare [--compare-steps 300] [--compare-patch 64]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from infinityebsd.data import representation as rep
from infinityebsd.data.masks import random_masks
from infinityebsd.models import build_metric_encoder, build_unet, build_vae, load_config, unet_input, vae_factor
from infinityebsd.train.trainer import DenoiserTrainModule, VAETrainModule, vae_loss


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device, bf16):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def bench_config(name, device, batch, steps, warmup, bf16):
    cfg = load_config(name)
    P = cfg["patch"]
    C = rep.CHANNELS[cfg["representation"]]
    f = vae_factor(cfg)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, C, P, P, generator=g) * 2 - 1).to(device)
    cond = torch.rand(batch, 8, 1024, generator=g).to(device)
    out = {"config": name, "patch": P, "batch": batch, "device": str(device), "bf16": bf16}

    vae = build_vae(cfg).to(device)
    mod = VAETrainModule(vae)
    opt = torch.optim.AdamW(mod.parameters(), lr=1e-4)
    lat = cfg["vae"]["latent_channels"]

    def vae_step():
        eps = torch.randn(batch, lat, P // f, P // f, device=device)
        with _autocast(device, bf16):
            recon, mean, logvar = mod(x, eps)
            loss, _ = vae_loss(recon, x, mean, logvar, 1e-6)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out["vae_img_s"] = _timed(vae_step, device, steps, warmup, batch)
    out["vae_params_M"] = sum(p.numel() for p in vae.parameters()) / 1e6
    vae.requires_grad_(False).eval()
    del opt

    unet = build_unet(cfg)
    menc = build_metric_encoder(cfg)
    den = DenoiserTrainModule(unet, menc).to(device)
    opt = torch.optim.AdamW(den.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)

    def unet_step():
        mask = torch.from_numpy(random_masks(batch, P, rng)).to(device)
        with _autocast(device, bf16):
            with torch.no_grad():
                post = vae.encode(torch.cat([x, x * mask])).latent_dist
                z = post.sample()[:batch]
                zm = post.mean[batch:]
            noise = torch.randn_like(z)
            t = torch.randint(0, 1000, (batch,), device=device)
            noisy = 0.7 * z + 0.7 * noise
            drop = torch.rand(batch, 8, device=device) < 0.1
            pred = den(unet_input(noisy, zm, mask), t, cond, drop)
            loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(den.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    out["unet_img_s"] = _timed(unet_step, device, steps, warmup, batch)
    with torch.no_grad(), _autocast(device, bf16):
        zc = vae.encode(x).latent_dist.mean.float()
    inp_c = unet_input(zc, zc, torch.ones(batch, 1, P, P, device=device))

    def unet_only_step():  # the denoiser alone, latents given (what latent caching would leave)
        with _autocast(device, bf16):
            t = torch.randint(0, 1000, (batch,), device=device)
            drop = torch.rand(batch, 8, device=device) < 0.1
            loss = F.mse_loss(den(inp_c, t, cond, drop).float(), zc)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(den.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    out["unet_only_img_s"] = _timed(unet_only_step, device, steps, warmup, batch)
    out["unet_params_M"] = sum(p.numel() for p in unet.parameters()) / 1e6
    den.eval()
    z1 = torch.randn(1, 9, P // f, P // f, device=device)
    tok = torch.randn(1, 8, cfg["unet"]["cross_attention_dim"], device=device)

    def fwd():
        with torch.no_grad(), _autocast(device, bf16):
            unet(z1, torch.tensor([500], device=device), encoder_hidden_states=tok)

    out["unet_fwd_b1_s"] = 1.0 / _timed(fwd, device, max(steps, 3), 1, 1)
    return out


def _timed(fn, device, steps, warmup, batch):
    for _ in range(warmup):
        fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return steps * batch / (time.perf_counter() - t)


# ------------------------------------------------------------------------------ representations
def synthetic_maps(n, size, seed):
    """Clean synthetic maps with mean grain sizes log-uniform in 10–30 cells."""
    rng = np.random.default_rng(seed)
    try:
        from infinityebsd.data.synth import synth_map

        return [synth_map((size, size), float(np.exp(rng.uniform(np.log(10), np.log(30)))), seed=int(s)).euler
                for s in rng.integers(0, 2**31, n)], "infinityebsd.data.synth (grain growth)"
    except Exception:  # the generator is missing or broken: plain Voronoi grains instead
        from scipy.spatial import cKDTree

        from infinityebsd.crystal import quat_to_euler, random_quat

        out = []
        for _ in range(n):
            d = np.exp(rng.uniform(np.log(10), np.log(30)))
            k = max(2, int(size * size / (np.pi * d * d / 4)))
            pts = rng.random((k, 2)) * size
            yy, xx = np.mgrid[0:size, 0:size]
            lab = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1))[1].reshape(size, size)
            out.append(quat_to_euler(random_quat(k, rng))[lab])
        return out, "Voronoi (scipy)"


def compare_representations(steps, patch, batch, n_train, n_test, blocks, seed=0, device="cpu", bf16=False):
    from infinityebsd import EBSDMap
    from infinityebsd.crystal import disorientation_angle, euler_to_quat
    from infinityebsd.grains import clean
    from infinityebsd.metrics import compute_metrics

    train, source = synthetic_maps(n_train, patch, seed)
    test, _ = synthetic_maps(n_test, patch, seed + 1)
    rows = []
    for kind in ("euler", "quat"):
        for blk in blocks:
            torch.manual_seed(seed)
            cfg = load_config("small")
            cfg["representation"] = kind
            cfg["patch"] = patch
            cfg["vae"]["block_out_channels"] = list(blk)
            cfg["vae"]["down_block_types"] = ["DownEncoderBlock2D"] * len(blk)
            cfg["vae"]["up_block_types"] = ["UpDecoderBlock2D"] * len(blk)
            vae = build_vae(cfg).to(device)
            mod = VAETrainModule(vae)
            opt = torch.optim.AdamW(mod.parameters(), lr=1e-3)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-5)
            X = torch.from_numpy(np.stack([rep.encode(e, kind) for e in train])).to(device)
            f = vae_factor(cfg)
            rng = np.random.default_rng(seed)
            t0 = time.perf_counter()
            for s in range(steps):
                idx = torch.from_numpy(rng.integers(0, len(X), batch)).to(device)
                x = X[idx]
                eps = torch.randn(batch, 4, patch // f, patch // f, device=device)
                with _autocast(device, bf16):
                    recon, mean, logvar = mod(x, eps)
                    loss, rec = vae_loss(recon, x, mean, logvar, 1e-6)
                loss.backward()
                opt.step()
                sched.step()
                opt.zero_grad()
            _sync(device)
            train_s = time.perf_counter() - t0
            rec = float(rec.detach())
            vae.eval()
            errs, n_ratio, size_ratio = [], [], []
            with torch.no_grad():
                for e in test:
                    x = torch.from_numpy(rep.encode(e, kind))[None].to(device)
                    y = vae.decode(vae.encode(x).latent_dist.mean).sample[0].float().cpu()
                    back = rep.decode(y, kind)
                    errs.append(np.degrees(disorientation_angle(euler_to_quat(back), euler_to_quat(e))).ravel())
                    t_ref = compute_metrics(EBSDMap.from_euler(e))
                    try:
                        t_rec = compute_metrics(clean(EBSDMap.from_euler(back)))
                        n_ratio.append(len(t_rec.size) / len(t_ref.size))
                        size_ratio.append(np.mean(t_rec.size) / np.mean(t_ref.size))
                    except Exception:  # a reconstruction with no grain at all
                        n_ratio.append(0.0)
                        size_ratio.append(np.nan)
            errs = np.concatenate(errs)
            rows.append({"representation": kind, "vae_factor": f, "blocks": "/".join(map(str, blk)),
                         "median_deg": float(np.median(errs)), "p95_deg": float(np.percentile(errs, 95)),
                         "frac_lt_5deg": float((errs < 5).mean()), "grain_count_ratio": float(np.mean(n_ratio)),
                         "mean_size_ratio": float(np.nanmean(size_ratio)), "final_train_mse": float(rec),
                         "train_s": train_s})
            print(rows[-1], flush=True)
    return rows, source


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-bf16", action="store_true", help="Full precision on CUDA too.")
    ap.add_argument("--compare", action="store_true", help="Run the representation comparison instead.")
    ap.add_argument("--compare-steps", type=int, default=300)
    ap.add_argument("--compare-patch", type=int, default=64)
    ap.add_argument("--compare-batch", type=int, default=8)
    ap.add_argument("--compare-factors", default="4", help="VAE factors to compare, e.g. 4,8")
    ap.add_argument("--compare-maps", type=int, default=64, help="Synthetic training maps.")
    args = ap.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {datetime.datetime.now():%Y-%m-%d %H:%M}")
    if args.compare:
        blocks = {4: (32, 64, 128), 8: (32, 64, 128, 128)}
        fs = [int(v) for v in args.compare_factors.split(",")]
        device = torch.device(args.device)
        rows, source = compare_representations(args.compare_steps, args.compare_patch, args.compare_batch,
                                               args.compare_maps, 16, [blocks[f] for f in fs], device=device,
                                               bf16=device.type == "cuda" and not args.no_bf16)
        print(f"\nVAE round trip after {args.compare_steps} steps (batch {args.compare_batch}, "
              f"{args.compare_patch}x{args.compare_patch} patches, {args.compare_maps} training maps from {source}, "
              f"16 held-out maps, grains 10-30 cells, device {args.device}):")
        print("| representation | VAE factor | median err (°) | p95 err (°) | cells < 5° | grain count ratio | mean size ratio | train MSE | train s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['representation']} | {r['vae_factor']} | {r['median_deg']:.2f} | {r['p95_deg']:.1f} | "
                  f"{100 * r['frac_lt_5deg']:.0f} % | {r['grain_count_ratio']:.2f} | {r['mean_size_ratio']:.2f} | "
                  f"{r['final_train_mse']:.4f} | {r['train_s']:.0f} |")
        return
    device = torch.device(args.device)
    bf16 = device.type == "cuda" and not args.no_bf16
    rows = [bench_config(c, device, args.batch, args.steps, args.warmup, bf16) for c in args.configs.split(",")]
    print("| config | device | bf16 | patch | batch | VAE params (M) | VAE train img/s | UNet params (M) | UNet train img/s (with VAE encoding) | UNet-only train img/s | UNet fwd b=1 (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['device']} | {r['bf16']} | {r['patch']} | {r['batch']} | {r['vae_params_M']:.1f} | "
              f"{r['vae_img_s']:.2f} | {r['unet_params_M']:.1f} | {r['unet_img_s']:.2f} | {r['unet_only_img_s']:.2f} | {r['unet_fwd_b1_s']:.3f} |")


if __name__ == "__main__":
    main()

"""Training of the VAE and the metric-conditioned inpainting UNet with Hugging Face Accelerate.

One code path from a laptop CPU to many GPUs: Accelerate places the models, runs bf16 autocast on GPUs
(and on CPUs with native bf16) and wraps them for distributed data parallel when started with
``accelerate launch``.

Exact resumption. Every random choice of a step (which items, the masks, the timesteps, the noise,
the dropped metrics, the VAE posterior sample) is drawn from generators seeded by
``(seed, step, process)``, and the data order is a function of ``(seed, epoch)``. A checkpoint holds
the weights, optimizer, LR scheduler, EMA and RNG states and the step, so a resumed run takes exactly
the steps the uninterrupted run would have taken.

Checkpoints go to ``OUT/checkpoints/{vae,unet}/step-NNNNNNN`` every ``checkpoint_every`` steps and
when the process receives SIGTERM or SIGINT (it finishes the current step, saves, and returns).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from .._shared import atomic_path, atomic_write
from ..data.dataset import open_dataset
from ..data.masks import random_masks
from ..data.representation import CHANNELS
from ..errors import InputError
from ..metrics import METRIC_NAMES, metric_axes
from ..models.ldm import (
    build_metric_encoder, build_scheduler, build_unet, build_vae, load_config, load_model, read_info,
    save_model, unet_input, vae_factor,
)
from ..models.precision import cpu_native_bf16

__all__ = ["train_vae", "train_unet", "StepSampler", "latest_checkpoint"]


# ---------------------------------------------------------------------------------------------
# Data order
# ---------------------------------------------------------------------------------------------
class StepSampler(torch.utils.data.Sampler):
    """Yields, for each step from ``start`` to ``steps``, this process's list of item indices.

    The item stream is the concatenation of permutations of ``range(n)``, one per epoch, each drawn
    from ``(seed, epoch)``; step ``s`` takes the global slice ``[s·B·W, (s+1)·B·W)`` of it and process
    ``rank`` the ``rank``-th block of ``B`` there. So the position in the data is a function of the
    step alone, which makes resuming exact.
    """

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, start: int, steps: int):
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.start, self.steps = seed, start, steps
        self._perm: dict[int, np.ndarray] = {}

    def _perm_of(self, epoch):
        if epoch not in self._perm:
            if len(self._perm) > 2:
                self._perm.pop(min(self._perm))
            self._perm[epoch] = np.random.default_rng([self.seed, epoch, 7]).permutation(self.n)
        return self._perm[epoch]

    def indices(self, step: int) -> list[int]:
        k0 = (step * self.world + self.rank) * self.batch
        ks = np.arange(k0, k0 + self.batch)
        return [int(self._perm_of(int(k // self.n))[k % self.n]) for k in ks]

    def __iter__(self):
        for s in range(self.start, self.steps):
            yield self.indices(s)

    def __len__(self):
        return max(0, self.steps - self.start)


def step_rng(seed: int, step: int, rank: int, salt: int = 0):
    """(numpy Generator, torch CPU Generator) for one step of one process."""
    rng = np.random.default_rng([seed, step, rank, salt])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return rng, g


# ---------------------------------------------------------------------------------------------
# Train modules: the whole forward pass inside one module, so DDP sees it
# ---------------------------------------------------------------------------------------------
class VAETrainModule(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x, eps):
        post = self.vae.encode(x).latent_dist
        z = post.mean + post.std * eps
        recon = self.vae.decode(z).sample
        return recon, post.mean, post.logvar


class DenoiserTrainModule(torch.nn.Module):
    def __init__(self, unet, metric_encoder):
        super().__init__()
        self.unet = unet
        self.metric_encoder = metric_encoder

    def forward(self, inp, t, cond, drop):
        tokens = self.metric_encoder(cond, drop)
        return self.unet(inp, t, encoder_hidden_states=tokens).sample


def vae_loss(recon, x, mean, logvar, kl_weight):
    """Mean squared reconstruction error + ``kl_weight`` × KL(q(z|x) ‖ N(0, I)) summed over the latent
    and divided by the number of input values (the usual latent-diffusion weighting)."""
    rec = F.mse_loss(recon.float(), x.float())
    kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).sum() / x.numel()
    return rec + kl_weight * kl, rec


# ---------------------------------------------------------------------------------------------
# Shared machinery
# ---------------------------------------------------------------------------------------------
def latest_checkpoint(folder) -> Path | None:
    """The newest complete checkpoint folder under ``folder`` (``step-NNNNNNN``), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    cks = sorted(p for p in folder.glob("step-*") if (p / "trainer_state.json").exists())
    return cks[-1] if cks else None


class _Stop:
    """Turns SIGTERM/SIGINT into a flag checked between steps (main thread only)."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.flag = True

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _make_accelerator(mixed_precision, cpu):
    from accelerate import Accelerator

    # Without a GPU, say cpu=True: Accelerate then sets up gloo data parallel under torchrun/mpirun
    # (with cpu=False it would treat every process as a lone one).
    cpu = cpu or not torch.cuda.is_available()
    if mixed_precision is None:
        # bf16 autocast (fp32 weights and optimiser) on GPUs and on CPUs that compute bf16 natively:
        # on a 2-core Zen 5 a morphology step took 0.71 s instead of 1.07 s, with the loss per 50 steps
        # within 0.3 % of fp32's over 300 steps (bench/RESULTS.md, stop 35); emulated bf16 is slower
        mixed_precision = "bf16" if not cpu or cpu_native_bf16() else "no"
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def _lr_lambda(steps, warmup, min_ratio):
    def f(step):
        if step < warmup:
            return (step + 1) / max(1, warmup)
        p = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def _plot_loss(csv_path: Path, png_path: Path, title: str):
    import matplotlib  # a dependency, imported only when a checkpoint is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    s = np.array([float(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(s, loss, lw=0.6, alpha=0.5, label="loss")
    if len(loss) > 10:
        k = max(2, len(loss) // 50)
        ax.plot(s[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.5, label=f"mean of {k}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


class _Run:
    """Bookkeeping common to both trainings: checkpoints, log, progress, stop handling."""

    def __init__(self, kind, out, accelerator, state, progress):
        self.kind, self.out, self.acc, self.state = kind, Path(out), accelerator, state
        self.ck_dir = self.out / "checkpoints" / kind
        self.log_dir = self.out / "logs"
        self.csv = self.log_dir / f"{kind}_log.csv"
        self.progress = progress
        if self.acc.is_main_process:
            self.ck_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)

    def start_log(self, start_step):
        if not self.acc.is_main_process:
            return
        rows = []
        if start_step > 0 and self.csv.exists():  # drop rows past the checkpoint we resume from
            rows = [r for r in csv.DictReader(open(self.csv)) if int(r["step"]) <= start_step]
        with atomic_write(self.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["step", "loss", "lr", "images_per_s", "elapsed_s"])
            w.writeheader()
            w.writerows(rows)

    def log(self, rows):
        if self.acc.is_main_process and rows:
            with open(self.csv, "a", newline="") as fh:
                csv.writer(fh).writerows(rows)

    def save_checkpoint(self, step, keep):
        acc = self.acc
        final = self.ck_dir / f"step-{step:07d}"
        tmp = self.ck_dir / f".tmp-step-{step:07d}"
        acc.wait_for_everyone()
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            st = dict(self.state, step=step, saved=time.strftime("%Y-%m-%dT%H:%M:%S"))
            (tmp / "trainer_state.json").write_text(json.dumps(st, indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in sorted(self.ck_dir.glob("step-*"))[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
            _plot_loss(self.csv, self.log_dir / f"{self.kind}_loss.png", f"{self.kind} training")
        acc.wait_for_everyone()
        return final


def _resolve_resume(kind, out, resume):
    """Checkpoint folder to resume from (None to start fresh) and its saved trainer state."""
    if not resume:
        return None, None
    ck = Path(resume) if isinstance(resume, (str, os.PathLike)) else latest_checkpoint(Path(out) / "checkpoints" / kind)
    if ck is None:
        raise InputError(f"{out}: no {kind} checkpoint to resume from; start without --resume")
    state = json.loads((ck / "trainer_state.json").read_text())
    return ck, state


def _loop(run: _Run, module, optimizer, lr_sched, ema, params, sampler, dataset, step_fn, start, steps,
          batch, grad_clip, checkpoint_every, keep, log_every, num_workers, callback, desc):
    """The training loop shared by both models. Returns (last step done, interrupted)."""
    from tqdm.auto import tqdm

    acc = run.acc
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                         persistent_workers=num_workers > 0)
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step",
               disable=not (run.progress and acc.is_main_process), dynamic_ncols=True)
    t0 = time.perf_counter()
    pending, smooth, step = [], None, start
    interrupted = False
    with _Stop() as stop:
        for step, item in enumerate(loader, start=start):
            module.train()
            with acc.autocast():
                loss = step_fn(item, step)
            acc.backward(loss)
            if grad_clip:
                acc.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            lr_sched.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(params)
            done = step + 1
            lval = float(loss.detach())
            smooth = lval if smooth is None else 0.9 * smooth + 0.1 * lval
            elapsed = time.perf_counter() - t0
            ips = (done - start) * batch * acc.num_processes / max(elapsed, 1e-9)
            pending.append([done, f"{lval:.6g}", f"{lr_sched.get_last_lr()[0]:.3g}", f"{ips:.3f}", f"{elapsed:.1f}"])
            bar.update()
            bar.set_postfix(loss=f"{smooth:.4g}", img_s=f"{ips:.2f}")
            if len(pending) >= log_every:
                run.log(pending)
                pending = []
            if callback is not None:
                callback(done, lval)
            flag = stop.flag
            if acc.num_processes > 1:  # every process must agree to stop at the same step
                t = torch.tensor([1.0 if flag else 0.0], device=acc.device)
                flag = bool(acc.reduce(t, reduction="sum").item() > 0)
            if flag or done == steps or (checkpoint_every and done % checkpoint_every == 0):
                run.log(pending)
                pending = []
                run.save_checkpoint(done, keep)
                if flag:
                    interrupted = True
                    if acc.is_main_process:
                        bar.write(f"stopped at step {done}; checkpoint saved, continue with --resume")
                    break
            step = done
    run.log(pending)
    bar.close()
    return (step if not interrupted else done), interrupted


def _prepare(acc, module, tcfg, lr, steps, weight_decay, min_lr_ratio=0.01, ema_decay=None):
    """AdamW with the config's warm-up and cosine decay, prepared by Accelerate, and (given an
    ``ema_decay``) an exponential moving average of the weights; the LR schedule and the EMA join the
    checkpoints. The keyword values are defaults for keys the training config ``tcfg`` lacks.
    Returns ``(module, optimizer, lr_schedule, ema or None, parameters)``."""
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=tcfg.get("weight_decay", weight_decay))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(steps, tcfg.get("warmup", 0), tcfg.get("min_lr_ratio", min_lr_ratio)))
    module, opt = acc.prepare(module, opt)
    params = list(module.parameters())
    average = None
    if ema_decay is not None:
        average = EMAModel(params, decay=tcfg.get("ema_decay", ema_decay), use_ema_warmup=True)
        average.to(acc.device)
    acc.register_for_checkpointing(sched, *([] if average is None else [average]))
    return module, opt, sched, average, params


def _timesteps(noise_sched, device):
    """The number of training timesteps and ᾱ_t (cumulative products of 1 − β_t) on ``device``."""
    return noise_sched.config.num_train_timesteps, noise_sched.alphas_cumprod.to(device)


def _resume(kind, ck, out, acc, state, progress, n_items, batch, seed, steps):
    """Load checkpoint ``ck`` (if any) into the prepared objects; returns ``(start step, run, sampler)``
    with the run's log cut back to the start step."""
    start = 0
    if ck is not None:
        acc.load_state(str(ck))
        start = json.loads((ck / "trainer_state.json").read_text())["step"]
    run = _Run(kind, out, acc, state, progress)
    run.start_log(start)
    return start, run, StepSampler(n_items, batch, acc.num_processes, acc.process_index, seed, start, steps)


def _common_setup(kind, data, out, config, resume, seed, steps, batch, lr, representation,
                  mixed_precision, cpu):
    ck, saved = _resolve_resume(kind, out, resume)
    if saved is not None:
        cfg = saved["config"]
        seed = saved["seed"]
        batch = saved["batch"]
        steps = steps or saved["steps"]
        lr = saved["lr"]
    else:
        cfg = load_config(config or "small")
        if representation:
            cfg["representation"] = representation
    tcfg = cfg["train_vae" if kind == "vae" else "train_unet"]
    steps = int(steps or tcfg["steps"])
    batch = int(batch or tcfg["batch"])
    lr = float(lr or tcfg["lr"])
    acc = _make_accelerator(mixed_precision, cpu)
    ds = open_dataset(data, cfg["representation"])
    if getattr(ds, "representation", cfg["representation"]) != cfg["representation"]:
        raise InputError(f"dataset representation '{ds.representation}' differs from the model's "
                         f"'{cfg['representation']}'")
    info = getattr(ds, "info", {}) or {}
    if info.get("patch") and info["patch"] != cfg["patch"]:
        raise InputError(f"the dataset has {info['patch']}-cell patches but config '{cfg.get('name')}' "
                         f"expects {cfg['patch']}; rebuild the dataset with --patch {cfg['patch']} "
                         "or choose another config")
    if len(ds) == 0:
        raise InputError("the dataset is empty")
    torch.manual_seed(seed)
    state = dict(kind=kind, config=cfg, seed=seed, batch=batch, steps=steps, lr=lr,
                 world=acc.num_processes)
    return ck, cfg, tcfg, steps, batch, lr, seed, acc, ds, info, state


def _provenance(state, info, acc):
    import diffusers

    return {"kind": state["kind"], "config": state["config"].get("name"), "steps": state["steps"],
            "batch_per_process": state["batch"], "processes": acc.num_processes, "seed": state["seed"],
            "lr": state["lr"], "dataset": info.get("manifest"), "n_patches": info.get("n_patches"),
            "augment": info.get("augment"), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "device": str(acc.device), "mixed_precision": acc.mixed_precision}


def _metric_axes():
    return list(METRIC_NAMES), {k: list(map(float, v)) for k, v in metric_axes().items()}


# ---------------------------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------------------------
def train_vae(data, out, config=None, steps=None, batch=None, lr=None, seed=0, resume=False,
              checkpoint_every=500, keep_checkpoints=2, log_every=10, num_workers=0,
              representation=None, mixed_precision=None, cpu=False, progress=True, callback=None,
              scale_batches=16) -> dict:
    """Train the config's AutoencoderKL on a dataset and save it to ``OUT/vae``.

    Parameters
    ----------
    data : dataset folder (from :func:`~infinityebsd.data.dataset.build_dataset`) or a torch Dataset
        whose items are ``{'x': (C, P, P), 'cond': (8, 1024)}``.
    out : model folder.
    config : shipped config name, JSON path or dict (default ``'small'``); ignored on resume (the
        checkpoint's is used). For the UNet the default is the config the VAE was trained with.
    steps, batch, lr : override the config's ``train_vae`` values; ``batch`` is per process.
    resume : True (latest checkpoint in ``out``) or a checkpoint folder.
    callback : called as ``callback(step_done, loss)`` after each step (tests, notebooks).

    Returns a dict with ``step``, ``interrupted``, ``scaling_factor`` (None if interrupted),
    ``final_loss``.
    """
    ck, cfg, tcfg, steps, batch, lr, seed, acc, ds, info, state = _common_setup(
        "vae", data, out, config, resume, seed, steps, batch, lr, representation, mixed_precision, cpu)
    vae = build_vae(cfg)
    module, opt, sched, _, params = _prepare(acc, VAETrainModule(vae), tcfg, lr, steps, weight_decay=0.0)
    start, run, sampler = _resume("vae", ck, out, acc, state, progress, len(ds), batch, seed, steps)
    kl_weight = float(tcfg.get("kl_weight", 1e-6))
    lat = cfg["vae"].get("latent_channels", 4)
    f = vae_factor(cfg)
    last = {}

    def step_fn(item, step):
        _, g = step_rng(seed, step, acc.process_index, 1)
        x = item["x"].to(acc.device)
        eps = torch.randn((x.shape[0], lat, x.shape[2] // f, x.shape[3] // f), generator=g).to(acc.device)
        recon, mean, logvar = module(x, eps)
        loss, rec = vae_loss(recon, x, mean, logvar, kl_weight)
        last["rec"] = float(rec.detach())
        return loss

    done, interrupted = _loop(run, module, opt, sched, None, params, sampler, ds, step_fn, start, steps,
                              batch, tcfg.get("grad_clip", 1.0), checkpoint_every, keep_checkpoints,
                              log_every, num_workers, callback, "vae")
    result = {"step": done, "interrupted": interrupted, "scaling_factor": None,
              "final_loss": float(last["rec"]) if "rec" in last else None}
    if interrupted:
        return result
    vae_u = acc.unwrap_model(module).vae
    sf = measure_scaling_factor(vae_u, ds, batch, scale_batches, acc.device)
    vae_u.register_to_config(scaling_factor=sf)
    result["scaling_factor"] = sf
    if acc.is_main_process:
        names, axes = _metric_axes()
        save_model(out, vae=vae_u, info={
            "format": "infinityebsd-model/1", "patch": cfg["patch"], "representation": cfg["representation"],
            "channels": CHANNELS[cfg["representation"]], "latent_channels": lat, "vae_factor": f,
            "latent_scaling_factor": sf, "metric_names": names, "metric_axes": axes,
            "grain_size_range_cells": info.get("grain_size_range"),
            "grain_size_range_definition": "5th-95th percentile, over the training patches, of each "
                                           "patch's median grain size (equivalent circle diameter, cells)",
            "config": cfg,
            "provenance": {"vae": _provenance(state, info, acc)}})
    acc.wait_for_everyone()
    return result


@torch.no_grad()
def measure_scaling_factor(vae, dataset, batch, max_batches, device) -> float:
    """1 / standard deviation of the VAE posterior means over (up to ``max_batches`` batches of) the
    data, so scaled latents have unit variance as the diffusion noise assumes."""
    vae.eval()
    n = min(len(dataset), batch * max_batches)
    vals = []
    for a in range(0, n, batch):
        x = torch.stack([dataset[i]["x"] for i in range(a, min(n, a + batch))]).to(device)
        vals.append(vae.encode(x).latent_dist.mean.float().cpu())
    z = torch.cat(vals)
    return float(1.0 / z.std().clamp_min(1e-6))


# ---------------------------------------------------------------------------------------------
# UNet
# ---------------------------------------------------------------------------------------------
def train_unet(data, out, config=None, steps=None, batch=None, lr=None, seed=0, resume=False,
               vae=None, checkpoint_every=500, keep_checkpoints=2, log_every=10, num_workers=0,
               mixed_precision=None, cpu=False, progress=True, callback=None) -> dict:
    """Train the metric-conditioned inpainting UNet (and the metric-token encoder) in latent space.

    The VAE comes from ``OUT/vae`` (or the model folder ``vae``) and is frozen; its representation and
    patch size are the model's. Each sample gets a random mask (paper's four types in all orientations
    plus irregular ones); each metric token is replaced by its null token with probability
    ``metric_dropout``. DDPM (1000 steps), uniform timesteps, ε-prediction, MSE, AdamW, cosine LR,
    gradient clipping and EMA; the EMA weights are saved to ``OUT/unet`` and ``OUT/metric_encoder``.
    Other parameters as :func:`train_vae`.
    """
    vae_dir = Path(vae) if vae else Path(out)
    if not (vae_dir / "vae").is_dir():
        raise InputError(f"{vae_dir}: no trained VAE (vae/); run 'infinityebsd train-vae' first")
    vinfo = read_info(vae_dir)
    if config is None:
        config = vinfo.get("config") or "small"
    ck, cfg, tcfg, steps, batch, lr, seed, acc, ds, info, state = _common_setup(
        "unet", data, out, config, resume, seed, steps, batch, lr, vinfo.get("representation"),
        mixed_precision, cpu)
    if vinfo.get("patch") and vinfo["patch"] != cfg["patch"]:
        raise InputError(f"the VAE in {vae_dir} was trained on {vinfo['patch']}-cell patches, the config "
                         f"says {cfg['patch']}")
    lm = load_model(vae_dir, parts=("vae",))
    vae_m = lm.vae.to(acc.device).requires_grad_(False).eval()
    sf = float(vinfo.get("latent_scaling_factor", vae_m.config.scaling_factor))
    unet = build_unet(cfg)
    menc = build_metric_encoder(cfg)
    noise_sched = build_scheduler(cfg)
    module, opt, sched, ema, params = _prepare(acc, DenoiserTrainModule(unet, menc), tcfg, lr, steps,
                                               weight_decay=1e-2, ema_decay=0.9999)
    start, run, sampler = _resume("unet", ck, out, acc, state, progress, len(ds), batch, seed, steps)
    p_drop = float(tcfg.get("metric_dropout", 0.1))
    p_irr = float(tcfg.get("p_irregular_mask", 0.1))
    T, acp = _timesteps(noise_sched, acc.device)

    def step_fn(item, step):
        rng, g = step_rng(seed, step, acc.process_index, 2)
        x = item["x"].to(acc.device)
        cond = item["cond"].to(acc.device)
        b, _, h, w = x.shape
        mask = torch.from_numpy(random_masks(b, h, rng, p_irr)).to(acc.device)
        with torch.no_grad():
            post = vae_m.encode(torch.cat([x, x * mask])).latent_dist
            e1 = torch.randn(post.mean[:b].shape, generator=g).to(acc.device)
            z = (post.mean[:b] + post.std[:b] * e1) * sf
            zm = post.mean[b:] * sf  # the known region's latent: deterministic, as at inference
        noise = torch.randn(z.shape, generator=g).to(acc.device)
        t = torch.randint(0, T, (b,), generator=g).to(acc.device)
        a = acp[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * z + (1 - a).sqrt() * noise  # DDPM forward process q(z_t | z_0)
        drop = torch.from_numpy(rng.random((b, cond.shape[1])) < p_drop).to(acc.device)
        pred = module(unet_input(noisy, zm, mask), t, cond, drop)
        return F.mse_loss(pred.float(), noise.float())

    done, interrupted = _loop(run, module, opt, sched, ema, params, sampler, ds, step_fn, start, steps,
                              batch, tcfg.get("grad_clip", 1.0), checkpoint_every, keep_checkpoints,
                              log_every, num_workers, callback, "unet")
    result = {"step": done, "interrupted": interrupted}
    if interrupted:
        return result
    if acc.is_main_process:
        m = acc.unwrap_model(module)
        ema.store(params)
        ema.copy_to(params)  # inference uses the EMA weights
        names, axes = _metric_axes()
        prov = dict(vinfo.get("provenance", {}))
        prov["unet"] = _provenance(state, info, acc)
        save_model(out, unet=m.unet, metric_encoder=m.metric_encoder, scheduler=noise_sched, info={
            "patch": cfg["patch"], "representation": cfg["representation"], "latent_scaling_factor": sf,
            "metric_names": names, "metric_axes": axes, "ema": True, "metric_dropout": p_drop,
            "grain_size_range_cells": vinfo.get("grain_size_range_cells") or info.get("grain_size_range"),
            "config": cfg, "provenance": prov})
        if vae_dir.resolve() != Path(out).resolve():
            save_model(out, vae=vae_m)
        ema.restore(params)
    acc.wait_for_everyone()
    return result

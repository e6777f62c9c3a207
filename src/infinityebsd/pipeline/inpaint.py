"""One inpainting step: fill the unknown cells of a batch of windows with the latent diffusion model.

A diffusers-style pipeline on the model folder's parts (VAE, UNet, metric encoder, scheduler): the
known part of each window is encoded, the 9-channel UNet input is built from the noisy latent, the
masked-map latent and the mask downsampled to latent size, the latent is denoised with metric
conditioning (rows of NaN in the conditioning tensor stand for metrics not given and use the learned
null tokens; ``guidance > 1`` adds classifier-free guidance against the all-null condition), decoded,
and only the unknown cells are replaced; generated cells that continue a known grain take its
orientation (:mod:`.continuation`).

Each window's starting noise comes from its own seed, so a window gives the same result whether it is
denoised alone or in a batch.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.representation import CHANNELS, decode, encode
from ..errors import InputError
from ..models.ldm import LatentDiffusionModel, unet_input
from .continuation import continue_grains

SCHEDULERS = ("pndm", "dpm", "ddim")


def make_scheduler(model: LatentDiffusionModel, kind: str = "dpm"):
    """An inference scheduler built from the model's training noise schedule."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

    cfg = model.scheduler.config
    if kind == "pndm":
        return PNDMScheduler.from_config(cfg, skip_prk_steps=True)
    if kind == "dpm":
        return DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++", solver_order=2)
    if kind == "ddim":
        return DDIMScheduler.from_config(cfg)
    raise InputError(f"unknown --scheduler '{kind}'; use one of: {', '.join(SCHEDULERS)}")


class InpaintPipeline:
    """Fill windows with a trained :class:`~infinityebsd.models.ldm.LatentDiffusionModel`."""

    def __init__(self, model: LatentDiffusionModel, device="cpu", dtype=torch.float32, continuation: bool = True):
        for part in ("vae", "unet", "metric_encoder", "scheduler"):
            if getattr(model, part) is None:
                raise InputError(f"the model folder lacks its '{part}' part; train it first")
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()  # dtype-casting notes are noise for users
        self.model = model.to(device, None if dtype == torch.float32 else dtype)
        self.device = torch.device(device)
        self.dtype = dtype
        # a folder that does not name its representation: the VAE's channel count tells which it reads
        by_channels = {c: r for r, c in CHANNELS.items()}
        self.representation = model.info.get("representation") or by_channels[model.vae.config.in_channels]
        self.patch = int(model.info.get("patch", model.vae.config.sample_size))
        self.scale = model.scaling_factor
        self.continuation = continuation  # snap generated cells onto the known grains they continue

    @torch.no_grad()
    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.vae.encode(x.to(self.device, self.dtype)).latent_dist.mean * self.scale

    @torch.no_grad()
    def __call__(self, euler: np.ndarray, known: np.ndarray, cond: np.ndarray, seeds, steps: int = 20,
                 scheduler: str = "dpm", guidance: float = 1.0) -> np.ndarray:
        """Fill windows.

        Parameters
        ----------
        euler : (B, P, P, 3) Bunge angles (radians); only cells where ``known`` matter.
        known : (B, P, P) bool.
        cond : (8, 1024) or (B, 8, 1024) conditioning tensor; NaN rows = metric not given.
        seeds : B integers, one per window.

        Returns
        -------
        (B, P, P, 3) angles: the known cells unchanged, the others generated.
        """
        euler = np.asarray(euler)
        known = np.asarray(known, dtype=bool)
        B = len(euler)
        x = torch.from_numpy(np.stack([encode(e, self.representation) for e in euler]))
        mask = torch.from_numpy(known[:, None].astype(np.float32))
        cond = np.broadcast_to(np.asarray(cond, dtype=np.float32), (B,) + np.shape(cond)[-2:])
        drop = torch.from_numpy(~np.isfinite(cond).all(axis=-1))
        cond_t = torch.from_numpy(np.nan_to_num(cond, nan=0.0))
        dev, dt = self.device, self.dtype
        zm = self.encode_latent(x * mask)
        lat_shape = zm.shape[1:]
        noise = torch.stack([torch.randn(lat_shape, generator=torch.Generator().manual_seed(int(s)))
                             for s in seeds]).to(dev, dt)
        sched = make_scheduler(self.model, scheduler)
        sched.set_timesteps(steps, device=dev)
        latents = noise * sched.init_noise_sigma
        tokens = self.model.metric_encoder(cond_t.to(dev, dt), drop.to(dev))
        use_cfg = guidance != 1.0
        if use_cfg:
            null = self.model.metric_encoder(cond_t.to(dev, dt), torch.ones_like(drop).to(dev))
            tokens = torch.cat([tokens, null])
        mask_d = mask.to(dev, dt)
        for t in sched.timesteps:
            inp = sched.scale_model_input(latents, t)
            inp = unet_input(inp, zm, mask_d)
            if use_cfg:
                inp = torch.cat([inp, inp])
            eps = self.model.unet(inp, t, encoder_hidden_states=tokens).sample
            if use_cfg:
                e_c, e_u = eps.chunk(2)
                eps = e_u + guidance * (e_c - e_u)
            latents = sched.step(eps, t, latents).prev_sample
        out = self.model.vae.decode(latents / self.scale).sample.float().cpu().numpy()
        dec = np.stack([decode(o, self.representation) for o in out])
        if self.continuation:
            return np.stack([continue_grains(e, k, d) for e, k, d in zip(euler, known, dec)])
        return np.where(known[..., None], euler, dec)

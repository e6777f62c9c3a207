"""Morphology-first inpainting: fill windows of a grain-network field, then segment them.

:class:`MorphPipeline` denoises a batch of windows of the morphology field (the model's
representation, e.g. the distance-to-boundary field) in pixel space. The known part of each window is
enforced at every step by replacing it with the known field noised to the current level
(known-region replacement), and, with the ``ddim`` sampler, RePaint-style resampling: after a step,
the sample is noised back one step and denoised again ``resample`` times, so that the generated part
and the known part can agree before the next step (Lugmayr et al., RePaint, CVPR 2022).

:func:`segment_window` turns a generated window into labels: the known cells keep their grains, the
segmentation floods outward from them, and new grains start from the field's own maxima
(:func:`~infinityebsd.data.representation.decode_morphology`).

Each window's noise comes from its own seed, so a window gives the same result alone or in a batch.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.representation import MORPHOLOGY_CHANNELS, decode_morphology, encode_morphology
from ..errors import InputError
from ..models.morph import check_pixel_model, morph_drop, morph_input

SAMPLERS = ("ddim", "dpm", "pndm")
"""``ddim``: deterministic DDIM with known-region replacement and RePaint resampling (the default);
``dpm`` and ``pndm``: diffusers' multistep solvers with known-region replacement only (their
multistep state does not survive jumps back in time)."""


class MorphPipeline:
    """Fill windows of a morphology field with a trained pixel-space model."""

    space = "pixel"

    def __init__(self, model, device="cpu", dtype=torch.float32, folder="model"):
        check_pixel_model(model, folder)
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
        self.model = model.to(device, None if dtype == torch.float32 else dtype)
        self.device, self.dtype = torch.device(device), dtype
        self.representation = model.info["representation"]
        self.channels = MORPHOLOGY_CHANNELS[self.representation]
        self.patch = int(model.info["patch"])
        self.clip = float(model.info.get("distance_clip", 8.0))
        sched = model.scheduler
        self.acp = sched.alphas_cumprod.double()
        self.T = int(sched.config.num_train_timesteps)
        self.prediction = sched.config.prediction_type
        # segmentation thresholds calibrated for this model's fields (faint boundaries of a briefly
        # trained model need a lower merge level than exact fields); see scripts/train_default_model.py
        self.decode_options = dict(model.info.get("decode", {}))

    # -- encoding ---------------------------------------------------------------------------------
    def known_field(self, labels: np.ndarray, known: np.ndarray, seed: int = 0) -> np.ndarray:
        """The field (C, P, P) of a window's known cells alone (0 elsewhere)."""
        return encode_morphology(np.where(known, labels, -1), self.representation, known=known, rng=seed,
                                 clip=self.clip)

    # -- denoising --------------------------------------------------------------------------------
    def _tokens(self, cond, B, guidance):
        cond = np.broadcast_to(np.asarray(cond, dtype=np.float32), (B,) + np.shape(cond)[-2:])
        drop = morph_drop(torch.from_numpy(~np.isfinite(cond).all(axis=-1)))
        c = torch.from_numpy(np.nan_to_num(cond, nan=0.0)).to(self.device, self.dtype)
        enc = self.model.metric_encoder
        tokens = enc(c, drop.to(self.device))
        if guidance != 1.0:
            tokens = torch.cat([tokens, enc(c, torch.ones_like(drop).to(self.device))])
        return tokens

    def _predict(self, x, t, tokens, kf, mask, guidance):
        """The model's estimate of the clean field x0 (clipped to [-1, 1]) and of the noise."""
        inp = morph_input(x.to(self.dtype), kf, mask)
        tt = torch.full((len(x),), int(t), device=self.device, dtype=torch.long)
        if guidance != 1.0:
            out = self.model.unet(torch.cat([inp, inp]), torch.cat([tt, tt]), encoder_hidden_states=tokens).sample
            oc, ou = out.float().chunk(2)
            out = ou + guidance * (oc - ou)
        else:
            out = self.model.unet(inp, tt, encoder_hidden_states=tokens).sample.float()
        a = self.acp[int(t)].to(x.device).float()
        s, r = a.sqrt(), (1 - a).sqrt()
        if self.prediction == "v_prediction":
            x0 = s * x - r * out
        elif self.prediction == "epsilon":
            x0 = (x - r * out) / s
        else:
            x0 = out
        x0 = x0.clamp(-1, 1)
        eps = (x - s * x0) / r.clamp(min=1e-8)
        return x0, eps

    @torch.no_grad()
    def __call__(self, known_field: np.ndarray, known: np.ndarray, cond, seeds, steps: int = 25,
                 sampler: str = "ddim", guidance: float = 1.0, resample: int = 2,
                 resample_until: float = 0.5) -> np.ndarray:
        """Generated fields (B, C, P, P), equal to ``known_field`` on the known cells.

        Parameters
        ----------
        known_field : (B, C, P, P) field of the known cells (:meth:`known_field`); 0 where unknown.
        known : (B, P, P) bool.
        cond : (8, 1024) or (B, 8, 1024) conditioning; NaN rows = metric not given.
        seeds : one integer per window.
        steps : denoising steps.
        resample : RePaint passes per step (1 = replacement only) during the first ``resample_until``
            fraction of the steps, where the layout of grains is decided (``ddim`` only).
        """
        if sampler not in SAMPLERS:
            raise InputError(f"unknown sampler '{sampler}'; use one of: {', '.join(SAMPLERS)}")
        kf0 = torch.from_numpy(np.asarray(known_field, np.float32)).to(self.device)
        mask = torch.from_numpy(np.asarray(known, np.float32)[:, None]).to(self.device)
        B = kf0.shape[0]
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]

        def randn():
            return torch.stack([torch.randn(kf0.shape[1:], generator=g) for g in gens]).to(self.device)

        tokens = self._tokens(cond, B, guidance)
        kf_in = kf0.to(self.dtype)
        x = randn()

        def noised_known(t):
            if t < 0:
                return kf0
            a = self.acp[int(t)].float().to(self.device)
            return a.sqrt() * kf0 + (1 - a).sqrt() * randn()

        if sampler == "ddim":
            ts = np.unique(np.linspace(0, self.T - 1, int(steps)).round().astype(int))[::-1]
            n_res = int(np.ceil(len(ts) * resample_until))
            for i, t in enumerate(ts):
                t_prev = int(ts[i + 1]) if i + 1 < len(ts) else -1
                a_t = self.acp[int(t)].float()
                a_p = self.acp[t_prev].float() if t_prev >= 0 else torch.tensor(1.0)
                passes = max(1, int(resample)) if i < n_res else 1
                for u in range(passes):
                    x = mask * noised_known(t) + (1 - mask) * x
                    x0, eps = self._predict(x, t, tokens, kf_in, mask, guidance)
                    x = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
                    if u < passes - 1:  # RePaint: back to level t with fresh noise
                        r = a_t / a_p
                        x = r.sqrt() * x + (1 - r).sqrt() * randn()
        else:
            from diffusers import DPMSolverMultistepScheduler, PNDMScheduler

            cfg = self.model.scheduler.config
            sched = (DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++", solver_order=2)
                     if sampler == "dpm" else PNDMScheduler.from_config(cfg, skip_prk_steps=True))
            sched.set_timesteps(int(steps), device=self.device)
            for t in sched.timesteps:
                x = mask * noised_known(int(t)) + (1 - mask) * x
                x0, eps = self._predict(x, int(t), tokens, kf_in, mask, guidance)
                a = self.acp[int(t)].float()
                out = a.sqrt() * eps - (1 - a).sqrt() * x0 if self.prediction == "v_prediction" else eps
                x = sched.step(out.to(x.dtype), t, x).prev_sample
            x = x.clamp(-1, 1)
        x = mask * kf0 + (1 - mask) * x
        return x.float().cpu().numpy()


def segment_window(field: np.ndarray, labels: np.ndarray, known: np.ndarray, representation: str,
                   next_label: int, **decode_options) -> tuple[np.ndarray, int]:
    """Labels of a generated window: known cells keep ``labels``; new grains are numbered from
    ``next_label``. Returns (labels (P, P), next free label)."""
    lab = decode_morphology(field, representation, known_labels=np.where(known, labels, 0), known=known,
                            **decode_options)
    base = int(labels[known].max()) + 1 if known.any() else 0
    new = lab >= base
    out = np.where(new, lab - base + next_label, lab)
    n_new = int(lab[new].max() - base + 1) if new.any() else 0
    return out, next_label + n_new

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

Each window's noise comes from its own seed, so in fp32 a window gives the same result alone or in a
batch; in bfloat16 the batch size changes the rounding (fields differ by up to about 0.02), so
``--batch`` can change a map slightly, while a resumed job, batched alike, stays identical.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.representation import MORPHOLOGY_CHANNELS, decode_morphology, encode_morphology
from ..errors import InputError
from ..models.morph import check_pixel_model, morph_drop, morph_input
from ..models.precision import cpu_native_bf16

SAMPLERS = ("ddim", "dpm", "pndm")
DEFAULT_SAMPLING = {"sampler": "ddim", "steps": 25, "resample": 2, "overlap": 0.5, "guidance": 1.0,
                    "guidance_generate": 1.0, "guidance_until": 1.0, "window": None,
                    "resample_input_only": False}
"""Sampling settings of a model folder that names none; a folder's ``infinityebsd.json`` may carry its
own under ``"sampling"`` (the shipped model's were chosen by ``bench/bench_morph.py`` and, for
``guidance_generate``, the classifier-free guidance when generating from metrics alone, and
``guidance_until``, the fraction of the steps that are guided, by ``scripts/evaluate_generation.py``).
``window`` is the side of the windows denoised at inference (None: the training patch); the UNet is
convolutional, so a larger window covers the canvas with fewer overlapping cells;
``resample_input_only`` keeps RePaint resampling to the windows that overlap the input map."""
"""``ddim``: deterministic DDIM with known-region replacement and RePaint resampling (the default);
``dpm`` and ``pndm``: diffusers' multistep solvers with known-region replacement only (their
multistep state does not survive jumps back in time)."""


class MorphPipeline:
    """Fill windows of a morphology field with a trained pixel-space model."""

    space = "pixel"

    def __init__(self, model, device="cpu", dtype=torch.float32, folder="model", precision: str = "auto"):
        check_pixel_model(model, folder)
        if precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"unknown precision '{precision}'; use auto, fp32 or bf16")
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
        device = torch.device(device)
        # bfloat16 weights on CPUs with native bf16 (AVX-512 BF16 / AMX): about 2x faster UNet calls
        # on this project's CPU, with the same extension figures (bench/RESULTS.md); elsewhere bf16
        # is emulated and slower, so "auto" keeps fp32 there ("bf16" forces it)
        if device.type == "cpu" and dtype == torch.float32 and (
                precision == "bf16" or (precision == "auto" and cpu_native_bf16())):
            dtype = torch.bfloat16
        self.model = model.to(device, None if dtype == torch.float32 else dtype)
        self.device, self.dtype = device, dtype
        if self.device.type == "cpu":
            # oneDNN's convolutions are faster in this layout on the small batches of a wave (the demo
            # job: 49 s -> 43 s on the 2-core CPU, bench/RESULTS.md); results differ from the default
            # layout only by float rounding, and stay independent of the batch size
            self.model.unet.to(memory_format=torch.channels_last)
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
        self.sampling = {**DEFAULT_SAMPLING, **model.info.get("sampling", {})}

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
                 resample_until: float = 0.5, guidance_until: float = 1.0) -> np.ndarray:
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
        guidance_until : classifier-free guidance during the first ``guidance_until`` fraction of the
            steps only (later steps refine boundaries of a layout already decided, and guidance there
            doubles their cost for little; Kynkäänniemi et al., NeurIPS 2024, guide in an interval).
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

        def guided(i, n):
            """(tokens, guidance) of step ``i`` of ``n``."""
            if guidance != 1.0 and i < int(np.ceil(n * guidance_until)):
                return tokens, guidance
            return tokens[:B], 1.0

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
                tok, g = guided(i, len(ts))
                for u in range(passes):
                    x = mask * noised_known(t) + (1 - mask) * x
                    x0, eps = self._predict(x, t, tok, kf_in, mask, g)
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
            for i, t in enumerate(sched.timesteps):
                x = mask * noised_known(int(t)) + (1 - mask) * x
                tok, g = guided(i, len(sched.timesteps))
                x0, eps = self._predict(x, int(t), tok, kf_in, mask, g)
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


def calibrate_decoder(folder, maps: int = 4, windows: int = 4, seed: int = 10_000, log=print, sampling=None,
                      write: bool = True) -> dict:
    """Choose the segmentation thresholds (h-maxima height, merge level) for a model folder's fields.

    Held-out grain-growth maps (seeds far from the training corpus'; one elongated), random windows
    with their right half unknown, filled once with the folder's sampling settings; each
    threshold pair segments the same fields, and the pair whose new grains best match the truth's in
    number, mean ECD and area-weighted mean ECD (sum of absolute log ratios; the last one catches
    merged giants, which the number-weighted figures barely see) wins. Written to ``infinityebsd.json["decode"]``
    (unless ``write`` is False); ``sampling`` overrides the folder's sampling settings (to compare
    samplers, each with its own thresholds).
    """
    # training-side modules (accelerate and the corpus code) only when calibrating
    from ..data.synth import grain_growth_labels
    from ..models.ldm import load_model, read_info, write_info
    from ..train.morph import morph_conditioning

    pipe = MorphPipeline(load_model(folder), folder=folder)
    pipe.decode_options = {}
    P = pipe.patch
    rng = np.random.default_rng(seed)
    labs, conds = [], []
    for k in range(maps):
        median = float(rng.uniform(9.0, 12.5))
        aspect = 2.5 if k == maps - 1 else 1.0
        lab = grain_growth_labels((160, 160), median / 0.85, aspect=aspect, angle_deg=float(rng.uniform(0, 180)),
                                  rng=seed + k, workers=1)
        c = morph_conditioning(lab)
        for _ in range(windows):
            r, q = rng.integers(0, 160 - P, 2)
            labs.append(lab[r:r + P, q:q + P])
            conds.append(c)
    known = np.zeros((len(labs), P, P), bool)
    known[:, :, : P // 2] = True
    kf = np.stack([pipe.known_field(lab, k) for lab, k in zip(labs, known)])
    d = {**pipe.sampling, **(sampling or {})}
    fields = pipe(kf, known, np.stack(conds), seeds=list(range(len(labs))), steps=d["steps"], sampler=d["sampler"],
                  resample=d["resample"])

    def new_grains(lab, unknown):
        area = np.bincount(lab.ravel())
        share = np.bincount(lab[unknown].ravel(), minlength=len(area)) / np.maximum(area, 1)
        g = np.flatnonzero(share > 0.5)
        ecd = np.sqrt(4 * area[g] / np.pi)
        return len(g), float(ecd.sum()), float((area[g] * ecd).sum()), float(area[g].sum())

    truth = np.array([new_grains(lab, ~k) for lab, k in zip(labs, known)]).sum(0)
    best = None
    for h in (0.05, 0.1, 0.15, 0.25):
        for merge in (-0.85, -0.7, -0.6, -0.5, -0.4):
            got = np.array([new_grains(segment_window(f, lab, k, pipe.representation, 10**6, h=h, merge_above=merge)[0], ~k)
                            for lab, k, f in zip(labs, known, fields)]).sum(0)
            n_ratio = got[0] / truth[0]
            ecd_ratio = (got[1] / max(got[0], 1)) / (truth[1] / truth[0])
            aw_ratio = (got[2] / max(got[3], 1)) / (truth[2] / truth[3])
            score = sum(abs(np.log(max(r, 1e-3))) for r in (n_ratio, ecd_ratio, aw_ratio))
            if best is None or score < best[0]:
                best = (score, h, merge, n_ratio, ecd_ratio, aw_ratio)
    _, h, merge, n_ratio, ecd_ratio, aw_ratio = best
    if not write:
        return {"h": h, "merge_above": merge}
    info = read_info(folder)
    info["decode"] = {"h": h, "merge_above": merge}
    info["decode_calibration"] = {"windows": len(labs), "grain_count_ratio": round(float(n_ratio), 3),
                                  "mean_ecd_ratio": round(float(ecd_ratio), 3),
                                  "area_weighted_ecd_ratio": round(float(aw_ratio), 3), "seed": seed}
    write_info(folder, info)
    log(f"decoder: h={h}, merge_above={merge} (new grains / truth: count {n_ratio:.2f}, mean ECD {ecd_ratio:.2f}, "
        f"area-weighted mean ECD {aw_ratio:.2f})")
    return info["decode"]

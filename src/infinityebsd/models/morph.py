"""The pixel-space morphology model: a metric-conditioned inpainting UNet on grain-network fields.

Same folder layout as the latent model (diffusers conventions, so each part loads with
``from_pretrained``), without a VAE: the UNet works on the morphology field itself
(:mod:`infinityebsd.data.representation`, e.g. the distance-to-boundary field at grain scale)::

    model/
      unet/             UNet2DConditionModel (EMA weights): in = noisy field, known field, mask
      metric_encoder/   MetricEncoder: the 8 metric tokens, null tokens for metrics not given
      scheduler/        DDPMScheduler config (cosine schedule, v-prediction)
      infinityebsd.json "space": "pixel", representation, patch, grain-size range, provenance

Only the morphological metrics (size, perimeter, inertia ratio, coordination) are given to the
network; the orientation metrics are always replaced by their null tokens (:data:`MORPH_METRICS`),
because the grain network does not depend on them and matching crystallography sets them exactly.
"""

from __future__ import annotations

import os

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from ..data.representation import MORPHOLOGY_CHANNELS, check_morphology
from ..errors import InputError
from .ldm import METRIC_DIM, N_METRICS, LatentDiffusionModel, MetricEncoder, read_config

MORPH_METRICS = (0, 1, 2, 3)
"""Rows of the conditioning tensor the morphology model reads: size, perimeter, inertia ratio,
coordination (the order of ``metrics.METRIC_NAMES``)."""


def is_pixel_model(info_or_cfg: dict) -> bool:
    """True for a morphology (pixel-space) model folder's info or config."""
    return info_or_cfg.get("space") == "pixel"


def load_morph_config(name_or_path: str | os.PathLike | dict = "morph") -> dict:
    """A morphology-model config: a shipped name (``'morph'``), a JSON path, or a dict (copied)."""
    cfg, _ = read_config(name_or_path)
    for key in ("patch", "unet", "scheduler", "representation"):
        if key not in cfg:
            raise InputError(f"config '{cfg.get('name', name_or_path)}' lacks the '{key}' section")
    if not is_pixel_model(cfg):
        raise InputError(f"config '{cfg.get('name', name_or_path)}' is not a pixel-space morphology config")
    check_morphology(cfg["representation"])
    cfg.setdefault("metric_encoder", {})
    return cfg


def build_morph_unet(cfg: dict) -> UNet2DConditionModel:
    """A fresh UNet with 2C+1 inputs (noisy field, masked known field, mask) and C outputs.
    Note: in diffusers ``attention_head_dim`` is the number of heads for this class."""
    c = MORPHOLOGY_CHANNELS[cfg["representation"]]
    kw = dict(cfg["unet"])
    kw.update(in_channels=2 * c + 1, out_channels=c, sample_size=cfg["patch"])
    return UNet2DConditionModel(**kw)


def build_morph_parts(cfg: dict):
    """(unet, metric_encoder, scheduler) for a morphology config."""
    me = cfg.get("metric_encoder", {})
    enc = MetricEncoder(n_tokens=me.get("n_tokens", N_METRICS), in_dim=me.get("in_dim", METRIC_DIM),
                        dim=cfg["unet"]["cross_attention_dim"])
    return build_morph_unet(cfg), enc, DDPMScheduler(**cfg["scheduler"])


def morph_input(noisy: torch.Tensor, known_field: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The UNet input: noisy field, the known field (0 where unknown) and the known mask."""
    return torch.cat([noisy, (known_field * mask).to(noisy.dtype), mask.to(noisy.dtype)], dim=1)


def morph_drop(drop: torch.Tensor) -> torch.Tensor:
    """Metric dropout mask with the orientation metrics always dropped (see :data:`MORPH_METRICS`)."""
    keep = torch.zeros(drop.shape[-1], dtype=torch.bool, device=drop.device)
    keep[list(MORPH_METRICS)] = True
    return drop | ~keep


def check_pixel_model(model: LatentDiffusionModel, folder) -> None:
    """Raise InputError unless ``model`` is a complete morphology model."""
    for part in ("unet", "metric_encoder", "scheduler"):
        if getattr(model, part) is None:
            raise InputError(f"{folder}: model folder lacks '{part}/'; is it a complete infinityebsd model?")
    check_morphology(model.info.get("representation", ""))

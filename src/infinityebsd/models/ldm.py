"""The latent diffusion model: configs, the metric-token encoder, and the model folder.

A model folder follows the diffusers layout, so each part loads with ``from_pretrained``::

    model/
      vae/              AutoencoderKL (config.json + diffusion_pytorch_model.safetensors)
      unet/             UNet2DConditionModel, EMA weights (the ones used for inference)
      metric_encoder/   MetricEncoder: 8 metric tokens 1024 → cross-attention width, null tokens
      scheduler/        DDPMScheduler config (1000 training steps)
      infinityebsd.json patch size, representation, metric axes, latent scale, grain sizes, provenance

The UNet takes 9 channels: the noisy latent (4), the latent of the masked map (4) and the known-region
mask bilinearly downsampled to the latent size (1); :func:`unet_input` builds it.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .._shared import atomic_dir, atomic_write_text
from ..data.representation import CHANNELS, DEFAULT as DEFAULT_REPRESENTATION, check as check_representation
from ..errors import InputError
from ..metrics import CONDITIONING_SHAPE

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
INFO_FILE = "infinityebsd.json"
N_METRICS, METRIC_DIM = CONDITIONING_SHAPE  # metric tokens and their length (defined in metrics/)


def config_names() -> list[str]:
    """Names of the configs shipped with the package (``tiny``, ``small``, ``paper``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def read_config(name_or_path: str | os.PathLike | dict) -> tuple[dict, str]:
    """``(config, where)``: a copy of a dict, or the JSON of a shipped config name (``'small'``) or of
    a file path, with where it came from (for messages); unchecked."""
    if isinstance(name_or_path, dict):
        return copy.deepcopy(name_or_path), "config"
    p = Path(name_or_path)
    if not p.suffix and (CONFIG_DIR / f"{name_or_path}.json").exists():
        p = CONFIG_DIR / f"{name_or_path}.json"
    if not p.exists():
        raise InputError(f"no config '{name_or_path}'; use one of {config_names()} or a JSON file path")
    try:
        return json.loads(p.read_text()), str(p)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc})") from None


def load_config(name_or_path: str | os.PathLike | dict) -> dict:
    """A model/training config: a shipped name (``'small'``), a JSON file path, or a dict (copied)."""
    if isinstance(name_or_path, dict):
        return copy.deepcopy(name_or_path)
    cfg, p = read_config(name_or_path)
    for key in ("patch", "vae", "unet", "scheduler"):
        if key not in cfg:
            raise InputError(f"{p}: config lacks the '{key}' section")
    cfg.setdefault("representation", DEFAULT_REPRESENTATION)
    cfg.setdefault("metric_encoder", {})
    return cfg


def vae_factor(cfg: dict) -> int:
    """Spatial downsampling factor of the config's VAE (2 per block after the first)."""
    return 2 ** (len(cfg["vae"]["block_out_channels"]) - 1)


class MetricEncoder(ModelMixin, ConfigMixin):
    """Projects the 8 metric distributions (8×1024) to 8 cross-attention tokens.

    Each metric has its own linear projection and its own learned null token; a token whose metric is
    dropped (training) or not given (inference) is replaced by the null token, which gives metric
    dropout and classifier-free guidance (all metrics dropped = unconditional).
    """

    @register_to_config
    def __init__(self, n_tokens: int = N_METRICS, in_dim: int = METRIC_DIM, dim: int = 256):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_tokens, in_dim, dim) / in_dim**0.5)
        self.bias = torch.nn.Parameter(torch.zeros(n_tokens, dim))
        self.null_tokens = torch.nn.Parameter(torch.randn(n_tokens, dim) * 0.02)
        self.norm = torch.nn.LayerNorm(dim)

    def forward(self, cond: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, 8, dim) from ``cond`` (B, 8, 1024); ``drop`` (B, 8) bool, True = use null token."""
        tok = torch.einsum("bti,tid->btd", cond.to(self.weight.dtype), self.weight) + self.bias
        tok = self.norm(tok)
        if drop is not None:
            null = self.null_tokens.to(tok.dtype).unsqueeze(0).expand_as(tok)
            tok = torch.where(drop.to(tok.device).unsqueeze(-1), null, tok)
        return tok


def build_vae(cfg: dict) -> AutoencoderKL:
    """A fresh AutoencoderKL whose input/output channels match the config's representation."""
    c = CHANNELS[check_representation(cfg["representation"])]
    kw = dict(cfg["vae"])
    kw.update(in_channels=c, out_channels=c, sample_size=cfg["patch"])
    return AutoencoderKL(**kw)


def build_unet(cfg: dict) -> UNet2DConditionModel:
    """A fresh 9-in/4-out UNet2DConditionModel. Note: in diffusers ``attention_head_dim`` is the
    number of heads for this class (a naming bug kept for compatibility)."""
    kw = dict(cfg["unet"])
    lat = cfg["vae"].get("latent_channels", 4)
    kw.update(in_channels=2 * lat + 1, out_channels=lat, sample_size=cfg["patch"] // vae_factor(cfg))
    return UNet2DConditionModel(**kw)


def build_metric_encoder(cfg: dict) -> MetricEncoder:
    me = cfg.get("metric_encoder", {})
    return MetricEncoder(n_tokens=me.get("n_tokens", N_METRICS), in_dim=me.get("in_dim", METRIC_DIM),
                         dim=cfg["unet"]["cross_attention_dim"])


def build_scheduler(cfg: dict) -> DDPMScheduler:
    return DDPMScheduler(**cfg["scheduler"])


def downsample_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """Known-region mask (B, 1, H, W) to latent size by bilinear interpolation (with antialiasing,
    so each latent cell sees the fraction of its cells that are known)."""
    if isinstance(size, int):
        size = (size, size)
    return F.interpolate(mask.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def unet_input(noisy_latent: torch.Tensor, masked_latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The UNet's 9-channel input: noisy latent, masked-map latent, mask at latent size."""
    m = downsample_mask(mask, noisy_latent.shape[-2:]).to(noisy_latent.dtype)
    return torch.cat([noisy_latent, masked_latent.to(noisy_latent.dtype), m], dim=1)


@dataclass
class LatentDiffusionModel:
    """The parts of a model folder; any may be None when not trained yet."""

    info: dict = field(default_factory=dict)
    vae: AutoencoderKL | None = None
    unet: UNet2DConditionModel | None = None
    metric_encoder: MetricEncoder | None = None
    scheduler: DDPMScheduler | None = None

    @property
    def scaling_factor(self) -> float:
        return float(self.info.get("latent_scaling_factor", self.vae.config.scaling_factor if self.vae else 1.0))

    def to(self, device, dtype=None):
        for m in (self.vae, self.unet, self.metric_encoder):
            if m is not None:
                m.to(device) if dtype is None else m.to(device=device, dtype=dtype)
        return self


def read_info(folder) -> dict:
    p = Path(folder) / INFO_FILE
    return json.loads(p.read_text()) if p.exists() else {}


def write_info(folder, info: dict) -> None:
    """Write ``infinityebsd.json`` atomically."""
    atomic_write_text(Path(folder) / INFO_FILE, json.dumps(info, indent=2, default=_json_default))


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def save_model(folder, vae=None, unet=None, metric_encoder=None, scheduler=None, info: dict | None = None):
    """Save the given parts into a model folder (others left as they are); ``info`` is merged into
    ``infinityebsd.json``. Each part is written to a temporary folder and swapped in."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("vae", vae), ("unet", unet), ("metric_encoder", metric_encoder), ("scheduler", scheduler)):
        if part is not None:
            with atomic_dir(folder / name) as tmp:
                part.save_pretrained(tmp, **({} if name == "scheduler" else {"safe_serialization": True}))
    if info:
        merged = read_info(folder)
        merged.update(info)
        write_info(folder, merged)


def load_model(folder, device="cpu", dtype=None, parts=("vae", "unet", "metric_encoder", "scheduler")) -> LatentDiffusionModel:
    """Load a model folder written by :func:`save_model` (missing parts stay None)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such model folder")
    out = LatentDiffusionModel(info=read_info(folder))
    kinds = {"vae": AutoencoderKL, "unet": UNet2DConditionModel, "metric_encoder": MetricEncoder,
             "scheduler": DDPMScheduler}
    for name, kind in kinds.items():
        if name in parts and (folder / name).is_dir():
            setattr(out, name, kind.from_pretrained(folder, subfolder=name))
    for m in (out.vae, out.unet, out.metric_encoder):
        if m is not None:
            m.eval()
    return out.to(device, dtype)

"""Latent diffusion model parts (VAE, metric-conditioned inpainting UNet) and the model folder."""

from .ldm import (
    INFO_FILE, LatentDiffusionModel, MetricEncoder, build_metric_encoder, build_scheduler, build_unet,
    build_vae, config_names, downsample_mask, load_config, load_model, read_info, save_model,
    unet_input, vae_factor, write_info,
)

__all__ = [
    "INFO_FILE", "LatentDiffusionModel", "MetricEncoder", "build_metric_encoder", "build_scheduler",
    "build_unet", "build_vae", "config_names", "downsample_mask", "load_config", "load_model",
    "read_info", "save_model", "unet_input", "vae_factor", "write_info",
]

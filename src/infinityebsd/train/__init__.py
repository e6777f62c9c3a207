"""Training of the VAE and the metric-conditioned inpainting UNet (Hugging Face Accelerate)."""

from .trainer import StepSampler, latest_checkpoint, measure_scaling_factor, train_unet, train_vae

__all__ = ["StepSampler", "latest_checkpoint", "measure_scaling_factor", "train_unet", "train_vae"]

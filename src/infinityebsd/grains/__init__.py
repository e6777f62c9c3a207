"""Grain reconstruction, cleaning and twin merging."""

from .reconstruct import Grains, clean, clean_with_grains, reconstruct

__all__ = ["Grains", "clean", "clean_with_grains", "reconstruct"]

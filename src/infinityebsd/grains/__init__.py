"""Grain reconstruction, cleaning and twin merging."""

from .reconstruction import Grains, clean, clean_with_grains, reconstruct

__all__ = ["Grains", "clean", "clean_with_grains", "reconstruct"]

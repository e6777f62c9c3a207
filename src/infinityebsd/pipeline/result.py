"""What every generation method (model, morphology-first, grain growth) returns, and its first
step on an input map."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..grains import Grains, clean_with_grains
from ..io import EBSDMap
from ..metrics import GrainTable, grain_table
from .planner import Plan


@dataclass
class Result:
    """The generated map on the output grid, its window plan (output cells), the grid scale the model
    worked at (grid cells per output cell; 1 when not rescaled) and the input's box (None when
    generated from metrics alone)."""

    map: EBSDMap
    plan: Plan
    scale: float
    input_box: tuple | None


def clean_input(input_map: EBSDMap, size, phase: str | None = None) -> tuple[EBSDMap, Grains, GrainTable]:
    """The input cleaned like ``clean``, its grains and their table, once the target ``size`` is known
    to hold it."""
    (R, C), (h, w) = size, input_map.shape
    if h > R or w > C:
        raise InputError(f"target size {R}x{C} is smaller than the input {h}x{w}")
    input_clean, g = clean_with_grains(input_map, phase=phase)
    return input_clean, g, grain_table(g.labels, g.quat, input_clean.step)

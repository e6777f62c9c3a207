"""What every generation method returns (model, morphology-first, grain growth)."""

from __future__ import annotations

from dataclasses import dataclass

from ..io import EBSDMap
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

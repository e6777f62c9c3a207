"""The grain shape generation assumes when its target gives none: equiaxed, as after annealing.

A target of grain sizes alone says nothing about shape, and a network left with a null shape token
draws from its training prior, where half the windows are elongated: some seeds then come out as
rolled sheet that nobody asked for. Absent a shape, the physical default is the self-similar state
of isotropic curvature-driven grain growth (an annealed, untextured polycrystal). Its inertia-ratio
distribution is stored in ``equiaxed_shape.json`` (written by ``scripts/make_equiaxed_reference.py``
from this package's simulator); being dimensionless it holds at any grain scale.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..metrics import METRIC_NAMES, tensor_from_distributions

REFERENCE = Path(__file__).with_name("equiaxed_shape.json")


@lru_cache(maxsize=1)
def equiaxed_rows() -> dict:
    """``{metric name: conditioning row}`` of the equiaxed reference (the inertia ratio)."""
    doc = json.loads(REFERENCE.read_text())
    dists = {k: (np.asarray(v["edges"], float), np.asarray(v["density"], float)) for k, v in doc["metrics"].items()}
    C = tensor_from_distributions(dists)
    return {k: C[METRIC_NAMES.index(k)].astype(np.float32) for k in dists}


def assume_equiaxed(cond) -> tuple[np.ndarray, list]:
    """``cond`` with its missing shape rows filled from the equiaxed reference, and the names filled.

    Rows the target gives are kept as they are; only NaN (not given) rows are replaced.
    """
    out = np.array(cond, dtype=np.float32, copy=True)
    filled = []
    for name, row in equiaxed_rows().items():
        k = METRIC_NAMES.index(name)
        if not np.all(np.isfinite(out[k])):
            out[k] = row
            filled.append(name)
    return out, filled

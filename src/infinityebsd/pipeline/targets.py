"""Target metrics for generation: from a reference map, or from a JSON file in physical units.

The JSON file gives any subset of the eight metrics, each as per-grain values or as a histogram::

    {
      "units": "um",                 # "cells" (default) or "um": size and perimeter in micrometres
      "step": 1.5,                   # micrometres per cell; needed when units is "um"
      "metrics": {
        "size": {"values": [12.0, 30.5, 18.2]},                      # equivalent circle diameters
        "perimeter": {"edges": [0, 50, 100, 200], "density": [0.01, 0.006, 0.001]},
        "inertia_ratio": {"values": [1.2, 2.5, 1.7]},
        "disorientation": {"values": [45.0, 38.2, 52.1]}             # degrees
      }
    }

Missing metrics are left to the model's null tokens, except a missing inertia ratio when a
morphology model generates from metrics alone: it is read as equiaxed
(:mod:`infinityebsd.data.shape_reference`). The document written by
``infinityebsd metrics --json`` is accepted as it is (its distributions are in cells and degrees).
Examples: ``examples/target_metrics.json``, ``examples/sizes_only.json`` in the package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import InputError
from ..metrics import BIN_RULES, METRIC_NAMES, conditioning_tensor, histogram, metrics_of, tensor_from_distributions

LENGTH_METRICS = ("size", "perimeter")


class Target(NamedTuple):
    """Target metrics for generation, and the grain size (ECD, cells) each method reads."""

    cond: np.ndarray                # conditioning tensor; NaN rows for metrics not given
    median_size: float | None       # sets a latent model's grid scale: its trained range is of medians
    mean_size: float | None         # the size target of grain growth (:mod:`.growth`)


def target_from_map(m, phase=None) -> Target:
    """The target of a reference map after cleaning."""
    t = metrics_of(m, phase=phase)
    return Target(conditioning_tensor(t), float(np.median(t.size)), float(np.mean(t.size)))


def cond_from_json(path):
    """(conditioning tensor, mean size in cells or None) for grain growth's ``mean_size``; new code
    uses :func:`target_from_json`."""
    t = target_from_json(path)
    return t.cond, t.mean_size


def _histogram_median(edges: np.ndarray, density: np.ndarray) -> float:
    """The median of a histogram, interpolated linearly inside its bin."""
    w = density * np.diff(edges)
    cdf = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    return float(np.interp(0.5, cdf, edges))


def target_from_json(path) -> Target:
    """The target of a JSON file (format above); sizes are None when it gives no grain sizes."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object with a 'metrics' key")
    if "distributions" in doc:  # a document from `infinityebsd metrics --json`
        dists = {k: (np.asarray(v["edges"], float), np.asarray(v["density"], float))
                 for k, v in doc["distributions"].items() if k in METRIC_NAMES}
        sizes = doc.get("grains", {}).get("size")
        if not sizes:
            return Target(tensor_from_distributions(dists), None, None)
        return Target(tensor_from_distributions(dists), float(np.median(sizes)), float(np.mean(sizes)))
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise InputError(f"{path}: needs a non-empty 'metrics' object (see the format in the docs)")
    units = doc.get("units", "cells")
    if units not in ("cells", "um"):
        raise InputError(f"{path}: 'units' must be 'cells' or 'um', not '{units}'")
    step = 1.0
    if units == "um":
        if not isinstance(doc.get("step"), (int, float)) or doc["step"] <= 0:
            raise InputError(f"{path}: 'units' is 'um', so a positive 'step' (µm per cell) is needed")
        step = float(doc["step"])
    dists, median_size, mean_size = {}, None, None
    for name, spec in metrics.items():
        if name not in METRIC_NAMES:
            raise InputError(f"{path}: unknown metric '{name}'; known: {', '.join(METRIC_NAMES)}")
        scale = step if name in LENGTH_METRICS else 1.0
        try:
            if "values" in spec:
                v = np.asarray(spec["values"], dtype=float) / scale
                if v.size == 0 or not np.isfinite(v).all():
                    raise ValueError("values must be finite numbers")
                dists[name] = histogram(v, BIN_RULES[name])
                if name == "size":
                    median_size, mean_size = float(np.median(v)), float(v.mean())
            elif "edges" in spec and "density" in spec:
                e = np.asarray(spec["edges"], dtype=float) / scale
                d = np.asarray(spec["density"], dtype=float) * scale
                if len(e) != len(d) + 1 or (np.diff(e) <= 0).any() or (d < 0).any():
                    raise ValueError("need increasing edges, one more than non-negative densities")
                dists[name] = (e, d)
                if name == "size":
                    w = d * np.diff(e)
                    median_size = _histogram_median(e, d)
                    mean_size = float(np.sum((e[:-1] + e[1:]) / 2 * w) / w.sum())
            else:
                raise ValueError("give 'values' or 'edges' and 'density'")
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: metric '{name}': {exc}") from None
    return Target(tensor_from_distributions(dists), median_size, mean_size)

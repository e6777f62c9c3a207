"""Known-region masks for inpainting training (the paper's Fig. 7), known = 1, unknown = 0.

Types, each in all its orientations:

* ``closed_angle`` — two adjacent sides known, the opposite corner missing (an L shape). Orientations
  name the *missing* corner: ``br``, ``bl``, ``tr``, ``tl``.
* ``half`` — one side known: ``top``, ``bottom``, ``left``, ``right`` (horizontal and vertical).
* ``open_angle`` — only one corner known: ``tl``, ``tr``, ``bl``, ``br`` name the *known* corner.
* ``full`` — nothing known (generation from the metrics alone).
* ``irregular`` — a random known region touching the borders (staircases and blobs), as the
  extension planner meets near map edges; drawn by :func:`irregular_mask`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError

ORIENTATIONS = {
    "closed_angle": ("br", "bl", "tr", "tl"),
    "half": ("top", "bottom", "left", "right"),
    "open_angle": ("tl", "tr", "bl", "br"),
    "full": ("none",),
}
MASK_TYPES = tuple(ORIENTATIONS) + ("irregular",)


def _corner(size: int, corner: str, fraction: float) -> np.ndarray:
    k = int(round(size * fraction))
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    in_rows = rows < k if corner[0] == "t" else rows >= size - k
    in_cols = cols < k if corner[1] == "l" else cols >= size - k
    return in_rows & in_cols


def make_mask(kind: str, orientation: str, size: int, fraction: float = 0.5) -> np.ndarray:
    """A (size, size) float32 mask of one type and orientation; ``fraction`` is the side split."""
    if kind not in ORIENTATIONS:
        raise InputError(f"unknown mask type '{kind}'; use one of: {', '.join(ORIENTATIONS)}")
    if orientation not in ORIENTATIONS[kind]:
        raise InputError(f"mask '{kind}' has orientations {ORIENTATIONS[kind]}, not '{orientation}'")
    k = int(round(size * fraction))
    if kind == "full":
        known = np.zeros((size, size), bool)
    elif kind == "open_angle":
        known = _corner(size, orientation, fraction)
    elif kind == "closed_angle":
        known = ~_corner(size, orientation, 1.0 - fraction)
    else:
        known = np.zeros((size, size), bool)
        sl = {"top": np.s_[:k, :], "bottom": np.s_[size - k:, :],
              "left": np.s_[:, :k], "right": np.s_[:, size - k:]}[orientation]
        known[sl] = True
    return known.astype(np.float32)


def all_masks(size: int, fraction: float = 0.5) -> dict[tuple[str, str], np.ndarray]:
    """Every fixed mask: ``{(type, orientation): mask}`` (13 masks)."""
    return {(t, o): make_mask(t, o, size, fraction) for t, os_ in ORIENTATIONS.items() for o in os_}


def irregular_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random known region that touches the map border: a staircase of rectangles anchored on a
    side or corner, with its boundary roughened by smoothed noise. Always partly known, partly not."""
    for _ in range(20):
        known = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, 4)):
            h, w = rng.integers(size // 8, size, size=2)
            top = rng.random() < 0.5
            left = rng.random() < 0.5
            r0 = 0 if top else size - h
            c0 = 0 if left else size - w
            if rng.random() < 0.5:  # a band along one whole side
                if rng.random() < 0.5:
                    c0, w = 0, size
                else:
                    r0, h = 0, size
            known[r0:r0 + h, c0:c0 + w] = True
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=max(size / 16, 1))
        noise /= noise.std() + 1e-12
        dist_in = ndimage.distance_transform_edt(known)
        dist_out = ndimage.distance_transform_edt(~known)
        signed = dist_in - dist_out  # > 0 inside the known region
        known = signed + noise * size / 16 > 0
        frac = known.mean()
        if 0.05 < frac < 0.95:
            return known.astype(np.float32)
    return make_mask("half", "left", size)


def random_mask(size: int, rng: np.random.Generator, p_irregular: float = 0.1) -> tuple[np.ndarray, str]:
    """One mask drawn as in training: with probability ``p_irregular`` an irregular one, else one of
    the four paper types uniformly, then one of its orientations uniformly.

    Returns ``(mask, label)`` with label like ``'half/left'``.
    """
    if rng.random() < p_irregular:
        return irregular_mask(size, rng), "irregular"
    kind = list(ORIENTATIONS)[rng.integers(len(ORIENTATIONS))]
    orient = ORIENTATIONS[kind][rng.integers(len(ORIENTATIONS[kind]))]
    return make_mask(kind, orient, size), f"{kind}/{orient}"


def random_masks(n: int, size: int, rng: np.random.Generator, p_irregular: float = 0.1) -> np.ndarray:
    """``n`` masks from :func:`random_mask`, stacked as float32 ``(n, 1, size, size)``."""
    return np.stack([random_mask(size, rng, p_irregular)[0] for _ in range(n)])[:, None]

"""Inverse pole figure colouring for cubic m-3m.

The sample direction (Z by default) is expressed in crystal coordinates, brought into the standard
triangle [001]–[101]–[111] (absolute values sorted so that z ≥ x ≥ y ≥ 0, which the 48 operations of
m-3m with inversion allow), and coloured like the TSL key: red at [001], green at [101], blue at [111].
"""

from __future__ import annotations

import numpy as np

from .quaternion import qconj, rotate_vector


def sample_direction_in_crystal(q: np.ndarray, direction=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Crystal coordinates of a sample direction for orientations ``q`` (crystal to sample)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    return rotate_vector(qconj(q), np.broadcast_to(d, np.shape(q)[:-1] + (3,)))


def to_standard_triangle(v: np.ndarray) -> np.ndarray:
    """Equivalent direction in the cubic standard triangle, as unit (x, y, z) with z ≥ x ≥ y ≥ 0."""
    a = np.sort(np.abs(np.asarray(v, dtype=np.float64)), axis=-1)  # ascending: y, x, z
    out = np.stack([a[..., 1], a[..., 0], a[..., 2]], axis=-1)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def triangle_rgb(v: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] for unit directions already in the standard triangle."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    rgb = np.stack([z - x, x - y, y], axis=-1)
    rgb = np.clip(rgb, 0.0, None)
    m = rgb.max(axis=-1, keepdims=True)
    rgb = rgb / np.where(m > 0, m, 1.0)
    return np.sqrt(rgb)  # brightens the interior, as the usual TSL rendering does


def ipf_colors(q: np.ndarray, direction=(0.0, 0.0, 1.0)) -> np.ndarray:
    """IPF colours (..., 3) in [0, 1] of orientations ``q`` (..., 4) for a sample direction."""
    return triangle_rgb(to_standard_triangle(sample_direction_in_crystal(q, direction)))


def ipf_key_image(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The colour key: an RGBA image of the standard triangle in stereographic projection.

    Returns ``(rgba, extent)`` where ``extent`` is the (xmin, xmax, ymin, ymax) of the projection.
    """
    # Stereographic projection of the triangle: [001] at 0, [101] at (tan 22.5°, 0).
    xmax = np.tan(np.pi / 8)
    ys, xs = np.mgrid[0:size, 0:size]
    X = xs / (size - 1) * xmax
    Y = ys / (size - 1) * xmax
    r2 = X**2 + Y**2
    v = np.stack([2 * X, 2 * Y, 1 - r2], axis=-1) / (1 + r2)[..., None]
    inside = (v[..., 1] <= v[..., 0] + 1e-9) & (v[..., 0] <= v[..., 2] + 1e-9) & (v[..., 1] >= 0)
    rgba = np.zeros((size, size, 4))
    rgba[..., :3] = triangle_rgb(v)
    rgba[..., 3] = inside
    return rgba, (0.0, xmax, 0.0, xmax)

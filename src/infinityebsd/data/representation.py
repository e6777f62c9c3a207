"""Orientation maps as network tensors, and back.

Two encodings of a cubic orientation map (Bunge angles, radians, shape ``(H, W, 3)``) as a float32
tensor ``(C, H, W)`` with values in [−1, 1]:

``'euler'`` (the paper's, 3 channels)
    Each orientation is first reduced to its cubic equivalent nearest the identity
    (:func:`~infinityebsd.crystal.to_fundamental_zone`), so equal orientations always give equal
    channels; then φ1 and φ2 are scaled from [0, 360°] and Φ from [0, 180°] to [−1, 1].
``'quat'`` (4 channels, the default)
    The same fundamental-zone quaternion ``(w, x, y, z)`` with ``w ≥ 0``. It has no wrap-around at
    0/360° and its channels vary smoothly with the orientation inside the zone; a short VAE training
    reconstructed it with about half the per-cell disorientation error of 'euler'.

:func:`decode` inverts either encoding; a decoded map equals the input up to crystal symmetry.
"""

from __future__ import annotations

import numpy as np

from ..crystal import euler_to_quat, quat_to_euler, to_fundamental_zone
from ..errors import InputError

CHANNELS = {"euler": 3, "quat": 4}
"""Number of tensor channels of each representation."""

DEFAULT = "quat"
"""The default encoding: measured better than 'euler' by VAE round-trip error (bench/RESULTS_train.md)."""

_EULER_RANGE = np.array([2 * np.pi, np.pi, 2 * np.pi])


def check(kind: str) -> str:
    """Return ``kind`` if it is a known representation, else raise :class:`InputError`."""
    if kind not in CHANNELS:
        raise InputError(f"unknown representation '{kind}'; use one of: {', '.join(CHANNELS)}")
    return kind


def canonical_quat(euler: np.ndarray) -> np.ndarray:
    """Fundamental-zone quaternions (..., 4), ``w ≥ 0``, of Bunge angles (..., 3) in radians."""
    return to_fundamental_zone(euler_to_quat(euler))


def encode(euler: np.ndarray, kind: str = DEFAULT) -> np.ndarray:
    """Encode a map of Bunge angles ``(H, W, 3)`` (radians) as a float32 tensor ``(C, H, W)``.

    Examples
    --------
    >>> t = encode(np.zeros((4, 5, 3)), "quat")
    >>> t.shape, float(t[0].min())
    ((4, 4, 5), 1.0)
    """
    check(kind)
    euler = np.asarray(euler, dtype=np.float64)
    if euler.ndim != 3 or euler.shape[-1] != 3:
        raise InputError(f"expected Euler angles of shape (H, W, 3), got {euler.shape}")
    q = canonical_quat(euler)
    if kind == "quat":
        x = q
    else:
        e = quat_to_euler(q)
        x = e / _EULER_RANGE * 2.0 - 1.0
    return np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.float32)


def decode(tensor, kind: str = DEFAULT) -> np.ndarray:
    """Bunge angles ``(H, W, 3)`` (radians, float64) of a tensor ``(C, H, W)`` from :func:`encode`
    or a network; values outside [−1, 1] are clipped, quaternions renormalised."""
    check(kind)
    if hasattr(tensor, "detach"):  # a torch tensor
        tensor = tensor.detach().float().cpu().numpy()
    x = np.moveaxis(np.asarray(tensor, dtype=np.float64), 0, -1)
    if x.shape[-1] != CHANNELS[kind]:
        raise InputError(f"a '{kind}' tensor has {CHANNELS[kind]} channels, got {x.shape[-1]}")
    if kind == "quat":
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        q = np.where(n > 1e-8, x / np.where(n > 1e-8, n, 1.0), np.array([1.0, 0, 0, 0]))
        return quat_to_euler(q)
    e = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0 * _EULER_RANGE
    e[..., 0] = np.mod(e[..., 0], 2 * np.pi)
    e[..., 2] = np.mod(e[..., 2], 2 * np.pi)
    return e


def encode_batch(euler: np.ndarray, kind: str = DEFAULT) -> np.ndarray:
    """:func:`encode` over a leading batch axis: ``(B, H, W, 3)`` → ``(B, C, H, W)``."""
    return np.stack([encode(e, kind) for e in np.asarray(euler)])

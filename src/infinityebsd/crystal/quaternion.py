"""Unit quaternions and Bunge Euler angles, vectorised over leading axes.

Convention: a quaternion is ``(w, x, y, z)`` with ``w`` the scalar part and describes the *active*
rotation that takes crystal coordinates to sample coordinates. Bunge angles (φ1, Φ, φ2) give
``g = Rz(φ1)·Rx(Φ)·Rz(φ2)``. orix stores the inverse (sample to crystal) rotation, so an orix
quaternion is the conjugate of ours for the same Euler angles.
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


def euler_to_quat(euler: np.ndarray) -> np.ndarray:
    """Bunge Euler angles (..., 3) in radians to unit quaternions (..., 4)."""
    e = np.asarray(euler, dtype=np.float64)
    p1, P, p2 = e[..., 0], e[..., 1], e[..., 2]
    cP, sP = np.cos(P / 2), np.sin(P / 2)
    s, d = (p1 + p2) / 2, (p1 - p2) / 2
    q = np.stack([cP * np.cos(s), sP * np.cos(d), sP * np.sin(d), cP * np.sin(s)], axis=-1)
    return q


def quat_to_euler(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) to Bunge Euler angles (..., 3), φ1, φ2 in [0, 2π), Φ in [0, π]."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    wz = np.hypot(w, z)
    xy = np.hypot(x, y)
    P = 2.0 * np.arctan2(xy, wz)
    s = np.arctan2(z, w)
    d = np.arctan2(y, x)
    p1 = s + d
    p2 = s - d
    # Gimbal lock: only φ1 ± φ2 is defined; put it all in φ1.
    small = xy < 1e-10
    big = wz < 1e-10
    p1 = np.where(small, 2 * s, p1)
    p2 = np.where(small | big, 0.0, p2)
    p1 = np.where(big, 2 * d, p1)
    out = np.stack([np.mod(p1, TWO_PI), P, np.mod(p2, TWO_PI)], axis=-1)
    # mod can return 2π for tiny negative inputs
    out[..., 0] = np.where(out[..., 0] >= TWO_PI, 0.0, out[..., 0])
    out[..., 2] = np.where(out[..., 2] >= TWO_PI, 0.0, out[..., 2])
    return out


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a·b`` with broadcasting over leading axes."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a0, a1, a2, a3 = np.moveaxis(a, -1, 0)
    b0, b1, b2, b3 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
            a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
            a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1,
            a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0,
        ],
        axis=-1,
    )


def qconj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion)."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qnormalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def axis_angle_to_quat(axis, angle) -> np.ndarray:
    """Rotation by ``angle`` (radians) about ``axis`` (..., 3; need not be unit length)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.asarray(angle, dtype=np.float64)[..., None]
    shape = np.broadcast_shapes(axis.shape[:-1], angle.shape[:-1])
    axis = np.broadcast_to(axis, shape + (3,))
    angle = np.broadcast_to(angle, shape + (1,))
    return np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * axis], axis=-1)


def rotation_angle(q: np.ndarray) -> np.ndarray:
    """Rotation angle in [0, π] of unit quaternions."""
    w = np.abs(np.asarray(q, dtype=np.float64)[..., 0])
    return 2.0 * np.arccos(np.clip(w, 0.0, 1.0))


def rotate_vector(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Apply the active rotation ``q`` to vectors ``v`` (..., 3)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def random_quat(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``n`` orientations drawn uniformly from SO(3) (normalised 4-D Gaussians), w >= 0."""
    rng = np.random.default_rng(rng)
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q

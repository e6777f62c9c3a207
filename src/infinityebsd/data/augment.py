"""The eight square symmetries of a map (rotations by 90°, flips), physically consistent by default.

Moving the cells of a map is a change of the sample frame, so the orientations in the cells must turn
with it (``mode='physical'``): a rotation of the map by a multiple of 90° is a rotation of the sample
about Z, and a flip is a 180° rotation about an in-plane axis (X or Y), which is a proper rotation.
Each cell's orientation ``q`` (crystal → sample) becomes ``r·q``. Grain shapes, sizes, neighbours and
disorientations are unchanged; Euler-angle distributions and IPF colours change as the sample turns.
``mode='pixel'`` moves the cells and keeps the angles, as in the paper.

Frame: column index = sample X, row index = sample Y, Z out of plane (right-handed x, y, z). For
``np.rot90`` a cell at ``(x, y)`` moves to ``(y, −x)`` (up to a shift), i.e. the sample turns by −90°
about Z; a column flip sends ``x → −x`` (180° about Y, with ``z → −z``); a row flip sends
``y → −y`` (180° about X).
"""

from __future__ import annotations

import numpy as np

from ..crystal import axis_angle_to_quat, euler_to_quat, qmul, quat_to_euler
from ..errors import InputError

MODES = ("physical", "pixel")

# Array operations and the sample rotation each one is.
_OPS = {
    "rot90": (lambda a: np.rot90(a, 1, axes=(0, 1)), axis_angle_to_quat([0, 0, 1], -np.pi / 2)),
    "hflip": (lambda a: a[:, ::-1], axis_angle_to_quat([0, 1, 0], np.pi)),
    "vflip": (lambda a: a[::-1], axis_angle_to_quat([1, 0, 0], np.pi)),
}

VARIANTS = {
    "identity": (),
    "rot90": ("rot90",),
    "rot180": ("rot90", "rot90"),
    "rot270": ("rot90", "rot90", "rot90"),
    "hflip": ("hflip",),
    "vflip": ("vflip",),
    "hflip_rot90": ("hflip", "rot90"),
    "vflip_rot90": ("vflip", "rot90"),
}
"""The eight variants (the dihedral group of the square) as sequences of array operations, applied
left to right; the last two are the diagonal reflections."""

VARIANT_NAMES = tuple(VARIANTS)


def _ops(variant) -> tuple[str, ...]:
    if isinstance(variant, (int, np.integer)):
        if not 0 <= variant < len(VARIANT_NAMES):
            raise InputError(f"variant index {variant} out of range 0..7")
        variant = VARIANT_NAMES[variant]
    if variant not in VARIANTS:
        raise InputError(f"unknown variant '{variant}'; use one of: {', '.join(VARIANT_NAMES)}")
    return VARIANTS[variant]


def sample_rotation(variant) -> np.ndarray:
    """The quaternion ``r`` of the sample rotation that ``variant`` applies (``q' = r·q``)."""
    r = np.array([1.0, 0.0, 0.0, 0.0])
    for op in _ops(variant):
        r = qmul(_OPS[op][1], r)  # later operations act after (to the left of) earlier ones
    return r


def transform_cells(a: np.ndarray, variant) -> np.ndarray:
    """Move the cells of an array ``(rows, cols, ...)`` as ``variant`` does; values untouched."""
    for op in _ops(variant):
        a = _OPS[op][0](a)
    return np.ascontiguousarray(a)


def rotate_orientations(euler: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Bunge angles (..., 3) of ``r·g`` for each orientation ``g`` (sample rotation ``r``)."""
    return quat_to_euler(qmul(r, euler_to_quat(euler)))


def augment(euler: np.ndarray, variant, mode: str = "physical") -> np.ndarray:
    """One symmetry variant of a map of Bunge angles ``(rows, cols, 3)`` (radians).

    Parameters
    ----------
    euler : array (rows, cols, 3)
    variant : str or int
        A name in :data:`VARIANT_NAMES` or its index 0–7.
    mode : 'physical' (default) or 'pixel'
        'physical' also rotates each orientation by the sample rotation; 'pixel' keeps the angles.
    """
    if mode not in MODES:
        raise InputError(f"unknown augmentation mode '{mode}'; use 'physical' or 'pixel'")
    out = transform_cells(np.asarray(euler, dtype=np.float64), variant)
    if mode == "physical" and _ops(variant):
        out = rotate_orientations(out, sample_rotation(variant))
    return out


def all_variants(euler: np.ndarray, mode: str = "physical", variants=VARIANT_NAMES):
    """``[(name, augmented map), ...]`` for the requested variants (default all eight)."""
    return [(v if isinstance(v, str) else VARIANT_NAMES[v], augment(euler, v, mode)) for v in variants]

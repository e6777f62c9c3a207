"""Crystallographic texture for synthetic maps: named components and fibres, with a fraction and a
spread each, on a uniformly random background.

A texture is written as a string, ``NAME:FRACTION[:SPREAD_DEG]`` items separated by commas, e.g.
``"cube:0.4"`` or ``"goss:0.2:5,fibre111:0.3"``. The fractions are the share of grains drawn from each
component (their sum must not exceed 1; the rest is uniformly random). The spread is the standard
deviation, in degrees, of each axis of the rotation vector that scatters a grain about the ideal
orientation (so the mean angle from the ideal is about 1.6 × spread); default 8°.

Components (Bunge φ1, Φ, φ2 in degrees): cube (0, 0, 0), goss (0, 45, 0), brass (35, 45, 0),
copper (90, 35, 45), s (59, 37, 63), rotated-cube (45, 0, 0). Fibres (crystal direction parallel to the
sample normal Z, free rotation about Z): fibre111 (<111>//ND), fibre100 (<100>//ND),
fibre110 (<110>//ND).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crystal import axis_angle_to_quat, euler_to_quat, qmul, random_quat
from ..errors import InputError

COMPONENTS_DEG = {
    "cube": (0.0, 0.0, 0.0),
    "goss": (0.0, 45.0, 0.0),
    "brass": (35.0, 45.0, 0.0),
    "copper": (90.0, 35.0, 45.0),
    "s": (59.0, 37.0, 63.0),
    "rotated-cube": (45.0, 0.0, 0.0),
}
"""Ideal texture components, Bunge Euler angles in degrees."""

FIBRES = {"fibre111": (1.0, 1.0, 1.0), "fibre100": (0.0, 0.0, 1.0), "fibre110": (1.0, 1.0, 0.0)}
"""Fibres: the crystal direction that lies along the sample normal (Z)."""

_ALIASES = {"rcube": "rotated-cube", "rotated_cube": "rotated-cube", "rotatedcube": "rotated-cube",
            "fiber111": "fibre111", "fiber100": "fibre100", "fiber110": "fibre110"}

DEFAULT_SPREAD_DEG = 8.0


@dataclass(frozen=True)
class Component:
    """One texture component: ``name`` (a key of COMPONENTS_DEG or FIBRES), share of grains, spread."""

    name: str
    fraction: float
    spread_deg: float = DEFAULT_SPREAD_DEG

    def spec(self) -> str:
        return f"{self.name}:{self.fraction:g}:{self.spread_deg:g}"


def known_components() -> list[str]:
    return list(COMPONENTS_DEG) + list(FIBRES)


def parse_texture(spec) -> list[Component]:
    """Parse a texture string (see the module docstring); ``None``, ``""`` or ``"random"`` → ``[]``.

    A list of :class:`Component` is returned unchanged (after checking it).
    """
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        comps = [c if isinstance(c, Component) else Component(*c) for c in spec]
    else:
        text = str(spec).strip().lower()
        if text in ("", "random", "none"):
            return []
        comps = []
        for item in text.split(","):
            parts = [p.strip() for p in item.split(":")]
            name = _ALIASES.get(parts[0], parts[0])
            if name not in COMPONENTS_DEG and name not in FIBRES:
                raise InputError(f"unknown texture component '{parts[0]}'; choose from "
                                 f"{', '.join(known_components())} (e.g. --texture cube:0.4)")
            if len(parts) not in (2, 3):
                raise InputError(f"texture item '{item}' must read NAME:FRACTION[:SPREAD_DEG], e.g. cube:0.4:8")
            try:
                frac = float(parts[1])
                spread = float(parts[2]) if len(parts) == 3 else DEFAULT_SPREAD_DEG
            except ValueError:
                raise InputError(f"texture item '{item}': fraction and spread must be numbers") from None
            comps.append(Component(name, frac, spread))
    for c in comps:
        if c.name not in COMPONENTS_DEG and c.name not in FIBRES:
            raise InputError(f"unknown texture component '{c.name}'; choose from {', '.join(known_components())}")
        if not 0.0 <= c.fraction <= 1.0 or c.spread_deg < 0:
            raise InputError(f"texture component '{c.name}': fraction must be in [0, 1] and spread >= 0")
    if sum(c.fraction for c in comps) > 1.0 + 1e-9:
        raise InputError("texture fractions add up to more than 1; lower them (the rest is random)")
    return comps


def texture_spec(components) -> str:
    """The string form of a parsed texture (``"random"`` for none)."""
    comps = parse_texture(components)
    return ",".join(c.spec() for c in comps) if comps else "random"


def _ideal(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ideal orientations of a component (identical) or fibre (random rotation about Z)."""
    if name in COMPONENTS_DEG:
        q = euler_to_quat(np.deg2rad(np.array(COMPONENTS_DEG[name])))
        return np.broadcast_to(q, (n, 4)).copy()
    c = np.array(FIBRES[name]) / np.linalg.norm(FIBRES[name])
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(c, z)
    if np.linalg.norm(axis) < 1e-12:
        g0 = np.array([1.0, 0.0, 0.0, 0.0])
    else:
        g0 = axis_angle_to_quat(axis, np.arccos(np.clip(c @ z, -1, 1)))  # takes c onto Z
    psi = rng.uniform(0, 2 * np.pi, n)
    return qmul(axis_angle_to_quat(np.broadcast_to(z, (n, 3)), psi), g0)


def scatter(q: np.ndarray, spread_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate each orientation by a random rotation whose vector is Gaussian, ``spread_deg`` per axis."""
    n = len(q)
    if spread_deg <= 0 or n == 0:
        return np.asarray(q, dtype=np.float64).copy()
    v = rng.normal(0.0, np.deg2rad(spread_deg), (n, 3))
    ang = np.linalg.norm(v, axis=1)
    axis = np.where(ang[:, None] > 1e-12, v, [1.0, 0.0, 0.0])
    return qmul(axis_angle_to_quat(axis, ang), q)


def sample_components(n: int, texture=None, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` orientations and the component each came from.

    Returns ``(quat (n, 4), component (n,) int)`` with component ``-1`` for the random background and
    ``k`` for ``parse_texture(texture)[k]``. The number of grains per component is the fraction times
    ``n``, rounded at random, so small ``n`` keeps the expected shares.
    """
    rng = np.random.default_rng(rng)
    comps = parse_texture(texture)
    probs = np.array([c.fraction for c in comps] + [max(0.0, 1.0 - sum(c.fraction for c in comps))])
    which = rng.choice(len(probs), size=n, p=probs / probs.sum()) if n else np.zeros(0, int)
    which = np.where(which == len(comps), -1, which).astype(np.int64)
    q = draw_from(which, comps, rng)
    return q, which


def draw_from(which: np.ndarray, components, rng) -> np.ndarray:
    """Fresh orientations for grains assigned to components ``which`` (-1 = uniformly random)."""
    rng = np.random.default_rng(rng)
    comps = parse_texture(components)
    which = np.asarray(which)
    q = random_quat(len(which), rng)
    for k, c in enumerate(comps):
        sel = np.flatnonzero(which == k)
        if len(sel):
            q[sel] = scatter(_ideal(c.name, len(sel), rng), c.spread_deg, rng)
    q[q[:, 0] < 0] *= -1
    return q


def sample_orientations(n: int, texture=None, rng=None) -> np.ndarray:
    """``n`` grain orientations (quaternions, (n, 4)): uniformly random by default, or following a
    texture (see the module docstring), e.g. ``sample_orientations(500, "cube:0.4", rng=0)``."""
    return sample_components(n, texture, rng)[0]


def ideal_orientation(name: str) -> np.ndarray:
    """The ideal orientation (quaternion) of a named component (not a fibre)."""
    name = _ALIASES.get(name.lower(), name.lower())
    if name not in COMPONENTS_DEG:
        raise InputError(f"'{name}' is not a texture component with one ideal orientation")
    return euler_to_quat(np.deg2rad(np.array(COMPONENTS_DEG[name])))

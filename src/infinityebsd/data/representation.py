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
"""The default orientation encoding (latent models): measured better than 'euler' by VAE round-trip error
(bench/RESULTS.md, section "Representation and VAE factor: round trip")."""

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


# ---------------------------------------------------------------------------------------------
# Morphology representations: a label map (the grain network) as a network tensor, and back
# ---------------------------------------------------------------------------------------------
# The morphology-first model generates only the grain network; orientations come afterwards from
# the matching-crystallography step. A morphology tensor is encoded from a label map (grains 0..n-1)
# and, where only part of a window is known, from the known cells alone: nothing about the unknown
# side may enter the encoding, or training would see what inference cannot.
#
# 'distance' (1 channel, the default)
#     Distance from each cell to the nearest grain boundary, clipped at ``clip`` cells and scaled
#     to [-1, 1] (-1 on the two cells either side of a boundary). Smooth, so a small pixel-space
#     network learns it fast; decoded by flooding (watershed) from markers, then basins that the
#     field does not separate by a valley are merged, which keeps concave grains whole unless their
#     neck is narrower than the boundary band.
# 'value' (1 channel, GrainPaint-style)
#     Each grain gets a random constant in [-1, 1]; decoded by cutting where the value jumps.
#     Neighbouring grains with close values are indistinguishable, the price of one channel.
# 'distance+value' (2 channels)
#     The distance field for boundaries, the value channel to tell apart basins of one grain
#     (merged) from touching grains the field separates only weakly.

MORPHOLOGY_CHANNELS = {"distance": 1, "value": 1, "distance+value": 2}
MORPHOLOGY_DEFAULT = "distance"
DISTANCE_CLIP = 8.0
"""Cells at which the distance field saturates; grains at the model's scale (median ECD ~10 cells)
rarely have cells farther than this from their boundary."""


def is_morphology(kind: str) -> bool:
    """True for the label-map representations (the pixel-space morphology models)."""
    return kind in MORPHOLOGY_CHANNELS


def check_morphology(kind: str) -> str:
    if kind not in MORPHOLOGY_CHANNELS:
        raise InputError(f"unknown morphology representation '{kind}'; use one of: {', '.join(MORPHOLOGY_CHANNELS)}")
    return kind


def boundary_cells(labels: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """Cells with a 4-neighbour of another grain; with ``known``, only pairs of known cells count
    (a cell on the edge of the known region is not a boundary: its grain may go on)."""
    labels = np.asarray(labels)
    b = np.zeros(labels.shape, bool)
    dh = labels[:, 1:] != labels[:, :-1]
    dv = labels[1:, :] != labels[:-1, :]
    if known is not None:
        known = np.asarray(known, bool)
        dh &= known[:, 1:] & known[:, :-1]
        dv &= known[1:, :] & known[:-1, :]
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    b[1:, :] |= dv
    b[:-1, :] |= dv
    return b


def distance_field(labels: np.ndarray, known: np.ndarray | None = None, clip: float = DISTANCE_CLIP) -> np.ndarray:
    """The 'distance' channel (H, W) in [-1, 1]; 0 at unknown cells when ``known`` is given.

    Known cells see only boundaries between known cells, so near the edge of the known region the
    distance can be larger than the truth (a boundary just across the edge is not seen): the honest
    value at inference, and the same function builds the network's known-region input in training.
    """
    from scipy import ndimage

    b = boundary_cells(labels, known)
    if b.any():
        d = ndimage.distance_transform_edt(~b)
    else:
        d = np.full(b.shape, float(clip))
    f = np.minimum(d, clip) / clip * 2.0 - 1.0
    if known is not None:
        f = np.where(known, f, 0.0)
    return f.astype(np.float32)


def value_field(labels: np.ndarray, rng, known: np.ndarray | None = None) -> np.ndarray:
    """The 'value' channel: a random constant in [-1, 1] per grain (0 at unknown cells)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(rng)
    v = rng.uniform(-1.0, 1.0, int(labels.max()) + 1).astype(np.float32)
    f = v[labels]
    if known is not None:
        f = np.where(known, f, np.float32(0.0))
    return f


def encode_morphology(labels: np.ndarray, kind: str = MORPHOLOGY_DEFAULT, known: np.ndarray | None = None,
                      rng=0, clip: float = DISTANCE_CLIP) -> np.ndarray:
    """Encode a label map (H, W) as a float32 tensor (C, H, W) in [-1, 1] (see the section notes).
    ``rng`` draws the per-grain values of the 'value' channel."""
    check_morphology(kind)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"expected a label map (H, W), got shape {labels.shape}")
    chans = []
    if kind in ("distance", "distance+value"):
        chans.append(distance_field(labels, known, clip))
    if kind in ("value", "distance+value"):
        chans.append(value_field(labels, rng, known))
    return np.stack(chans).astype(np.float32)


def _pair_stats(labels: np.ndarray, values: np.ndarray):
    """Adjacent label pairs (a < b), the number of cell edges between them and the highest value
    over those edges of ``values`` (each edge: the mean of its two cells), i.e. the pass between
    the two basins: about -1 along a real boundary, the neck's half-width inside one grain."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    va = np.concatenate([values[:, :-1].ravel(), values[:-1, :].ravel()])
    vb = np.concatenate([values[:, 1:].ravel(), values[1:, :].ravel()])
    diff = a != b
    a, b, v = a[diff], b[diff], 0.5 * (va[diff] + vb[diff])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = int(labels.max()) + 1
    key = lo.astype(np.int64) * n + hi
    uk, inv = np.unique(key, return_inverse=True)
    count = np.bincount(inv)
    top = np.full(len(uk), -np.inf)
    np.maximum.at(top, inv, v)
    return np.stack([uk // n, uk % n], axis=1), count, top


def _merge_basins(labels: np.ndarray, fixed_n: int, pairs: np.ndarray, merge: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Merge basins joined by ``merge`` pairs: new basins (labels >= ``fixed_n``) join each other
    freely; a group of new basins joined to fixed grains goes to the fixed grain with the highest
    ``score``; two fixed grains never merge."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    n = int(labels.max()) + 1
    target = np.arange(n)
    if n <= fixed_n or not merge.any():
        return labels
    p, s = pairs[merge], score[merge]
    newnew = (p[:, 0] >= fixed_n) & (p[:, 1] >= fixed_n)
    g = sparse.coo_matrix((np.ones(newnew.sum()), (p[newnew, 0], p[newnew, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    # each component of new basins: its best link to a fixed grain, if any
    fx = ~newnew & ((p[:, 0] < fixed_n) ^ (p[:, 1] < fixed_n))
    fixed_lab = np.where(p[fx, 0] < fixed_n, p[fx, 0], p[fx, 1])
    new_lab = np.where(p[fx, 0] < fixed_n, p[fx, 1], p[fx, 0])
    c = comp[new_lab]
    order = np.lexsort((-s[fx], c))
    first = np.ones(len(order), bool)
    first[1:] = c[order][1:] != c[order][:-1]
    comp_to_fixed = np.full(comp.max() + 1, -1)
    comp_to_fixed[c[order][first]] = fixed_lab[order][first]
    # representative of each new component: its smallest label
    rep = np.full(comp.max() + 1, n)
    np.minimum.at(rep, comp, np.arange(n))
    new = np.arange(n) >= fixed_n
    target[new] = np.where(comp_to_fixed[comp[new]] >= 0, comp_to_fixed[comp[new]], rep[comp[new]])
    return target[labels]


def decode_morphology(tensor, kind: str = MORPHOLOGY_DEFAULT, known_labels: np.ndarray | None = None,
                      known: np.ndarray | None = None, h: float = 0.15, merge_above: float = -0.7,
                      value_tol: float = 0.15) -> np.ndarray:
    """Grain labels (H, W) of a morphology tensor (C, H, W) from :func:`encode_morphology` or a network.

    With ``known`` (H, W bool) and ``known_labels``, the known cells keep their labels (which must be
    >= 0) and the segmentation floods outward from them: a known grain cut by the edge of the known
    region goes on into the unknown cells unless the field draws a boundary. New grains start from the
    field's own markers (h-maxima of height ``h``) and get labels above the known ones; basins whose
    shared boundary has a pass above ``merge_above`` (no valley between them), or, with a value
    channel, whose values differ by less than ``value_tol`` and are not split by a full-depth valley,
    are one grain. Labels are consecutive
    from 0 when nothing is known; new grains otherwise count up from ``known_labels.max() + 1``.
    """
    from skimage.measure import label as cc_label
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    check_morphology(kind)
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().float().cpu().numpy()
    x = np.asarray(tensor, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] != MORPHOLOGY_CHANNELS[kind]:
        raise InputError(f"a '{kind}' tensor has shape ({MORPHOLOGY_CHANNELS[kind]}, H, W), got {x.shape}")
    H, W = x.shape[1:]
    if known is None:
        known = np.zeros((H, W), bool)
        known_labels = np.zeros((H, W), np.int64)
    known = np.asarray(known, bool)
    known_labels = np.asarray(known_labels, np.int64)
    base = int(known_labels[known].max()) + 1 if known.any() else 0
    markers = np.zeros((H, W), np.int64)
    markers[known] = known_labels[known] + 1
    if kind == "value":
        v = np.clip(x[0], -1, 1)
        # cut where the value jumps: an elevation that is the local spread of values
        gy, gx = np.gradient(v)
        elev = np.hypot(gx, gy)
        seeds = cc_label((elev < value_tol / 2) & ~known, connectivity=1)
        field = -elev
    else:
        field = np.clip(x[0], -1, 1)
        seeds = cc_label(h_maxima(field, h).astype(bool) & ~known, connectivity=1)
        elev = -field
    markers[seeds > 0] = seeds[seeds > 0] + base
    lab = watershed(elev, markers, connectivity=1) - 1
    if kind == "value":
        pairs, count, _ = _pair_stats(lab, field)
        vals = np.bincount(lab.ravel(), weights=x[0].ravel()) / np.maximum(np.bincount(lab.ravel()), 1)
        dv = np.abs(vals[pairs[:, 0]] - vals[pairs[:, 1]])
        merge, score = dv < value_tol, -dv
    else:
        pairs, count, top = _pair_stats(lab, field)
        merge, score = top > merge_above, top
        if kind == "distance+value":
            cnt = np.maximum(np.bincount(lab.ravel()), 1)
            vals = np.bincount(lab.ravel(), weights=x[1].ravel()) / cnt
            dv = np.abs(vals[pairs[:, 0]] - vals[pairs[:, 1]])
            merge |= (dv < value_tol) & (top > -0.9)
    lab = _merge_basins(lab, base, pairs, merge, score)
    # consecutive labels for the new grains, above the known ones
    new = lab >= base
    if new.any():
        u, inv = np.unique(lab[new], return_inverse=True)
        lab[new] = base + inv
    return lab

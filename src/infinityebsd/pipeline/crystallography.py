"""Matching crystallography: re-assign orientations of generated grains to match target statistics.

Decoding orientations through a VAE is lossy, so the model is trusted for the morphology and this step
makes the texture statistics follow the target (what DREAM.3D calls matching crystallography):

1. each generated grain draws an orientation from the target's grain orientations (or, given only the
   conditioning tensor, φ1, Φ, φ2 from its three marginal distributions);
2. pairs of generated grains swap orientations when the swap brings the boundary disorientation
   histogram closer (L2, 1° bins) to the target's.

Grains of the input are never touched.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..crystal import disorientation_angle, euler_to_quat
from ..metrics import METRIC_NAMES, axis_values

BINS = np.arange(0.0, 63.5, 1.0)

MAX_SWAPS = 5000
"""Swap trials :func:`orientations_for_labels` makes at most by default (about 0.3 ms each)."""


def _hist(d_deg, weights=None):
    h, _ = np.histogram(d_deg, bins=BINS, weights=weights)
    return h.astype(np.float64)


def _haar_marginal(name: str, v: np.ndarray) -> np.ndarray:
    """Probabilities over the axis values ``v`` (degrees) of a uniformly random orientation's Euler angle.

    Haar measure in Bunge angles is sin Φ dφ1 dΦ dφ2 / 8π², a product, so the three angles are
    independent: φ1 and φ2 uniform, Φ with density ∝ sin Φ. On the cubic box (Φ, φ2 ≤ 90°), one
    eighth of Euler space, this is still uniform over orientations modulo the cubic symmetry.
    """
    p = np.sin(np.deg2rad(v)) if name == "Phi" else np.ones(len(v))
    return p / p.sum()


def sample_from_tensor(C: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` orientations with φ1, Φ, φ2 drawn independently from the tensor's marginal rows.

    A row the target does not give (NaN) is a random texture's marginal (:func:`_haar_marginal`):
    uniform in Φ would crowd orientations around ⟨001⟩ ∥ Z.
    """
    eul = []
    for name in ("phi1", "Phi", "phi2"):
        row = C[METRIC_NAMES.index(name)].astype(np.float64)
        v = axis_values(name)
        given = np.all(np.isfinite(row)) and row.sum() > 0
        p = row / row.sum() if given else _haar_marginal(name, v)
        step = v[1] - v[0]
        eul.append(rng.choice(v, size=n, p=p) + rng.uniform(-step / 2, step / 2, n))
    return euler_to_quat(np.deg2rad(np.stack(eul, axis=1)))


def target_disorientation_hist(C: np.ndarray | None = None, target_deg: np.ndarray | None = None):
    """Target histogram on 1° bins, normalised to unit sum, from boundary values or the tensor row."""
    if target_deg is not None and len(target_deg):
        h = _hist(target_deg)
    else:
        row = np.nan_to_num(C[METRIC_NAMES.index("disorientation")].astype(np.float64))
        h = _hist(axis_values("disorientation"), weights=row)
    return h / max(h.sum(), 1e-12)


RANK_WIDTH = 0.2
"""Width, as a fraction of the grains, of the size-rank window within which a new grain draws its
orientation and swaps it (:func:`size_rank_draw`)."""


def size_quantiles(area: np.ndarray, rng) -> np.ndarray:
    """Each grain's size rank as a quantile in (0, 1), ties broken at random."""
    area = np.asarray(area, np.float64)
    n = len(area)
    order = np.lexsort((rng.random(n), area))
    q = np.empty(n)
    q[order] = (np.arange(n) + 0.5) / max(n, 1)
    return q


def size_rank_draw(quantile: np.ndarray, target_area: np.ndarray, rng, width: float = RANK_WIDTH) -> np.ndarray:
    """Indices of target grains for new grains at size quantiles ``quantile``: the target grain at
    the same quantile of the target's sizes, give or take ``width / 2`` (uniform, reflected at the
    ends, so that every target grain is drawn equally often on average, as a plain draw would).

    Orientation and size go together in real maps: the 316L map's grains within 15° of ⟨001⟩‖Z are
    26 % of its grains but 3 % of its area (small ones, median 16 cells against 100). Drawn
    regardless of size, they took 21 % of the generated area, and the map came out visibly redder."""
    order = np.argsort(np.asarray(target_area, np.float64), kind="stable")
    k = len(order)
    q = np.asarray(quantile, np.float64) + (rng.random(len(quantile)) - 0.5) * width
    q = np.abs(q)
    q = np.where(q > 1.0, 2.0 - q, q)
    return order[np.minimum((q * k).astype(np.int64), k - 1)]


def match_crystallography(pairs: np.ndarray, quat: np.ndarray, editable: np.ndarray, target_hist: np.ndarray,
                          target_quat: np.ndarray | None = None, C: np.ndarray | None = None,
                          swaps: int | None = None, seed: int = 0, quantile: np.ndarray | None = None,
                          target_area: np.ndarray | None = None) -> np.ndarray:
    """New orientations (n, 4) for the grains; only ``editable`` grains change.

    Parameters
    ----------
    pairs : (m, 2) adjacent grain pairs.
    quat : (n, 4) current grain orientations.
    editable : (n,) bool, the generated grains.
    target_hist : unit-sum histogram of boundary disorientations on 1° bins (0–63°).
    target_quat : (k, 4) target grain orientations to draw from; else ``C``'s marginals are used.
    swaps : number of swap trials (default 20 per editable grain).
    quantile, target_area : (n,) size quantiles of the grains among the editable ones
        (:func:`size_quantiles`; only editable grains' are read) and (k,) areas of the target grains;
        with both, a new grain draws from target grains of about its size rank
        (:func:`size_rank_draw`) and swaps only with new grains of about its size rank, so
        orientations keep the sizes they go with.
    """
    rng = np.random.default_rng(seed)
    q = np.array(quat, dtype=np.float64)
    idx = np.flatnonzero(editable)
    if len(idx) == 0 or len(pairs) == 0:
        return q
    by_size = (target_quat is not None and quantile is not None and target_area is not None
               and len(target_area) == len(target_quat))
    if by_size:
        qnt = np.asarray(quantile)[idx]
        q[idx] = np.asarray(target_quat)[size_rank_draw(qnt, target_area, rng)]
        idx = idx[np.argsort(qnt)]  # by size, so that swap partners are near in rank
        reach = max(1, int(RANK_WIDTH / 2 * len(idx)))
    elif target_quat is not None and len(target_quat):
        q[idx] = np.asarray(target_quat)[rng.integers(0, len(target_quat), len(idx))]
    elif C is not None:
        q[idx] = sample_from_tensor(C, len(idx), rng)
    if not np.asarray(target_hist).sum() > 0:
        return q  # no boundary statistics to match (e.g. a target without disorientations)
    n = len(q)
    a, b = pairs[:, 0], pairs[:, 1]
    # boundaries incident to each grain (CSR of boundary indices)
    inc = sparse.csr_matrix((np.ones(2 * len(a)), (np.concatenate([a, b]), np.tile(np.arange(len(a)), 2))),
                            shape=(n, len(a)))
    d = np.rad2deg(disorientation_angle(q[a], q[b]))
    counts = _hist(d)
    total = counts.sum()
    target = target_hist * total
    swaps = 20 * len(idx) if swaps is None else swaps
    bins_of = lambda x: np.clip(np.searchsorted(BINS, x, side="right") - 1, 0, len(BINS) - 2)  # noqa: E731
    for _ in range(swaps):  # a loop over trials, each touching a handful of boundaries
        if by_size:
            i1 = int(rng.integers(0, len(idx)))
            g1, g2 = idx[i1], idx[min(max(i1 + int(rng.integers(-reach, reach + 1)), 0), len(idx) - 1)]
        else:
            g1, g2 = idx[rng.integers(0, len(idx), 2)]
        if g1 == g2:
            continue
        bnd = np.union1d(inc.indices[inc.indptr[g1]:inc.indptr[g1 + 1]], inc.indices[inc.indptr[g2]:inc.indptr[g2 + 1]])
        if len(bnd) == 0:
            continue
        qa, qb = q[a[bnd]].copy(), q[b[bnd]].copy()
        for arr, ends in ((qa, a[bnd]), (qb, b[bnd])):
            m1, m2 = ends == g1, ends == g2
            arr[m1], arr[m2] = q[g2], q[g1]
        new = np.rad2deg(disorientation_angle(qa, qb))
        old_bins, new_bins = bins_of(d[bnd]), bins_of(new)
        delta = np.zeros(len(BINS) - 1)
        np.add.at(delta, old_bins, -1)
        np.add.at(delta, new_bins, 1)
        touched = np.flatnonzero(delta)
        before = np.sum((counts[touched] - target[touched]) ** 2)
        after = np.sum((counts[touched] + delta[touched] - target[touched]) ** 2)
        if after < before:
            q[[g1, g2]] = q[[g2, g1]]
            counts += delta
            d[bnd] = new
    return q


def _grain_pairs(labels: np.ndarray) -> np.ndarray:
    """Unique 4-adjacent grain pairs (a < b) of a label map."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()]).astype(np.int64)
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()]).astype(np.int64)
    d = a != b
    lo, hi = np.minimum(a[d], b[d]), np.maximum(a[d], b[d])
    n = int(labels.max()) + 1
    key = np.unique(lo * n + hi)
    return np.stack([key // n, key % n], axis=1)


def _modal_orientation(labels_known: np.ndarray, euler_known: np.ndarray, n: int):
    """Per grain, the orientation found most often among its known cells (rounded to 1e-6 rad).

    Returns (has (n,) bool, euler (n, 3)). Known cells of one grain usually share one orientation
    exactly (a cleaned input); the mode, not the mean, keeps that orientation bit for bit.
    """
    has = np.zeros(n, bool)
    out = np.zeros((n, 3))
    if len(labels_known) == 0:
        return has, out
    key = np.round(euler_known, 6)
    rows = np.column_stack([labels_known.astype(np.float64), key])
    uniq, first, cnt = np.unique(rows, axis=0, return_index=True, return_counts=True)
    lab = uniq[:, 0].astype(np.int64)
    # per grain the row with the largest count (ties: the smallest orientation, deterministic)
    order = np.lexsort((-cnt, lab))
    top = np.ones(len(order), bool)
    top[1:] = lab[order][1:] != lab[order][:-1]
    pick = order[top]
    has[lab[pick]] = True
    out[lab[pick]] = euler_known[first[pick]]
    return has, out


def _separate(quat, pairs, editable, min_deg, target_quat, cond, rng, rounds: int = 30, quantile=None,
              target_area=None):
    """Redraw new grains that sit closer than ``min_deg`` (or Σ3) to a neighbour (from target grains
    of about their size rank when ``quantile``, per grain, and ``target_area`` are given)."""
    from ..crystal import is_sigma3, random_quat

    q = quat.copy()
    a, b = pairs[:, 0], pairs[:, 1]
    touch = editable[a] | editable[b]
    a, b = a[touch], b[touch]
    for _ in range(rounds):
        bad = (disorientation_angle(q[a], q[b]) < np.deg2rad(min_deg)) | is_sigma3(q[a], q[b], 10.0)
        if not bad.any():
            break
        # redraw an editable end of each bad pair (either, at random, when both are)
        pick_a = editable[a[bad]] & (~editable[b[bad]] | (rng.random(int(bad.sum())) < 0.5))
        g = np.unique(np.where(pick_a, a[bad], b[bad]))
        if target_quat is not None and len(target_quat) and quantile is not None and target_area is not None:
            q[g] = np.asarray(target_quat)[size_rank_draw(quantile[g], target_area, rng)]
        elif target_quat is not None and len(target_quat):
            q[g] = np.asarray(target_quat)[rng.integers(0, len(target_quat), len(g))]
        elif cond is not None:
            q[g] = sample_from_tensor(np.asarray(cond), len(g), rng)
        else:
            q[g] = random_quat(len(g), rng)
    return q


def orientations_for_labels(labels: np.ndarray, known: np.ndarray, known_euler: np.ndarray, cond=None,
                            target_quat: np.ndarray | None = None,
                            target_disorientation_deg: np.ndarray | None = None, seed: int = 0,
                            swaps: int | None = None, min_neighbour_deg: float | None = None,
                            target_area: np.ndarray | None = None) -> np.ndarray:
    """Bunge angles (H, W, 3) for a complete grain label map, keeping what is known.

    Parameters
    ----------
    labels : (H, W) int, grains 0..n-1 covering every cell.
    known : (H, W) bool, cells whose orientation is fixed.
    known_euler : (H, W, 3) Bunge angles (radians); only known cells are read.
    cond : conditioning tensor, used when ``target_quat`` / ``target_disorientation_deg`` are missing.
    target_quat : (k, 4) orientations new grains draw from; default the known grains' (or ``cond``'s).
    target_disorientation_deg : boundary disorientations (degrees) whose histogram the new grains'
        boundaries should follow; default ``cond``'s row, else the known grains' own boundaries.
    swaps : swap trials of :func:`match_crystallography` (default 20 per new grain, at most
        :data:`MAX_SWAPS`).
    min_neighbour_deg : if given, new grains closer than this to a neighbour, or Σ3-related to it, are
        redrawn from the same source (up to 30 rounds), so that cleaning (10°, twins merged) does not
        merge them; a cleaned target has no such boundaries either.
    target_area : (k,) areas of the ``target_quat`` grains; with it a new grain's orientation comes
        from target grains of about its size rank (:func:`size_rank_draw`), so a texture carried by
        small grains stays on small grains. Without ``target_quat`` the known grains' own areas are
        used.

    Every grain with known cells takes the orientation found most often among them (known cells
    keep exactly their own); every other grain gets one orientation from :func:`match_crystallography`
    with the known grains as fixed neighbours.
    """
    from ..crystal import quat_to_euler, random_quat

    labels = np.asarray(labels)
    known = np.asarray(known, bool)
    known_euler = np.asarray(known_euler, np.float64)
    if labels.shape != known.shape or known_euler.shape != labels.shape + (3,):
        raise ValueError("labels, known and known_euler must share the map shape")
    lab = labels.astype(np.int64)
    n = int(lab.max()) + 1
    has, grain_eul = _modal_orientation(lab[known], known_euler[known], n)
    quat = np.zeros((n, 4))
    quat[:, 0] = 1.0
    if has.any():
        quat[has] = euler_to_quat(grain_eul[has])
    pairs = _grain_pairs(lab)
    editable = ~has
    rng = np.random.default_rng(seed)
    if editable.any():
        if target_quat is None or len(target_quat) == 0:
            target_quat = quat[has] if cond is None and has.any() else None
            target_area = np.bincount(lab[known], minlength=n)[has] if target_quat is not None else None
        if target_area is not None and (target_quat is None or len(target_area) != len(target_quat)):
            target_area = None
        quantile = None
        if target_area is not None:  # the new grains' size ranks, for the draws and the swaps alike
            quantile = np.zeros(n)
            quantile[editable] = size_quantiles(np.bincount(lab.ravel(), minlength=n)[editable], rng)
        if target_disorientation_deg is None and cond is None and len(pairs):
            both = has[pairs[:, 0]] & has[pairs[:, 1]]
            if both.any():
                target_disorientation_deg = np.rad2deg(disorientation_angle(quat[pairs[both, 0]], quat[pairs[both, 1]]))
        if target_quat is None and cond is None:
            # nothing to follow: a random texture (Mackenzie boundaries), no swapping
            quat[editable] = random_quat(int(editable.sum()), rng)
        else:
            if (target_disorientation_deg is None or len(target_disorientation_deg) == 0) and cond is None:
                hist = None  # no boundary to learn from (a single-grain input): no swapping
            else:
                hist = target_disorientation_hist(None if cond is None else np.asarray(cond), target_disorientation_deg)
            if swaps is None:  # 20 trials per new grain, at most MAX_SWAPS (each trial is a little Python)
                swaps = min(20 * int(editable.sum()), MAX_SWAPS)
            quat = match_crystallography(pairs, quat, editable,
                                         hist if hist is not None else np.zeros(len(BINS) - 1),
                                         target_quat=target_quat, C=None if cond is None else np.asarray(cond),
                                         swaps=0 if hist is None else swaps, seed=int(rng.integers(1 << 31)),
                                         quantile=quantile, target_area=target_area)
        if min_neighbour_deg is not None and len(pairs):
            quat = _separate(quat, pairs, editable, min_neighbour_deg, target_quat, cond, rng,
                             quantile=quantile, target_area=target_area)
    eul = np.empty((n, 3))
    eul[has] = grain_eul[has]
    if editable.any():
        eul[editable] = quat_to_euler(quat[editable])
    out = eul[lab]
    out[known] = known_euler[known]
    return out

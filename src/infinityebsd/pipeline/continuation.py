"""Grain continuation across the known/unknown border of a window.

Decoding through the VAE is lossy: the cells the model paints next to a known grain carry the
decoder's orientation error (a few degrees, more near boundaries), so after the paper's 10° cleaning
many grains cut by the window border split along it, and the window seams show as extra boundaries.

The decoded window still says which generated cells *belong* to which known grain, because the
decoder reproduces the known cells too: a decoded grain (segmented at a fine threshold) that covers
known cells of one grain continues that grain. Its generated cells take the known grain's
orientation, exactly, so continuation no longer depends on the decoder's angular accuracy. Generated
cells whose decoded orientation is far from that grain (a different grain the segmentation bridged)
are left as decoded.
"""

from __future__ import annotations

import numpy as np

from ..crystal import disorientation_angle, euler_to_quat, quat_to_euler
from ..grains import reconstruct
from ..grains.labels import best_per_group
from ..io import EBSDMap

SEGMENT_DEG = 5.0
"""Neighbour threshold for segmenting decoded and known cells (decoded boundaries are blurred)."""


def continue_grains(euler: np.ndarray, known: np.ndarray, decoded: np.ndarray, segment_deg: float = SEGMENT_DEG,
                    tol_deg: float = 15.0, min_share: float = 0.5, min_cells: int = 4) -> np.ndarray:
    """Give generated cells that continue a known grain that grain's orientation.

    Parameters
    ----------
    euler : (P, P, 3) Bunge angles (radians); the known cells' true orientations.
    known : (P, P) bool.
    decoded : (P, P, 3) the decoded window, known cells included.
    segment_deg : threshold for the 4-neighbour segmentation of the decoded window and of the known cells.
    tol_deg : a generated cell snaps only when its decoded orientation lies within this disorientation
        of the known grain's mean orientation.
    min_share, min_cells : a decoded segment continues a known grain when that grain holds at least
        ``min_share`` of the segment's known cells and at least ``min_cells`` of them.

    Returns
    -------
    (P, P, 3) angles: known cells from ``euler``, the others from ``decoded``, snapped where they continue.
    """
    known = np.asarray(known, bool)
    out = np.where(known[..., None], euler, decoded)
    if not known.any() or known.all():
        return out
    qd = euler_to_quat(decoded)
    seg = reconstruct(EBSDMap.from_euler(decoded), segment_deg, mean=False, quat_cells=qd).labels.ravel()
    gk = reconstruct(EBSDMap.from_euler(euler, indexed=known), segment_deg)
    kl = gk.labels.ravel()
    k = known.ravel()
    # votes: (decoded segment, known grain) pairs over the known cells
    n_seg = int(seg.max()) + 1
    key = seg[k].astype(np.int64) * gk.n + kl[k]
    pairs, counts = np.unique(key, return_counts=True)
    s_of, g_of = pairs // gk.n, pairs % gk.n
    total = np.bincount(s_of, weights=counts, minlength=n_seg)
    # the winning known grain per segment; pairs run in reverse key order so that a tie goes to the
    # higher grain id, as it always has (best_per_group keeps the earliest of equal scores)
    segs, idx = best_per_group(s_of[::-1], counts[::-1])
    best_g = np.full(n_seg, -1)
    best_c = np.zeros(n_seg)
    best_g[segs] = g_of[::-1][idx]
    best_c[segs] = counts[::-1][idx]
    ok = (best_g >= 0) & (best_c >= min_cells) & (best_c >= min_share * np.maximum(total, 1))
    gen = np.flatnonzero(~k)
    g = np.where(ok[seg[gen]], best_g[seg[gen]], -1)
    cand = gen[g >= 0]
    gq = gk.quat[g[g >= 0]]
    close = disorientation_angle(qd.reshape(-1, 4)[cand], gq) < np.deg2rad(tol_deg)
    flat = out.reshape(-1, 3)
    flat[cand[close]] = quat_to_euler(gq[close])
    return flat.reshape(out.shape)

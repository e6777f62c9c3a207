"""Physics-based extension (``--method growth``) and its shared pieces: orientations for a label map,
boundary measures on label maps."""

import numpy as np
import pytest

from infinityebsd.crystal import disorientation_angle, euler_to_quat, random_quat
from infinityebsd.evaluate.boundaries import border_density_ratio, continued_share, straight_run_share


# --------------------------------------------------------------------------------------- boundaries
def _blocks(shape, b):
    r, c = np.indices(shape)
    return (r // b) * 1000 + c // b


def test_straight_runs_of_block_tilings():
    # every boundary of a tiling of 12x12 blocks is a 12-edge run between the same two blocks
    assert straight_run_share(_blocks((96, 96), 12), 12) == 1.0
    # 4x4 blocks: runs of 4 only
    assert straight_run_share(_blocks((96, 96), 4), 12) == 0.0
    assert straight_run_share(_blocks((96, 96), 4), 4) == 1.0


def test_straight_runs_of_a_disc():
    r, c = np.indices((64, 64))
    disc = (((r - 31.5) ** 2 + (c - 31.5) ** 2) <= 16 ** 2).astype(int)
    # the flattest stretch of a radius-16 digital disc (its top row) is under 12 cells
    flat = int(disc[disc.any(axis=1)][0].sum())
    assert flat < 12
    assert straight_run_share(disc, 12) == 0.0
    assert np.isnan(straight_run_share(np.zeros((10, 10), int)))


def test_border_density_ratio_analytic():
    # one grain inside the box, one outside: every boundary edge lies on the border line
    box = (20, 20, 40, 40)
    two = np.zeros((80, 80), int)
    two[20:60, 20:60] = 1
    assert np.isnan(border_density_ratio(two, box))  # nothing elsewhere: undefined, not infinite
    two_plus = two.copy()
    two_plus[:, :5] = 2  # a straight boundary far from the box: one edge per row at column 5
    band = 2
    # band cells: (44^2 - 36^2) = 640; border edges: 160, each half in the band on both sides -> 160 edge-units
    # far cells: 80^2 - 44^2 = 4464, holding 80 boundary edges
    expected = (160 / 640) / (80 / 4464)
    assert border_density_ratio(two_plus, box, band) == pytest.approx(expected)


def test_continued_share_half_plane():
    truth = np.zeros((40, 40), int)
    truth[:, 20:] = 1  # two half-plane grains, both cut by a centred box
    box = (10, 10, 20, 20)
    assert continued_share(truth, truth, box) == 1.0
    cut = truth.copy()
    cut[:10, :] = 2  # above the box: another grain, so neither continues upwards...
    cut[30:, :] = 3
    cut[:, :10] = 2
    cut[:, 30:] = 3
    assert continued_share(cut, truth, box) == 0.0


# --------------------------------------------------------------------------------------- orientations
def _hist_l2(q, pairs, target):
    from infinityebsd.pipeline.crystallography import BINS

    d = np.rad2deg(disorientation_angle(q[pairs[:, 0]], q[pairs[:, 1]]))
    h, _ = np.histogram(d, bins=BINS)
    return np.sum((h / h.sum() - target) ** 2)


def test_orientations_for_labels_keeps_known_and_matches_target():
    from infinityebsd.data.synth import voronoi_labels
    from infinityebsd.pipeline.crystallography import (
        _grain_pairs, orientations_for_labels, target_disorientation_hist,
    )

    rng = np.random.default_rng(0)
    labels = voronoi_labels((96, 96), 8, rng=1)
    n = int(labels.max()) + 1
    known = np.zeros(labels.shape, bool)
    known[:, :40] = True
    known_euler = rng.uniform(0, 1, labels.shape + (3,))  # per-cell values: the cells must keep exactly these
    target_q = random_quat(200, rng)
    target_d = rng.uniform(15, 30, 500)  # a histogram far from Mackenzie's
    out = orientations_for_labels(labels, known, known_euler, target_quat=target_q,
                                  target_disorientation_deg=target_d, seed=3)
    assert out.shape == labels.shape + (3,)
    assert np.array_equal(out[known], known_euler[known])
    # a grain with known cells takes one of its known cells' orientations in its unknown cells
    has = np.zeros(n, bool)
    has[np.unique(labels[known])] = True
    straddling = [g for g in np.flatnonzero(has) if (~known & (labels == g)).any()]
    assert straddling
    for g in straddling[:5]:
        vals = out[(labels == g) & ~known]
        assert np.allclose(vals, vals[0])
        assert np.isclose(known_euler[(labels == g) & known], vals[0]).all(axis=1).any()
    # every new grain: one orientation, one of the target's
    new = np.flatnonzero(~has)
    q_out = euler_to_quat(out)
    for g in new[:20]:
        qg = q_out[labels == g]
        assert np.allclose(qg, qg[0], atol=1e-9)
        assert np.min(np.rad2deg(disorientation_angle(np.repeat(qg[:1], len(target_q), 0), target_q))) < 1e-3
    # the swaps bring the new boundaries' histogram closer to the target than the plain draw
    pairs = _grain_pairs(labels)
    gen_pairs = pairs[~has[pairs[:, 0]] & ~has[pairs[:, 1]]]
    target = target_disorientation_hist(None, target_d)
    first = np.zeros(n, np.int64)
    first[labels.ravel()] = np.arange(labels.size)
    qg_swapped = q_out.reshape(-1, 4)[first]
    plain = orientations_for_labels(labels, known, known_euler, target_quat=target_q,
                                    target_disorientation_deg=target_d, seed=3, swaps=0)
    qg_plain = euler_to_quat(plain).reshape(-1, 4)[first]
    assert _hist_l2(qg_swapped, gen_pairs, target) < 0.7 * _hist_l2(qg_plain, gen_pairs, target)


def test_orientations_for_labels_from_cond_and_from_nothing():
    from infinityebsd.data.synth import synth_map
    from infinityebsd.metrics import conditioning_tensor, metrics_of
    from infinityebsd.pipeline.crystallography import orientations_for_labels

    m = synth_map((64, 64), 10, seed=0)
    cond = conditioning_tensor(metrics_of(m, clean=False))
    labels = np.arange(64 * 64).reshape(64, 64) // 512  # 8 horizontal bands
    known = np.zeros((64, 64), bool)
    out = orientations_for_labels(labels, known, np.zeros((64, 64, 3)), cond=cond, seed=0)
    assert np.isfinite(out).all() and len(np.unique(out.reshape(-1, 3), axis=0)) == 8
    out2 = orientations_for_labels(labels, known, np.zeros((64, 64, 3)), seed=0)
    assert len(np.unique(out2.reshape(-1, 3), axis=0)) == 8

"""Grain reconstruction, cleaning and the eight metrics against analytic answers."""

import numpy as np
import pytest

from infinityebsd import EBSDMap
from infinityebsd.crystal import (
    SIGMA3, axis_angle_to_quat, disorientation_angle, euler_to_quat, mackenzie_density, qmul,
    quat_to_euler, random_quat,
)
from infinityebsd.grains import clean, clean_with_grains, reconstruct
from infinityebsd.metrics import (
    METRIC_AXES, METRIC_NAMES, axis_values, conditioning_tensor, distributions, distributions_from_tensor,
    grain_table, metrics_of, tensor_from_distributions,
)

from conftest import block_labels, real


def map_from_labels(labels, quats):
    return EBSDMap.from_euler(quat_to_euler(quats[labels]))


def well_separated_quats(n, rng, min_deg=15.0):
    """Random orientations, redrawn until no pair is within ``min_deg`` or Σ3-related."""
    from infinityebsd.crystal import is_sigma3

    q = random_quat(n, rng)
    for _ in range(200):
        d = np.rad2deg(disorientation_angle(q[:, None], q[None, :]))
        tw = is_sigma3(q[:, None], q[None, :])
        np.fill_diagonal(d, 90)
        np.fill_diagonal(tw, False)
        bad = np.flatnonzero(((d < min_deg) | tw).any(axis=1))
        if not len(bad):
            return q
        q[bad[0]] = random_quat(1, rng)[0]
    raise AssertionError("could not separate orientations")


def test_square_tiling_metrics(rng):
    labels = block_labels(128, 128, 32, 32)
    q = well_separated_quats(16, rng)
    t = grain_table(labels, q)
    assert t.n == 16
    np.testing.assert_array_equal(t.area, 1024)
    np.testing.assert_allclose(t.size, 2 * np.sqrt(1024 / np.pi))
    assert t.size[0] == pytest.approx(36.11, abs=0.005)
    np.testing.assert_array_equal(t.perimeter, 128)
    np.testing.assert_allclose(t.inertia_ratio, 1.0)
    expected = np.array([[2, 3, 3, 2], [3, 4, 4, 3], [3, 4, 4, 3], [2, 3, 3, 2]]).ravel()
    np.testing.assert_array_equal(t.coordination, expected)
    assert len(t.pairs) == 24 and (t.length == 32).all()
    np.testing.assert_array_equal(t.border, expected < 4)
    # the same grains found by reconstruction of the map
    g = reconstruct(map_from_labels(labels, q))
    assert g.n == 16
    np.testing.assert_allclose(np.rad2deg(disorientation_angle(g.quat, q[np.unique(labels)])), 0, atol=1e-5)


@pytest.mark.parametrize("h, w", [(64, 16), (16, 64), (30, 10), (8, 40)])
def test_rectangle_inertia_ratio_is_exact(h, w):
    labels = np.ones((100, 100), int)
    labels[10:10 + h, 20:20 + w] = 0
    t = grain_table(labels, random_quat(2, 0))
    assert t.inertia_ratio[0] == pytest.approx((max(h, w) / min(h, w)) ** 2, rel=1e-12)
    assert t.perimeter[0] == 2 * (h + w)


def test_disorientation_metric_matches_pairs(rng):
    labels = block_labels(64, 64, 32, 32)
    q = well_separated_quats(4, rng)
    t = grain_table(labels, q)
    for (a, b), d in zip(t.pairs, t.disorientation_deg):
        assert d == pytest.approx(np.rad2deg(disorientation_angle(q[a], q[b])), abs=1e-9)
    assert {tuple(p) for p in t.pairs} == {(0, 1), (0, 2), (1, 3), (2, 3)}


def test_internal_5_degree_boundary_is_not_a_grain_boundary(rng):
    q0 = random_quat(1, rng)[0]
    q1 = qmul(q0, axis_angle_to_quat([0.3, 0.5, 0.8], np.deg2rad(5.0)))
    labels = np.zeros((40, 40), int)
    labels[:, 20:] = 1
    m = map_from_labels(labels, np.stack([q0, q1]))
    assert reconstruct(m, 10.0).n == 1
    assert reconstruct(m, 3.0).n == 2


def test_sigma3_twins_merge_and_others_do_not(rng):
    q0 = random_quat(1, rng)[0]
    twin = qmul(q0, SIGMA3)
    other = qmul(q0, axis_angle_to_quat([1, 0, 0], np.deg2rad(60)))  # 60° about <100>: not Σ3
    labels = np.zeros((60, 60), int)
    labels[:, 20:40] = 1
    labels[:, 40:] = 2
    quats = np.stack([q0, twin, other])
    # parent = the larger grain; make grain 0 the largest
    labels[:, 18:20] = 0
    m = map_from_labels(labels, quats)
    cm, g = clean_with_grains(m)
    assert g.n == 2  # parent+twin merged, the <100> neighbour kept
    # merged grain carries the parent's orientation everywhere
    qm = euler_to_quat(cm.euler)
    assert np.rad2deg(disorientation_angle(qm[:, :40], q0)).max() < 1e-3
    _, g2 = clean_with_grains(m, merge_twins=False)
    assert g2.n == 3


def test_small_islands_vanish_and_larger_ones_stay(rng):
    q = well_separated_quats(3, rng)
    labels = np.zeros((60, 60), int)
    labels[10:13, 10:13] = 1   # 3×3 = 9 cells < 10: removed
    labels[30:34, 30:34] = 2   # 4×4 = 16 cells: kept
    cm, g = clean_with_grains(map_from_labels(labels, q))
    assert g.n == 2
    qm = euler_to_quat(cm.euler)
    assert np.rad2deg(disorientation_angle(qm[11, 11], q[0])) < 1e-3  # filled by the surrounding grain
    assert np.rad2deg(disorientation_angle(qm[31, 31], q[2])) < 1e-3


def test_non_indexed_cells_are_filled_and_cleaning_is_idempotent(rng):
    labels = block_labels(64, 64, 16, 16)
    q = well_separated_quats(16, rng)
    m = map_from_labels(labels, q)
    m.phase_id[rng.random(m.shape) < 0.1] = 0
    m.euler[~m.indexed] = 0.0
    cm, g = clean_with_grains(m)
    assert cm.indexed.all() and g.n == 16
    # holes on a boundary go to either side, so areas move by a few cells only
    assert g.area.sum() == 64 * 64 and np.abs(g.area - 256).max() <= 8
    cm2, g2 = clean_with_grains(cm)
    assert g2.n == g.n
    np.testing.assert_allclose(cm2.euler, cm.euler, atol=1e-9)


def test_random_orientations_reproduce_mackenzie(rng):
    labels = block_labels(400, 400, 8, 8)  # 2500 grains, ~4900 boundaries
    q = random_quat(labels.max() + 1, rng)
    t = grain_table(labels, q)
    d = t.disorientation_deg
    grid = np.linspace(0, 62.8, 4000)
    cdf = np.cumsum(mackenzie_density(grid)) * (grid[1] - grid[0])
    # Wasserstein-1 between the sample and Mackenzie, via the CDFs
    emp = np.searchsorted(np.sort(d), grid, side="right") / len(d)
    w1 = np.sum(np.abs(emp - cdf)) * (grid[1] - grid[0])
    assert w1 < 0.6


def _table_with_values(x):
    """A GrainTable whose every metric (and every boundary's disorientation) takes the values ``x``."""
    from infinityebsd.metrics import GrainTable

    n = len(x)
    return GrainTable(shape=(1, n), area=np.ones(n, np.int64), size=x, perimeter=x, inertia_ratio=x,
                      coordination=x, euler_deg=np.stack([x, x, x], axis=1), border=np.zeros(n, bool),
                      pairs=np.stack([np.arange(n), np.roll(np.arange(n), 1)], axis=1), disorientation_deg=x,
                      length=np.ones(n, np.int64))


def test_distributions_use_the_paper_bin_rules():
    # 30 right-skewed values on [0, 100] for which Rice, square root and Doane give different bins.
    x = np.array(list(range(20)) + [20, 25, 30, 40, 50, 60, 70, 80, 90, 100], float)
    n = len(x)
    # Rice: ceil(2·30^(1/3)) = ceil(6.21) = 7 bins of 14.29: 0..14 | 15..19, 20, 25 | 30, 40 | 50 | 60, 70 | 80 | 90, 100
    rice = [15, 7, 2, 1, 2, 1, 2]
    # square root: ceil(√30) = ceil(5.48) = 6 bins of 16.67: 0..16 | 17..19, 20, 25, 30 | 40 | 50, 60 | 70, 80 | 90, 100
    sqrt = [17, 6, 1, 2, 2, 2]
    # Doane: 1 + log2(n) + log2(1 + |g1|/σg1) with the sample skewness g1 = 1.46 and
    # σg1 = √(6(n−2)/((n+1)(n+3))) = 0.405: 8.11 → 9 bins of 11.11
    z = (x - x.mean()) / x.std()
    g1 = np.mean(z**3)
    k = 1 + np.log2(n) + np.log2(1 + abs(g1) / np.sqrt(6 * (n - 2) / ((n + 1) * (n + 3))))
    assert g1 == pytest.approx(1.46, abs=0.01) and int(np.ceil(k)) == 9
    doane = [12, 9, 2, 1, 1, 1, 1, 1, 2]  # 0..11 | 12..19, 20 | 25, 30 | 40 | 50 | 60 | 70 | 80 | 90, 100

    d = distributions(_table_with_values(x))

    def counts(name):
        e, dens = d[name]
        assert e[0] == 0 and e[-1] == 100
        np.testing.assert_allclose(np.diff(e), 100 / (len(e) - 1))  # equal-width bins over the range
        return np.rint(dens * np.diff(e) * n).astype(int).tolist()

    assert counts("size") == rice and counts("perimeter") == rice
    assert counts("inertia_ratio") == sqrt
    for name in ("coordination", "disorientation", "phi1", "Phi", "phi2"):
        assert counts(name) == doane, name
    # constant data: one bin around the value, holding everything
    e, dens = distributions(_table_with_values(np.full(5, 7.0)))["size"]
    assert e.tolist() == [6.5, 7.5] and dens.tolist() == [1.0]


def test_grain_euler_angles_lie_in_the_cubic_euler_region(rng):
    t = grain_table(block_labels(200, 200, 10, 10), random_quat(400, rng))
    assert (t.euler_deg[:, 1] <= 90 + 1e-6).all() and (t.euler_deg[:, 2] < 90).all()
    d = distributions(t)
    for name in METRIC_NAMES:
        e, dens = d[name]
        assert np.sum(dens * np.diff(e)) == pytest.approx(1.0)


def test_conditioning_tensor_is_invertible_and_physical(rng):
    values = rng.gamma(4.0, 5.0, 3000)  # sizes in cells
    dens, edges = np.histogram(values, bins="rice", density=True)
    C = tensor_from_distributions({"size": (edges, dens)})
    assert C.shape == (8, 1024) and np.isnan(C[1:]).all()
    back = distributions_from_tensor(C)
    v, p = back["size"]
    # mean and quantiles survive the mapping to the axis
    dv = v[1] - v[0]
    assert np.sum(v * p) * dv == pytest.approx(values.mean(), rel=0.01)
    cdf = np.cumsum(p) * dv
    assert v[np.searchsorted(cdf, 0.5)] == pytest.approx(np.median(values), rel=0.03)
    # the same column means the same value in every map
    lo, hi = METRIC_AXES["size"]
    assert axis_values("size")[0] == pytest.approx(lo + (hi - lo) / 2048)


def test_metrics_on_real_nickel_are_plausible():
    from infinityebsd import read_map

    raw = read_map(real("dream3d_edax_ni_h5/EdaxAngOnly.h5"))
    t = metrics_of(raw)
    t_twins = metrics_of(raw, merge_twins=False)
    assert t.n < t_twins.n  # twins merged into parents
    # twin-free: no adjacent pair is Σ3 or below the threshold
    from infinityebsd.crystal import is_sigma3

    assert not is_sigma3(t.quat[t.pairs[:, 0]], t.quat[t.pairs[:, 1]]).any()
    assert t.disorientation_deg.min() >= 10.0
    interior = ~t.border
    assert 4.5 < t.coordination[interior].mean() < 8
    C = conditioning_tensor(t)
    assert C.shape == (8, 1024) and np.allclose(C.mean(axis=1), 1, atol=1e-5)


def test_blurred_boundaries_need_a_finer_first_segmentation(rng):
    """A 40° boundary blurred over 8 cells (5° steps, as a decoder smooths it) is bridged by a 10°
    neighbour threshold; a 4° first segmentation, then closest-first merging, keeps the two sides
    apart (the blurred band may stay a grain of its own, as its mean lies 15-20° from both)."""
    from infinityebsd.crystal import axis_angle_to_quat, qmul

    q0 = random_quat(1, rng)[0]
    axis = np.array([0.2, 0.5, 0.84])
    ramp = np.clip((np.arange(64) - 28) / 8, 0, 1) * np.deg2rad(40)  # 0 → 40° over 8 columns
    q = qmul(q0, axis_angle_to_quat(axis, ramp))  # (64, 4), rotation grows along the row
    m = EBSDMap.from_euler(quat_to_euler(np.broadcast_to(q, (48, 64, 4))))
    assert clean_with_grains(m)[1].n == 1
    cm, g = clean_with_grains(m, segment_deg=4.0)
    assert 2 <= g.n <= 3
    assert g.labels[0, 0] != g.labels[0, -1]
    qa = euler_to_quat(cm.euler)
    assert np.rad2deg(disorientation_angle(qa[:, 0], qa[:, -1])).min() > 30


# ------------------------------------------------------------------- shared label-map operations
def test_neighbour_and_boundary_pairs_by_hand():
    from infinityebsd.grains.labels import boundary_pairs, neighbour_pairs

    L = np.array([[0, 0, 1],
                  [2, 2, 1]])
    a, b = neighbour_pairs(L)
    # right neighbours row by row, then the ones below
    assert a.tolist() == [0, 0, 2, 2] + [0, 0, 1]
    assert b.tolist() == [0, 1, 2, 1] + [2, 2, 1]
    pairs, counts = boundary_pairs(L)
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and counts.tolist() == [1, 2, 1]
    # wrapping adds the edges across the map border; diagonals the corner contacts
    pairs, counts = boundary_pairs(L, periodic=True)
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and counts.tolist() == [2, 4, 2]
    pairs, counts = boundary_pairs(L, diagonal=True)
    # diagonals (0,0)-(1,1): 0-2, (0,1)-(1,2): 0-1, down-left (0,1)-(1,0): 0-2, (0,2)-(1,1): 1-2
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and counts.tolist() == [2, 4, 2]
    # negative labels (no grain) never pair
    pairs, _ = boundary_pairs(np.array([[0, -1, 1]]))
    assert pairs.shape == (0, 2)


def test_fill_nearest_takes_the_closest_labelled_cell():
    from infinityebsd.grains.labels import fill_nearest

    L = np.array([[0, -1, -1, -1, -1, 1],
                  [-1, -1, -1, -1, -1, 2]])
    # e.g. cell (1, 2): 0 at distance √5, 2 at 3, 1 at √10
    assert fill_nearest(L).tolist() == [[0, 0, 0, 1, 1, 1],
                                        [0, 0, 0, 2, 2, 2]]
    full = np.array([[3, 4]])
    assert fill_nearest(full) is full


def test_best_per_group_and_majority_label_by_hand():
    from infinityebsd.grains.labels import best_per_group, majority_label

    groups, idx = best_per_group(np.array([2, 0, 2, 0, 2]), np.array([5, 1, 7, 1, 7]))
    assert groups.tolist() == [0, 2] and idx.tolist() == [1, 2]  # ties: the earliest member
    g, v, c = majority_label(np.array([1, 1, 1, 0, 0, 3, 3]), np.array([4, 2, 4, 5, 6, 0, 0]))
    assert g.tolist() == [0, 1, 3] and v.tolist() == [5, 4, 0] and c.tolist() == [1, 2, 2]


def test_non_cubic_phase_named_by_reconstruction():
    from infinityebsd import Phase
    from infinityebsd.errors import SymmetryError

    m = EBSDMap.from_euler(np.zeros((2, 2, 3)), phase=Phase("Ti", laue_group=9))
    with pytest.raises(SymmetryError, match=r"'Ti' has symmetry 6/mmm; grain reconstruction"):
        reconstruct(m)


def test_edge_corrected_distributions_undo_the_window_bias():
    """A mosaic of 20-cell squares and 5-cell squares (bands of each): 1 grain in 17 is large. Seen
    through 100x100 windows at random offsets, grains cut by the window edge are fragments, and the
    grains wholly inside are biased to small ones (a large one fits less often). The Miles-Lantuéjoul
    weights give back the mosaic's share of large grains; the plain histogram does not."""
    from infinityebsd.metrics import distributions, edge_corrected_distributions, grain_table

    r, c = np.indices((400, 400))
    band = (r // 20) % 2  # 0: a band of 20-cell squares, 1: a band of 5-cell squares
    lab = np.where(band == 0, (r // 40) * 10_000 + c // 20, 5_000_000 + (r // 5) * 10_000 + c // 5)
    rng = np.random.default_rng(1)
    share = 1 / 17  # per 40 rows and 20 columns: 1 large, 16 small

    def large_share(d):
        e, p = d["size"]
        w = p * np.diff(e)
        return w[(e[:-1] + e[1:]) / 2 > 15].sum() / w.sum()

    plain, corrected = [], []
    for _ in range(60):
        r0, c0 = rng.integers(0, 300, 2)
        _, win = np.unique(lab[r0:r0 + 100, c0:c0 + 100], return_inverse=True)
        win = win.reshape(100, 100)
        t = grain_table(win, np.tile([1.0, 0, 0, 0], (win.max() + 1, 1)))
        plain.append(large_share(distributions(t)))
        corrected.append(large_share(edge_corrected_distributions(t, win)))
    assert abs(np.mean(corrected) - share) < 0.006
    assert abs(np.mean(plain) - share) > 2 * abs(np.mean(corrected) - share)
    # the shape of whole square grains: inertia ratio 1 for every interior grain
    t = grain_table(win, np.tile([1.0, 0, 0, 0], (win.max() + 1, 1)))
    e, p = edge_corrected_distributions(t, win)["inertia_ratio"]
    assert e[0] <= 1.0 + 1e-9 and ((e[:-1] + e[1:]) / 2 * p * np.diff(e)).sum() < 1.05


def test_edge_corrected_distributions_fall_back_with_too_few_whole_grains():
    """Under MIN_INTERIOR_GRAINS whole grains there is nothing to weight: the plain histograms come back."""
    from infinityebsd.metrics import distributions, edge_corrected_distributions, grain_table

    r, c = np.indices((60, 60))
    lab = (r // 20) * 3 + c // 20  # 3x3 squares of 20 cells: one whole grain (the centre)
    t = grain_table(lab, np.tile([1.0, 0, 0, 0], (9, 1)))
    plain, corr = distributions(t), edge_corrected_distributions(t, lab)
    assert all(np.array_equal(plain[k][0], corr[k][0]) and np.array_equal(plain[k][1], corr[k][1]) for k in corr)
    lab = (r // 10) * 6 + c // 10  # 6x6 squares of 10 cells: 16 whole grains, all of area 100
    t = grain_table(lab, np.tile([1.0, 0, 0, 0], (36, 1)))
    e, p = edge_corrected_distributions(t, lab)["size"]
    w = p * np.diff(e)
    assert np.sum(w * (e[:-1] + e[1:]) / 2) / w.sum() == pytest.approx(2 * np.sqrt(100 / np.pi), abs=0.6)

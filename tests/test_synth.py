"""Synthetic polycrystals: the physics of the generated maps, not just their shapes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage
from scipy.integrate import trapezoid
from scipy.stats import chi, wasserstein_distance

from infinityebsd import EBSDMap, read_map
from infinityebsd.crystal import (
    disorientation_angle, euler_to_quat, mackenzie_density, quat_to_euler, rotate_vector,
)
from infinityebsd.data.synth import (
    assign_orientations, grain_growth_labels, synth_grains, synth_map, voronoi_labels, write_corpus,
)
from infinityebsd.data.texture import ideal_orientation, parse_texture, sample_orientations
from infinityebsd.errors import InputError
from infinityebsd.grains import clean, reconstruct
from infinityebsd.metrics import grain_table

SHAPE = (256, 256)


@pytest.fixture(scope="module")
def growth_random():
    """A 256² grain-growth map with ~600 grains and random texture (shared by several tests)."""
    rng = np.random.default_rng(7)
    labels = grain_growth_labels(SHAPE, 10, rng=rng)
    q = assign_orientations(labels, None, rng)
    return labels, q, grain_table(labels, q)


def _mackenzie_w1(disorientation_deg):
    th = np.linspace(0.05, 62.8, 630)  # 0.1° grid: fine for W1, quick to evaluate
    return wasserstein_distance(disorientation_deg, th, v_weights=mackenzie_density(th))


def _same_partition(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(pairs) == a.max() + 1 == b.max() + 1


# ------------------------------------------------------------------------------ topology, sizes
@pytest.mark.parametrize("method", ["growth", "voronoi"])
def test_interior_grains_have_about_six_neighbours(method, growth_random):
    if method == "growth":
        tab = growth_random[2]
    else:
        rng = np.random.default_rng(1)
        lab = voronoi_labels(SHAPE, 10, rng=rng)
        tab = grain_table(lab, assign_orientations(lab, None, rng))
    interior = ~tab.border
    assert interior.sum() > 300
    # Euler's relation for a 2-D cell network with triple junctions: mean of 6
    assert 5.5 <= tab.coordination[interior].mean() <= 6.5


@pytest.mark.parametrize("method,grain_size", [("growth", 10), ("growth", 24), ("voronoi", 10), ("voronoi", 24)])
def test_requested_mean_size_is_met(method, grain_size):
    lab, q = synth_grains(SHAPE, grain_size, method=method, seed=grain_size)
    tab = grain_table(lab, q)
    assert abs(tab.size.mean() / grain_size - 1) < 0.15


def test_grains_are_connected_clean_and_found_again_by_reconstruction():
    # a sharp texture makes close neighbours likely: they must have been redrawn
    lab, q = synth_grains(SHAPE, 12, texture="cube:0.5:4,goss:0.3:4", seed=3)
    n = lab.max() + 1
    area = np.bincount(lab.ravel())
    assert area.min() >= 10
    for g in range(n):  # every grain one 4-connected region
        assert ndimage.label(lab == g)[1] == 1
    m = EBSDMap.from_euler(quat_to_euler(q)[lab])
    assert _same_partition(reconstruct(m, 10.0).labels, lab)
    tab = grain_table(lab, q)
    assert tab.disorientation_deg.min() > 10.0
    # clean() (twin merging included) leaves the map as it is
    c = clean(m)
    assert np.rad2deg(disorientation_angle(euler_to_quat(c.euler), euler_to_quat(m.euler))).max() < 1e-3


def test_growth_has_broad_right_skewed_sizes_and_voronoi_is_narrower(growth_random):
    s = growth_random[2].size
    s = s / s.mean()
    skew = np.mean((s - 1) ** 3) / s.std() ** 3
    assert s.std() > 0.3 and skew > 0.2
    lab = voronoi_labels(SHAPE, 10, rng=2)
    v = np.sqrt(4 * np.bincount(lab.ravel()) / np.pi)
    assert (v / v.mean()).std() < s.std()


def test_laguerre_size_cv_widens_the_size_distribution():
    def cv(size_cv):
        lab = voronoi_labels(SHAPE, 14, size_cv=size_cv, rng=5)
        d = np.sqrt(4 * np.bincount(lab.ravel()) / np.pi)
        return d.std() / d.mean()
    assert cv(0.6) > cv(0.0) + 0.1


def test_bimodal_grows_a_few_abnormal_grains():
    rng = np.random.default_rng(4)
    lab, abnormal = grain_growth_labels(SHAPE, 12, bimodal=0.3, rng=rng, return_abnormal=True)
    area = np.bincount(lab.ravel())
    frac = area[abnormal].sum() / area.sum()
    assert 0.2 < frac < 0.4
    # the abnormal grains are far larger than the rest
    assert area[abnormal].min() > 5 * np.median(area[~abnormal])


def test_periodic_maps_wrap_around():
    lab = grain_growth_labels((128, 160), 14, periodic=True, rng=0)
    # the same grain continues across opposite edges (only boundaries that happen to lie on the
    # seam differ); without periodicity the edge columns are unrelated grains
    assert (lab[:, 0] == lab[:, -1]).mean() > 0.8
    assert (lab[0, :] == lab[-1, :]).mean() > 0.8
    lab2 = grain_growth_labels((128, 160), 14, periodic=False, rng=0)
    assert (lab2[:, 0] == lab2[:, -1]).mean() < 0.05


# ------------------------------------------------------------------------------ anisotropy
def _axis_angles(labels):
    """Area-weighted mean elongation direction (degrees from X towards Y) and mean axis ratio."""
    r, c = np.mgrid[0:labels.shape[0], 0:labels.shape[1]]
    L = labels.ravel()
    a = np.bincount(L).astype(float)
    mx, my = np.bincount(L, c.ravel()) / a, np.bincount(L, r.ravel()) / a
    cxx = np.bincount(L, c.ravel() ** 2) / a - mx**2
    cyy = np.bincount(L, r.ravel() ** 2) / a - my**2
    cxy = np.bincount(L, (c * r).ravel()) / a - mx * my
    ang2 = np.arctan2(2 * cxy, cxx - cyy)  # doubled angle: axes are undirected
    keep = a > 30
    z = np.sum(a[keep] * np.exp(1j * ang2[keep]))
    return np.rad2deg(np.angle(z) / 2) % 180


@pytest.mark.parametrize("method", ["growth", "voronoi"])
def test_anisotropy_raises_inertia_ratio_along_the_requested_direction(method):
    fn = grain_growth_labels if method == "growth" else voronoi_labels
    iso = fn(SHAPE, 16, rng=1)
    aniso = fn(SHAPE, 16, aspect=2.5, angle_deg=30, rng=1)
    q = np.tile([1.0, 0, 0, 0], (max(iso.max(), aniso.max()) + 1, 1))
    ir_iso = np.median(grain_table(iso, q[:iso.max() + 1]).inertia_ratio)
    ir = np.median(grain_table(aniso, q[:aniso.max() + 1]).inertia_ratio)
    # an ellipse with axis ratio a has inertia ratio a²; grains are irregular, so allow a band
    assert ir > 2 * ir_iso
    assert 0.6 * 2.5**2 < ir < 1.6 * 2.5**2
    assert abs(_axis_angles(aniso) - 30) < 8


# ------------------------------------------------------------------------------ texture
def test_random_texture_gives_mackenzie_disorientations(growth_random):
    tab = growth_random[2]
    assert len(tab.disorientation_deg) > 1000
    assert _mackenzie_w1(tab.disorientation_deg) < 1.5


def test_voronoi_random_texture_gives_mackenzie_disorientations():
    rng = np.random.default_rng(11)
    lab = voronoi_labels(SHAPE, 10, rng=rng)
    tab = grain_table(lab, assign_orientations(lab, None, rng))
    assert _mackenzie_w1(tab.disorientation_deg) < 1.5


def _random_share_within(theta_deg):
    """Share of uniformly random orientations within theta of a fixed one (cubic symmetry)."""
    th = np.linspace(0, theta_deg, 2000)
    return trapezoid(mackenzie_density(th), th)


def test_texture_components_cluster_at_the_right_place():
    spread = 5.0
    lab, q = synth_grains(SHAPE, 10, texture=f"cube:0.3:{spread},goss:0.25:{spread}", seed=21)
    n = len(q)
    assert n > 400
    # a component grain lies within 15° unless its Maxwell-distributed scatter angle exceeds 15°
    inside = chi.cdf(15.0 / spread, df=3)
    bg = _random_share_within(15.0)
    for name, frac in (("cube", 0.3), ("goss", 0.25)):
        near = np.rad2deg(disorientation_angle(q, ideal_orientation(name))) < 15.0
        expected = frac * inside + (1 - 0.55) * bg
        assert abs(near.mean() - expected) < 0.06, (name, near.mean(), expected)
    # and the rest of orientation space is not favoured: brass stays at the random level
    near_brass = np.rad2deg(disorientation_angle(q, ideal_orientation("brass"))) < 15.0
    assert near_brass.mean() < 0.45 * bg + 0.04


def test_fibre_puts_111_along_the_normal():
    q = sample_orientations(3000, "fibre111:1.0:3", rng=0)
    # crystal <111> directions in the sample frame: the best one is close to Z
    dirs = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / np.sqrt(3)
    z = np.stack([rotate_vector(q, np.broadcast_to(d, (len(q), 3)))[:, 2] for d in dirs], axis=1)
    ang = np.rad2deg(np.arccos(np.clip(np.abs(z).max(axis=1), 0, 1)))
    assert np.median(ang) < 6
    # free rotation about Z: φ1 covers the circle
    phi1 = quat_to_euler(q)[:, 0]
    assert np.histogram(phi1, bins=8, range=(0, 2 * np.pi))[0].min() > 200


def test_bad_texture_and_sizes_are_user_errors():
    with pytest.raises(InputError):
        parse_texture("cubic:0.3")
    with pytest.raises(InputError):
        parse_texture("cube:0.7,goss:0.6")
    with pytest.raises(InputError):
        synth_map((64, 64), 2.0)
    with pytest.raises(InputError):
        synth_map((64, 64), 10, method="poisson")


# ------------------------------------------------------------------------------ files and CLI
def test_corpus_is_written_resumable_and_reproducible(tmp_path):
    table = write_corpus(tmp_path, 3, size=(64, 64), seed=5, workers=1)
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [r["file"] for r in rows] == ["map_00000.ctf", "map_00001.ctf", "map_00002.ctf"]
    for r in rows:
        assert 8 <= r["grain_size"] <= 80 and 1 <= r["aspect"] <= 3
    first = read_map(tmp_path / "map_00001.ctf")
    mtime = (tmp_path / "map_00000.ctf").stat().st_mtime_ns
    (tmp_path / "map_00001.ctf").unlink()
    write_corpus(tmp_path, 3, size=(64, 64), seed=5, workers=2)
    assert (tmp_path / "map_00000.ctf").stat().st_mtime_ns == mtime  # skipped, not rewritten
    again = read_map(tmp_path / "map_00001.ctf")
    d = disorientation_angle(euler_to_quat(first.euler), euler_to_quat(again.euler))
    assert np.rad2deg(d).max() < 0.1
    with pytest.raises(InputError):
        write_corpus(tmp_path, 3, size=(64, 64), seed=6)


def test_cli_synth_writes_the_map_it_describes(tmp_path):
    out = tmp_path / "aniso.ctf"
    r = subprocess.run([sys.executable, "-m", "infinityebsd", "synth", "-o", str(out), "--size", "96x128",
                        "--grain-size", "12", "--aspect", "2", "--angle", "90", "--texture", "cube:0.4",
                        "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = read_map(out)
    assert m.shape == (96, 128) and m.indexed.all()
    g = reconstruct(m, 10.0)
    assert abs(np.sqrt(4 * g.area / np.pi).mean() / 12 - 1) < 0.2
    r = subprocess.run([sys.executable, "-m", "infinityebsd", "synth", "-o", str(out), "--texture", "foo:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "foo" in r.stderr
    for cmd in ("synth", "synth-corpus"):
        r = subprocess.run([sys.executable, "-m", "infinityebsd", cmd, "--help"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "Example" in r.stdout and f"infinityebsd {cmd}" in r.stdout


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_upsampling_interpolates_linearly_between_coarse_cell_centres(axis):
    """Fine cell j sits at coarse coordinate (j + 0.5)/2 − 0.5: on a linear ramp the interpolation is
    the ramp itself there (away from the wrapped ends), and it equals the wrap-around formula written
    with rolled copies."""
    from infinityebsd.data.synth import _upsample2

    rng = np.random.default_rng(axis)
    u = rng.random((5, 6, 7)).astype(np.float32)
    n = u.shape[axis]
    ramp = np.expand_dims(np.arange(n, dtype=np.float64) * 3.0 + 1.0, [a for a in range(3) if a != axis])
    ramp = np.broadcast_to(ramp, u.shape).copy()
    up = _upsample2(ramp, axis)
    x = (np.arange(2 * n) + 0.5) / 2 - 0.5
    inner = np.take(up, np.arange(1, 2 * n - 1), axis=axis)
    expect = np.expand_dims(x[1:-1] * 3.0 + 1.0, [a for a in range(3) if a != axis])
    assert np.allclose(inner, np.broadcast_to(expect, inner.shape))
    rolled = np.stack([0.75 * u + 0.25 * np.roll(u, 1, axis), 0.75 * u + 0.25 * np.roll(u, -1, axis)], axis=axis + 1)
    shape = list(u.shape)
    shape[axis] *= 2
    assert np.array_equal(_upsample2(u, axis), rolled.reshape(shape))

"""Orientation maths against orix and analytic results."""

import numpy as np
import pytest
from orix.quaternion import Orientation, symmetry
from scipy.integrate import trapezoid

from infinityebsd.crystal import (
    CUBIC_SYMMETRY, SIGMA3, axis_angle_to_quat, disorientation_angle, euler_to_quat, ipf_colors,
    is_sigma3, mackenzie_density, mean_orientation, qconj, qmul, quat_to_euler, random_quat,
    rotation_angle, sample_direction_in_crystal, to_fundamental_zone, to_standard_triangle,
)


def random_euler(n, rng):
    return np.stack([rng.uniform(0, 2 * np.pi, n), np.arccos(rng.uniform(-1, 1, n)),
                     rng.uniform(0, 2 * np.pi, n)], axis=1)


def test_euler_quat_matches_orix_conjugate(rng):
    e = random_euler(500, rng)
    ours = euler_to_quat(e)
    theirs = Orientation.from_euler(e).data  # orix stores sample->crystal, the inverse of ours
    same = np.abs(np.einsum("ij,ij->i", ours, qconj(theirs)))
    np.testing.assert_allclose(same, 1.0, atol=1e-12)


def test_euler_round_trip(rng):
    e = random_euler(1000, rng)
    back = quat_to_euler(euler_to_quat(e))
    np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", euler_to_quat(back), euler_to_quat(e))), 1, atol=1e-12)
    np.testing.assert_allclose(back, e, atol=1e-9)
    # degenerate Φ = 0 keeps the rotation
    e0 = np.array([[0.4, 0.0, 0.3]])
    np.testing.assert_allclose(np.abs(euler_to_quat(quat_to_euler(euler_to_quat(e0))) @ euler_to_quat(e0).T), 1)


def test_group_is_closed_and_of_order_24():
    prod = qmul(CUBIC_SYMMETRY[:, None], CUBIC_SYMMETRY[None, :]).reshape(-1, 4)
    # every product is ± one of the 24 elements
    match = np.abs(prod @ CUBIC_SYMMETRY.T).max(axis=1)
    np.testing.assert_allclose(match, 1.0, atol=1e-12)
    assert len(CUBIC_SYMMETRY) == 24
    # all 24 distinct as rotations
    overlap = np.abs(CUBIC_SYMMETRY @ CUBIC_SYMMETRY.T)
    assert (overlap[~np.eye(24, dtype=bool)] < 1 - 1e-6).all()


def test_symmetry_acts_on_the_crystal_side():
    e = np.deg2rad([[30.0, 40.0, 50.0]])
    e_phi2 = np.deg2rad([[30.0, 40.0, 140.0]])
    e_phi1 = np.deg2rad([[120.0, 40.0, 50.0]])
    q = euler_to_quat(e)
    assert np.rad2deg(disorientation_angle(q, euler_to_quat(e_phi2))[0]) < 1e-5
    assert np.rad2deg(disorientation_angle(q, euler_to_quat(e_phi1))[0]) > 1.0


def test_disorientation_matches_orix(rng):
    e1, e2 = random_euler(400, rng), random_euler(400, rng)
    ours = np.rad2deg(disorientation_angle(euler_to_quat(e1), euler_to_quat(e2)))
    o1 = Orientation.from_euler(e1, symmetry.Oh)
    o2 = Orientation.from_euler(e2, symmetry.Oh)
    theirs = np.rad2deg(np.array([o1[i].angle_with(o2[i])[0] for i in range(len(e1))]))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert ours.max() <= 62.8 + 1e-6


def test_disorientation_of_random_pairs_follows_mackenzie(rng):
    q1, q2 = random_quat(200_000, rng), random_quat(200_000, rng)
    ang = np.rad2deg(disorientation_angle(q1, q2))
    hist, edges = np.histogram(ang, bins=np.arange(0, 64, 2.0), density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    expected = mackenzie_density(centres)
    # the geometric density integrates to one and the sampled histogram follows it
    fine = np.linspace(0, 62.8, 2000)
    assert abs(trapezoid(mackenzie_density(fine), fine) - 1) < 5e-3
    assert np.abs(hist - expected).max() < 0.003
    # Mackenzie's closed form below 45°: (2/15)(1 - cos θ) per degree
    th = np.array([10.0, 30.0, 44.0])
    np.testing.assert_allclose(mackenzie_density(th), 2 / 15 * (1 - np.cos(np.deg2rad(th))), rtol=1e-9)
    assert 44 < centres[hist.argmax()] < 47


def test_fundamental_zone_reduction(rng):
    q = random_quat(2000, rng)
    fz = to_fundamental_zone(q)
    # same orientation, and the smallest rotation angle among all 24 equivalents
    assert np.rad2deg(disorientation_angle(q, fz)).max() < 1e-5  # arccos near 1 limits precision
    eq = qmul(q[:, None], CUBIC_SYMMETRY[None])
    np.testing.assert_allclose(rotation_angle(fz), rotation_angle(eq).min(axis=1), atol=1e-9)
    # orix agrees that the result lies in the Rodrigues fundamental zone: Oh reduction leaves it unchanged
    o = Orientation(qconj(fz), symmetry.Oh).reduce()
    np.testing.assert_allclose(np.abs(np.einsum("ij,ij->i", o.data, qconj(fz))), 1, atol=1e-9)


def test_mean_orientation_recovers_centre_across_symmetry(rng):
    centre = random_quat(1, rng)[0]
    # members scattered by 2°, each replaced by a random symmetric equivalent
    noise = axis_angle_to_quat(rng.standard_normal((300, 3)), np.deg2rad(rng.uniform(0, 2, 300)))
    members = qmul(qmul(centre, noise), CUBIC_SYMMETRY[rng.integers(0, 24, 300)])
    mean = mean_orientation(members, np.zeros(300, int), 1)
    assert np.rad2deg(disorientation_angle(mean[0], centre)) < 0.3
    # orix's mean of the symmetry-reduced set agrees
    o = Orientation(qconj(to_fundamental_zone(members, np.broadcast_to(centre, members.shape))), symmetry.Oh)
    np.testing.assert_allclose(np.rad2deg(disorientation_angle(qconj(o.mean().data[0]), mean[0])), 0, atol=1e-3)


def test_sigma3_test(rng):
    q = random_quat(200, rng)
    twin = qmul(q, SIGMA3)
    assert is_sigma3(q, twin).all()
    near = qmul(twin, axis_angle_to_quat(rng.standard_normal((200, 3)), np.deg2rad(5.0)))
    assert is_sigma3(q, near).all()
    far = qmul(twin, axis_angle_to_quat(rng.standard_normal((200, 3)), np.deg2rad(12.0)))
    assert not is_sigma3(q, far).any()
    # 60° about <100> is not Σ3, though it has the same angle
    not_twin = qmul(q, axis_angle_to_quat([1, 0, 0], np.deg2rad(60)))
    assert not is_sigma3(q, not_twin).any()
    # random pairs: Σ3 fraction is small, and symmetric equivalents do not change the answer
    r = random_quat(200, rng)
    assert is_sigma3(q, r).mean() < 0.05
    sym = qmul(twin, CUBIC_SYMMETRY[rng.integers(0, 24, 200)])
    assert is_sigma3(q, sym).all()


def test_ipf_direction_and_colours_match_orix(rng):
    from orix.vector import Vector3d

    q = random_quat(300, rng)
    ours = to_standard_triangle(sample_direction_in_crystal(q))
    o = Orientation(qconj(q), symmetry.Oh)
    v = (o * Vector3d.zvector()).in_fundamental_sector(symmetry.Oh).unit.data
    # orix's sector may be a mirror image of ours; compare the sorted absolute components
    np.testing.assert_allclose(np.sort(np.abs(v), 1), np.sort(ours, 1), atol=1e-9)
    # corner colours: [001] red, [101] green, [111] blue
    red = ipf_colors(euler_to_quat(np.zeros(3)))
    np.testing.assert_allclose(red, [1, 0, 0], atol=1e-12)
    green = ipf_colors(axis_angle_to_quat([0, 1, 0], np.deg2rad(45)))  # crystal [101] along sample Z
    np.testing.assert_allclose(green, [0, 1, 0], atol=1e-6)
    z111 = np.array([1, 1, 1]) / np.sqrt(3)
    axis = np.cross(z111, [0, 0, 1])
    blue = ipf_colors(axis_angle_to_quat(axis, -np.arccos(z111[2])))
    np.testing.assert_allclose(blue, [0, 0, 1], atol=1e-6)
    # colours depend on the orientation, not on which symmetric equivalent is stored
    c1 = ipf_colors(q)
    c2 = ipf_colors(qmul(q, CUBIC_SYMMETRY[rng.integers(0, 24, len(q))]))
    np.testing.assert_allclose(c1, c2, atol=1e-9)

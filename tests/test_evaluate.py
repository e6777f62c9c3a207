"""Evaluation: distances, references, texture, homogeneity, seams, border grains, report and CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from infinityebsd.crystal import axis_angle_to_quat, qmul, quat_to_euler, random_quat
from infinityebsd.data.synth import synth_map
from infinityebsd.evaluate.compare import (
    ALL_METRICS, compare_tables, ks_statistic, l2_distance, mackenzie_w1, odf_section, sample_distances,
)
from infinityebsd.evaluate.border_grains import border_grains
from infinityebsd.evaluate.homogeneity import compare_homogeneity, homogeneity
from infinityebsd.evaluate.measure import measure, sub_table
from infinityebsd.evaluate.seams import seam_statistics
from infinityebsd.io import EBSDMap, write_ctf
from infinityebsd.metrics import distributions, grain_table, read_metrics_json
from infinityebsd.pipeline.planner import Plan

from conftest import block_labels


@pytest.fixture(scope="module")
def wide():
    """One grain-growth structure, 256×512: its two 256×256 halves are disjoint crops of it."""
    return measure(synth_map((256, 512), 14, seed=3))


@pytest.fixture(scope="module")
def coarse():
    return measure(synth_map((256, 256), 28, seed=4))


# ------------------------------------------------------------------------------------ distance maths
def test_distance_definitions_analytic():
    rng = np.random.default_rng(0)
    a = rng.normal(10, 2, 4000)
    d = sample_distances(a, a + a.std(), "size")  # shift by one target σ: W1/σ is exactly 1
    assert d["w1"] == pytest.approx(1.0, rel=1e-9)
    b = rng.normal(0, 1, 300)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    # weighted KS with unit weights is the plain KS
    assert ks_statistic(a[:200], b, np.ones(200), np.ones(300)) == pytest.approx(stats.ks_2samp(a[:200], b).statistic)
    assert l2_distance([1, 0], [0, 1]) == pytest.approx(np.sqrt(2))
    far = sample_distances(np.zeros(10) + 1.0, np.zeros(10) + 100.0, "size")
    assert far["ks"] == 1.0 and far["l2"] == pytest.approx(np.sqrt(2))
    # by hand: the empirical CDFs of 1,2,3,4 and 3,4,5,6 differ most (by 1/2) between 2 and 3
    assert ks_statistic(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6])) == 0.5
    # weighted: 1 (weight 3) and 2 (weight 1) against 2: F = 3/4 against 0 at 1
    assert ks_statistic(np.array([1.0, 2]), np.array([2.0]), np.array([3.0, 1]), np.array([1.0])) == 0.75
    # and W1/σ by hand: moving 1,2,3,4 (σ = √1.25) by 2 costs 2
    d = sample_distances(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6]), "size")
    assert d["w1"] == pytest.approx(2 / np.sqrt(1.25)) and d["ks"] == 0.5


def test_self_distances_are_zero(wide):
    d = compare_tables(wide.table, wide.table)
    assert set(d) == set(ALL_METRICS)
    for name, v in d.items():
        assert v["l2"] == 0 and v["w1"] == 0 and v["ks"] == 0, name


def test_disjoint_crop_small_doubled_size_large(wide, coarse):
    left, right = (sub_table(wide.labels, wide.quat, b) for b in ((0, 0, 256, 256), (0, 256, 256, 256)))
    same = compare_tables(left, right)
    double = compare_tables(left, coarse.table)
    for name in ("size", "perimeter", "size_area_weighted"):
        assert same[name]["w1"] < 0.35, (name, same[name])
        assert same[name]["ks"] < 0.2, (name, same[name])
        assert double[name]["w1"] > 1.0, (name, double[name])
        assert double[name]["ks"] > 0.5, (name, double[name])
        assert double[name]["l2"] > 3 * same[name]["l2"], name
    # metrics that do not depend on grain size stay close either way
    assert double["disorientation"]["ks"] < 0.15


def test_metrics_json_target_round_trip(tmp_path):
    from infinityebsd.cli import main

    m = synth_map((128, 128), 12, seed=7)
    write_ctf(m, tmp_path / "m.ctf")
    p = tmp_path / "m.json"
    r = CliRunner().invoke(main, ["metrics", str(tmp_path / "m.ctf"), "--json", str(p)])
    assert r.exit_code == 0, r.output
    t = read_metrics_json(p)
    for name, v in compare_tables(measure(m).table, t).items():
        assert v["w1"] < 1e-4 and v["ks"] < 0.02, name  # CTF keeps angles to ~1e-4 rad


# ------------------------------------------------------------------------------------ texture
def test_mackenzie_near_zero_for_random_orientations():
    labels = block_labels(256, 256, 8, 8)
    n = labels.max() + 1
    t_random = grain_table(labels, random_quat(n, 1))
    assert len(t_random.disorientation_deg) > 1500
    assert mackenzie_w1(t_random.disorientation_deg) < 1.0
    # a sharp cube texture: neighbours are nearly aligned, far from Mackenzie
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(n, 3))
    spread = axis_angle_to_quat(axes, np.deg2rad(rng.normal(0, 5, n)))
    t_cube = grain_table(labels, spread)
    assert mackenzie_w1(t_cube.disorientation_deg) > 20.0


def test_odf_section_is_one_mrd_for_random_and_peaks_for_cube():
    q = random_quat(4000, 5)
    e = np.rad2deg(quat_to_euler(q))
    sec = odf_section(e)
    assert sec.mean() == pytest.approx(1.0, abs=0.15)
    cube = qmul(axis_angle_to_quat(np.random.default_rng(1).normal(size=(300, 3)), np.deg2rad(3.0)),
                np.array([1.0, 0, 0, 0]))
    sc = odf_section(np.rad2deg(quat_to_euler(cube)))
    # the cube orientation (0, 0, 45°) lies on the φ2 = 45° section, at Φ = 0
    assert sc[0].max() > 20 and sc[0].max() > 10 * np.median(sc)


# ------------------------------------------------------------------------------------ homogeneity
def test_homogeneous_map_stays_within_target_crop_spread():
    gen = measure(synth_map((256, 256), 14, seed=11))
    tgt = measure(synth_map((256, 256), 14, seed=12))
    from infinityebsd.evaluate.compare import common_edges, metric_sample

    edges = {k: common_edges(metric_sample(tgt.table, k)[0], metric_sample(gen.table, k)[0], k) for k in ALL_METRICS}
    comp = compare_homogeneity(homogeneity(gen, 16, edges=edges), homogeneity(tgt, 16, edges=edges))
    for name in ("size", "perimeter", "coordination", "disorientation"):
        assert comp[name]["spread_ratio"] < 1.5, (name, comp[name])
        assert comp[name]["inside_target_envelope"] >= 0.9, (name, comp[name])
    # a map whose left half is fine-grained and right half coarse is not homogeneous
    fine, coarse = synth_map((256, 128), 8, seed=13), synth_map((256, 128), 32, seed=14)
    het = measure(EBSDMap.from_euler(np.concatenate([fine.euler, coarse.euler], axis=1)))
    edges = {k: common_edges(metric_sample(tgt.table, k)[0], metric_sample(het.table, k)[0], k) for k in ALL_METRICS}
    hh = compare_homogeneity(homogeneity(het, 16, edges=edges), homogeneity(tgt, 16, edges=edges))
    assert hh["size_area_weighted"]["spread_ratio"] > 1.5
    assert hh["size_area_weighted"]["inside_target_envelope"] < 0.5


# ------------------------------------------------------------------------------------ seams
PLAN = Plan(canvas=(256, 256), patch=128, input_box=None, windows=[(0, 0), (0, 128), (128, 0), (128, 128)],
            waves=[[0, 1, 2, 3]])
PLAN_64 = Plan(canvas=(64, 64), patch=32, input_box=None, windows=[(0, 0), (0, 32), (32, 0), (32, 32)],
               waves=[[0, 1, 2, 3]])


def test_seam_ratio_pasted_tiles_vs_seamless():
    tiles = [synth_map((128, 128), 14, seed=20 + k).euler for k in range(4)]
    pasted = EBSDMap.from_euler(np.concatenate([np.concatenate(tiles[:2], axis=1),
                                                np.concatenate(tiles[2:], axis=1)], axis=0))
    s_pasted = seam_statistics(measure(pasted).labels, PLAN)
    s_clean = seam_statistics(measure(synth_map((256, 256), 14, seed=30)).labels, PLAN)
    assert s_pasted["ratio"] > 1.5
    assert s_pasted["on_seam_fraction"] > 0.9  # a straight boundary all along the tile edges
    assert s_pasted["mean_run_seam"] > 5 * s_pasted["mean_run_control"]
    assert 0.8 < s_clean["ratio"] < 1.2
    assert s_clean["on_seam_fraction"] < 0.3


# ------------------------------------------------------------------------------------ border grains
def test_border_grains_identity_model_continues_everything():
    truth = measure(synth_map((256, 256), 16, seed=40))
    box = (64, 64, 128, 128)
    res = border_grains(truth, truth, box, box)
    assert res["n_cut_grains"] > 15
    assert res["continued_fraction"] == 1.0 and res["edge_continued_fraction"] == 1.0
    assert res["deep_continued_fraction"] == 1.0 and 0 < res["n_deep_cut_grains"] <= res["n_cut_grains"]
    for v in res["distances"].values():
        assert v["w1"] == 0 and v["ks"] == 0
    # a model that pastes an unrelated structure around the input continues almost nothing
    other = synth_map((256, 256), 16, seed=41)
    e = other.euler.copy()
    e[64:192, 64:192] = truth.map.euler[64:192, 64:192]
    bad = border_grains(truth, measure(EBSDMap.from_euler(e)), box, box)
    assert bad["continued_fraction"] < 0.3


def test_crossing_depth_counts_cells_of_the_same_grain_straight_outward():
    from infinityebsd.evaluate.border_grains import crossing_depth, crossing_edges

    lab = np.zeros((20, 20), np.int64)
    lab[:, 12:] = 1  # a boundary two cells right of the box's right side
    inner, outer = crossing_edges((5, 5, 5, 5), lab.shape)
    d = crossing_depth(lab, inner, outer, limit=4)
    side = np.sign(outer - inner) * (np.abs(outer - inner) == 1)  # +1: right side, -1: left side
    assert np.all(d[side == 1] == 2)   # columns 10 and 11, then grain 1
    assert np.all(d[side != 1] == 4)   # grain 0 goes on past the limit above, below and left


def test_a_boundary_along_the_border_is_told_from_a_missed_continuation():
    """Box rows/cols 10..25. Grain 4 fills columns 0..17 (crossing the top, left and bottom sides
    deeply); grain 0 fills rows 10..25, columns 18..26, so it crosses the right side by one cell. The
    extension ends grain 0 on the box's edge: it counts as not continued, but the deep figure (grains
    going on >= 3 cells past the border) leaves it out."""
    rng = np.random.default_rng(0)
    eul = rng.uniform(0, [2 * np.pi, np.pi / 2, np.pi / 2], (6, 3))
    t = np.full((40, 40), 5, np.int64)
    t[:, :18] = 4
    t[10:26, 18:27] = 0
    t[:, 27:] = 1
    e = t.copy()
    e[10:26, 26] = 1
    box = (10, 10, 16, 16)
    truth, ext = measure(EBSDMap.from_euler(eul[t])), measure(EBSDMap.from_euler(eul[e]))
    res = border_grains(truth, ext, box, box)
    assert res["n_cut_grains"] == 2 and res["continued_fraction"] == 0.5
    assert res["n_deep_cut_grains"] == 1 and res["deep_continued_fraction"] == 1.0


# ------------------------------------------------------------------------------------ report and CLI
def _colours(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)[..., :3]
    return img, {tuple(c) for c in np.rint(img.reshape(-1, 3) * 255).astype(int)}


def _check_report_figures(folder, m):
    """The figures show what they claim: the IPF panels hold the IPF colours of the map's largest
    grains, and the histograms the target's grey bars and the generated map's red line."""
    from infinityebsd.evaluate.plots import ipf_image
    from infinityebsd.grains import clean_with_grains

    cm, g = clean_with_grains(m)
    rgb = np.rint(ipf_image(cm) * 255).astype(int)
    big = np.argsort(g.area)[-5:]
    img, _ = _colours(folder / "ipf.png")
    img = np.rint(img * 255).astype(int)
    for k in big:
        r, c = np.argwhere(g.labels == k)[0]
        # a patch of the grain's colour (8-bit rounding aside), far more pixels than the colour key
        # holds of any one colour: the grain (≥ 40 cells) is drawn at several pixels a cell
        match = (np.abs(img - rgb[r, c]).max(axis=-1) <= 2).sum()
        assert match >= 10 * g.area[k], (k, match, g.area[k])
    _, hist = _colours(folder / "histograms.png")
    assert (170, 170, 170) in hist and (192, 80, 77) in hist  # #aaaaaa bars, #c0504d generated line
    for name in ("texture", "homogeneity"):
        img, _ = _colours(folder / f"{name}.png")
        assert (img < 0.9).any(axis=-1).mean() > 0.05, name  # more than a blank page


def test_cli_evaluate_and_compare(tmp_path):
    from infinityebsd.cli import main

    a, b = tmp_path / "a.ctf", tmp_path / "b.ctf"
    write_ctf(synth_map((128, 128), 12, seed=50), a)
    write_ctf(synth_map((128, 128), 12, seed=51), b)
    plan = Plan(canvas=(128, 128), patch=64, input_box=None, windows=[(0, 0), (0, 64), (64, 0), (64, 64)],
                waves=[[0, 1, 2, 3]])
    (tmp_path / "a.ctf.plan.json").write_text(plan.to_json())
    r = CliRunner().invoke(main, ["evaluate", str(a), "--target", str(a), "--report", str(tmp_path / "rep"),
                                  "--crops", "4"])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert all(v["w1"] == 0 and v["ks"] == 0 for v in s["distances"].values())
    # the Voronoi reference is made at the target's mean size and the generated map's shape, and its
    # grains come out near that size (a reference made at another size would not)
    assert s["voronoi"]["shape"] == [128, 128]
    assert s["voronoi"]["grain_size"] == pytest.approx(s["mean_size"]["target"])
    vor_mean = np.mean(measure(synth_map((128, 128), s["voronoi"]["grain_size"], method="voronoi", seed=0),
                               clean=False).table.size)
    assert vor_mean == pytest.approx(s["mean_size"]["target"], rel=0.25)
    assert s["voronoi"]["grains"] == pytest.approx(128 * 128 / (np.pi * vor_mean**2 / 4), rel=0.3)
    assert "seams" in s and 0.7 < s["seams"]["ratio"] < 1.3
    assert set(s["figures"]) == {"ipf", "histograms", "texture", "homogeneity"}
    _check_report_figures(tmp_path / "rep", synth_map((128, 128), 12, seed=50))
    assert (tmp_path / "rep" / "report.md").read_text().count("![") == len(s["figures"])
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--labels", "real,model", "--report",
                                  str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert set(s["comparisons"]) == {"model"}
    r = CliRunner().invoke(main, ["evaluate", str(a), "--input-box", "1,2,3,4", "--report", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--truth" in r.output


def _same(a, b) -> bool:
    """Equal nested results, floats to 1e-9 (summation order may differ in the last bit)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True)
    return a == b


def test_evaluate_is_measure_then_summarize_then_write(tmp_path):
    # The three steps, run one by one, give what evaluate gives; each can be inspected on its own.
    from infinityebsd.evaluate.report import evaluate, measure_maps, summarize, write_figures, write_report

    gen, tgt = synth_map((64, 64), 8, seed=60), synth_map((64, 64), 8, seed=61)
    meas = measure_maps(gen, target=tgt, plan=PLAN_64, seed=3)
    assert meas.generated.shape == (64, 64) and meas.target is not None and meas.truth is None
    assert set(meas.references) == {"voronoi"} and meas.box_generated is None
    ev = summarize(meas, crops=4)
    assert ev.summary["grains"] == {"generated": meas.generated.table.n, "target": meas.target.table.n}
    assert ev.summary["seams"]["n_seams"] == 4  # the two inner lines, each cut in two by the windows
    figs = write_figures(ev, tmp_path / "steps")
    assert set(figs) == {"ipf", "histograms", "texture", "homogeneity"}
    write_report({**ev.summary, "figures": figs}, tmp_path / "steps")
    whole = evaluate(gen, target=tgt, plan=PLAN_64, seed=3, crops=4)
    for key in ("distances", "real_vs_real", "target_vs_voronoi", "seams"):
        assert _same(whole[key], ev.summary[key]), key
    assert json.loads((tmp_path / "steps" / "summary.json").read_text())["grains"] == ev.summary["grains"]


def test_read_plan_gives_the_plan_object_and_a_user_error_for_other_json(tmp_path):
    from infinityebsd.errors import InputError
    from infinityebsd.evaluate.seams import read_plan

    p = tmp_path / "a.plan.json"
    p.write_text(PLAN_64.to_json())
    assert read_plan(p) == PLAN_64
    p.write_text(json.dumps({"canvas": [4, 4]}))
    with pytest.raises(InputError, match="not a generation plan"):
        read_plan(p)

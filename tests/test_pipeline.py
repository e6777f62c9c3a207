"""Generation mechanics with a tiny random-weight model: plans, input preservation, batching, resume."""

import subprocess
import sys

import numpy as np
import pytest

import infinityebsd as ie
from infinityebsd.errors import InputError
from infinityebsd.grains import clean
from infinityebsd.pipeline.planner import make_plan, place_input

from conftest import REPO

EXAMPLE = REPO / "src" / "infinityebsd" / "examples" / "example_256.ctf"


@pytest.fixture(scope="module")
def pipe(tiny_model):
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.inpaint import InpaintPipeline

    return InpaintPipeline(load_model(tiny_model))


@pytest.fixture(scope="module")
def small_input():
    return ie.read_map(EXAMPLE).crop(10, 20, 48, 40)


def _replay(plan):
    """Run a plan on masks only: how often each cell is written (a window writes its cells not yet
    known), and whether a window of a wave writes inside another window of the same wave."""
    known = plan.known_mask()
    count = np.zeros(plan.canvas, int)
    P = plan.patch
    interfere = adjacent = False
    for wave in plan.waves:
        foot = np.zeros(plan.canvas, int)
        writes = []
        for i in wave:
            r, c = plan.windows[i]
            sl = (slice(r, r + P), slice(c, c + P))
            foot[sl] += 1
            w = np.zeros(plan.canvas, bool)
            w[sl] = ~known[sl]
            writes.append(w)
            count += w
        for w in writes:  # a window's new cells must lie in no other window of its wave
            interfere |= bool((foot[w] > 1).any())
        for a in range(len(writes)):
            w = writes[a]
            grown = w.copy()
            grown[1:] |= w[:-1]
            grown[:-1] |= w[1:]
            grown[:, 1:] |= w[:, :-1]
            grown[:, :-1] |= w[:, 1:]
            for b in range(len(writes)):
                if b != a:
                    adjacent |= bool((grown & writes[b]).any())
        for w in writes:
            known |= w
    return count, interfere, adjacent


def test_window_origins_drop_a_sliver_window_and_keep_the_overlap():
    """Along one axis: first window at 0, last flush with the edge; windows every ``stride`` cells,
    unless a window fewer, evenly spread, still shares at least (1 − OVERLAP_GIVE) of the asked
    overlap, and then no fewer could (checked on many lengths). The 512→2048 grid (868 cells, window
    128, stride 104) takes 8 windows, not 9; 384 cells keep the stepped 0, 104, 208, 256."""
    from infinityebsd.pipeline.planner import OVERLAP_GIVE, _origins

    o = _origins(868, 128, 104)
    assert len(o) == 8 and o[0] == 0 and o[-1] == 740
    assert _origins(384, 128, 104) == [0, 104, 208, 256]
    dropped = 0
    for patch, stride in ((128, 104), (64, 32), (64, 48)):
        longest = stride + OVERLAP_GIVE * (patch - stride)
        for length in range(patch + 1, 1200, 7):
            o = np.array(_origins(length, patch, stride))
            stepped = sorted(set(range(0, length - patch, stride)) | {length - patch})
            assert o[0] == 0 and o[-1] == length - patch
            if list(o) == stepped:
                continue
            dropped += 1
            assert len(o) < len(stepped)
            gaps = np.diff(o)
            assert gaps.max() <= np.ceil(longest) and gaps.max() - gaps.min() <= 1
            if len(o) > 2:  # one window fewer, evenly spread, would share too little
                assert (length - patch) / (len(o) - 2) > longest
    assert dropped > 0
    assert _origins(100, 128, 104) == [0] and _origins(128, 128, 104) == [0]


@pytest.mark.parametrize("canvas, inp, place", [
    ((257, 301), (128, 130), "center"), ((64, 1000), (40, 40), "top-left"), ((300, 64), (64, 32), "bottom-right"),
    ((96, 96), (96, 96), "center"), ((333, 333), None, None), ((64, 64), (32, 32), "top-right"),
    ((129, 700), (100, 64), "bottom"),
])
def test_plans_write_every_cell_once(canvas, inp, place):
    P = 64
    box = None if inp is None else place_input(canvas, inp, place)
    plan = make_plan(canvas, P, box)
    count, interfere, adjacent = _replay(plan)
    known = plan.known_mask()
    assert (count[~known] == 1).all() and (count[known] == 0).all()
    assert not interfere and not adjacent
    for (r, c) in plan.windows:
        assert 0 <= r <= canvas[0] - P and 0 <= c <= canvas[1] - P
    # the plan survives its JSON form
    from infinityebsd.pipeline.planner import Plan

    assert Plan.from_json(plan.to_json()) == plan


def test_extension_keeps_input_and_size_and_batching_does_not_matter(pipe, small_input, tmp_path):
    from infinityebsd.pipeline.extend import extend

    kw = dict(seed=3, steps=3, progress=False)
    a = extend(pipe, small_input, (81, 97), batch=8, work_dir=tmp_path / "a", **kw)
    b = extend(pipe, small_input, (81, 97), batch=1, work_dir=tmp_path / "b", **kw)
    assert a.map.shape == (81, 97)
    r0, c0, h, w = a.input_box
    np.testing.assert_array_equal(a.map.euler[r0:r0 + h, c0:c0 + w], clean(small_input).euler)
    assert a.map.indexed.all()
    # same plan, same seeds: batched and one-by-one agree up to floating point noise
    differ = np.abs(a.map.euler - b.map.euler).max(axis=-1) > 1e-3
    assert differ.mean() < 0.01
    assert len(a.plan.waves) >= 2


def test_kill_and_resume_gives_the_uninterrupted_map(pipe, small_input, tmp_path):
    from infinityebsd.pipeline.extend import extend

    kw = dict(seed=5, steps=3, progress=False, batch=4)
    full = extend(pipe, small_input, (90, 90), work_dir=tmp_path / "full", **kw)
    stopped = extend(pipe, small_input, (90, 90), work_dir=tmp_path / "job", stop_after_waves=1, **kw)
    assert stopped is None and (tmp_path / "job" / "state.json").exists()
    resumed = extend(pipe, small_input, (90, 90), work_dir=tmp_path / "job", resume=True, **kw)
    np.testing.assert_allclose(resumed.map.euler, full.map.euler, atol=1e-6)
    assert not (tmp_path / "job").exists()  # the work folder goes once the map is written
    assert extend(pipe, small_input, (90, 90), work_dir=tmp_path / "job2", stop_after_waves=1, **kw) is None
    with pytest.raises(InputError, match="other options"):
        extend(pipe, small_input, (90, 91), work_dir=tmp_path / "job2", resume=True, **kw)


def test_a_size_under_one_window_is_the_size_asked_for(pipe, small_input):
    from infinityebsd.pipeline.extend import extend

    inp = small_input.crop(0, 0, 20, 24)  # the tiny model's window is 32 cells
    res = extend(pipe, inp, (30, 28), seed=2, steps=2, progress=False)
    assert res.map.shape == (30, 28) and res.plan.canvas == (30, 28)
    r0, c0, h, w = res.input_box
    assert (r0, c0, h, w) == (5, 2, 20, 24)
    np.testing.assert_array_equal(res.map.euler[r0:r0 + h, c0:c0 + w], clean(inp).euler)


def test_bad_sizes_are_refused(pipe, small_input):
    from infinityebsd.pipeline.extend import extend

    with pytest.raises(InputError, match="half"):
        extend(pipe, small_input.crop(0, 0, 10, 40), (64, 64), progress=False)
    with pytest.raises(InputError, match="smaller than the input"):
        extend(pipe, small_input, (40, 40), progress=False)


def test_prepare_scales_the_grid_by_the_median_grain_size_and_says_when_it_replaces_metrics(small_input):
    from infinityebsd.metrics import conditioning_tensor, metrics_of
    from infinityebsd.pipeline.extend import prepare

    t = metrics_of(small_input)
    med = float(np.median(t.size))
    info = {"grain_size_range_cells": [2 * med, 8 * med]}  # geometric middle 4 × the median: f = 4
    given = conditioning_tensor(t)
    logs = []
    prep = prepare((60, 50), 32, info, small_input, cond=given, log=logs.append)
    assert prep.f == pytest.approx(4.0)
    assert prep.grid == (240, 200) and prep.grid_box[2:] == (4 * 48, 4 * 40) and prep.box[2:] == (48, 40)
    assert len(logs) == 2 and "median grain size" in logs[0] and "replaced" in logs[1]
    assert not np.array_equal(np.nan_to_num(prep.cond), np.nan_to_num(given))
    logs.clear()
    prep = prepare((60, 50), 32, info, small_input, log=logs.append)  # nothing given, nothing replaced
    assert len(logs) == 1 and "replaced" not in logs[0]
    # without an input, the caller's median sets the scale and its metrics are kept as given
    prep = prepare((60, 50), 32, info, None, cond=given, median_size=med / 2, log=logs.append)
    assert prep.f == pytest.approx(8.0) and prep.cond is given and prep.grid_input is None


def test_the_noise_error_names_the_minimum_grain_area_in_use(rng):
    from infinityebsd.pipeline.extend import postprocess

    noise = rng.uniform(0, 1, (40, 40, 3)) * np.array([2 * np.pi, np.pi, 2 * np.pi])
    with pytest.raises(InputError, match="no grain of at least 50 cells"):
        postprocess(noise, None, None, min_area=50)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "infinityebsd", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_cli_extend_writes_valid_ctf_read_by_orix_and_defdap(tiny_model, small_input, tmp_path):
    inp = tmp_path / "in.ctf"
    ie.write_ctf(small_input, inp)
    out = tmp_path / "out.ctf"
    r = run_cli("extend", inp, "--size", "70x75", "-o", out, "--model", tiny_model, "--steps", "2", "--seed", "1")
    assert r.returncode == 0, r.stderr
    for suffix in (".png", ".plan.json", ".metrics.json"):
        assert (tmp_path / f"out{suffix}").exists()
    m = ie.read_map(out)
    assert m.shape == (70, 75) and m.step == small_input.step
    from orix import io as oio

    assert oio.load(out).shape == (70, 75)
    from defdap.file_readers import EBSDDataLoader

    loader = EBSDDataLoader.get_loader("oxfordtext", out)
    loader.load(out)
    assert loader.loaded_metadata["shape"] == (70, 75)
    np.testing.assert_allclose(np.rad2deg(np.asarray(loader.loaded_data.euler_angle, float)).transpose(1, 2, 0),
                               np.rad2deg(m.euler), atol=2e-4)


def test_waves_split_across_two_processes_give_the_one_process_map(tiny_model, small_input, tmp_path):
    """torchrun starts two gloo processes sharing each wave's windows; the map equals the one-process map."""
    import os

    inp = tmp_path / "in.ctf"
    ie.write_ctf(small_input, inp)
    args = ["-m", "infinityebsd", "extend", str(inp), "--size", "100x90", "--model", str(tiny_model), "--steps", "2",
            "--seed", "4", "--batch", "1", "--no-refine"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    one = subprocess.run([sys.executable, *args, "-o", str(tmp_path / "one.ctf")], env=env, capture_output=True,
                         text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-2000:]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--master_port", str(30500 + os.getpid() % 1000)]
    two = subprocess.run([*launch, *args, "-o", str(tmp_path / "two.ctf")], env=env, capture_output=True, text=True,
                         timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes share the windows of each wave" in two.stderr
    plan = make_plan((100, 90), 32, place_input((100, 90), small_input.shape, "center"))
    assert max(len(w) for w in plan.waves) >= 2  # the waves really were split
    a, b = ie.read_map(tmp_path / "one.ctf"), ie.read_map(tmp_path / "two.ctf")
    differ = np.abs(a.euler - b.euler).max(axis=-1) > 1e-3  # CTF angles carry 1e-4° rounding
    assert differ.mean() < 0.01
    assert not (tmp_path / "two.work").exists()  # every process removed its work folder


def test_cli_generation_errors(tiny_model, small_input, tmp_path):
    inp = tmp_path / "in.ctf"
    ie.write_ctf(small_input, inp)
    r = run_cli("extend", inp, "--size", "70x75", "-o", tmp_path / "o.ctf", "--model", tmp_path / "nope")
    assert r.returncode == 2 and "no such model folder" in r.stderr and "Traceback" not in r.stderr
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(tiny_model, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    r = run_cli("extend", inp, "--size", "70x75", "-o", tmp_path / "o.ctf", "--model", broken)
    assert r.returncode == 2 and "cannot load the model" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("extend", inp, "--size", "30x30", "-o", tmp_path / "o.ctf", "--model", tiny_model)
    assert r.returncode == 2 and "smaller than the input" in r.stderr
    r = run_cli("generate", "--size", "64x64", "-o", tmp_path / "o.ctf", "--model", tiny_model)
    assert r.returncode == 2 and "--like" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"metrics": {"grain_size": {"values": [1, 2]}}}')
    r = run_cli("generate", "--metrics", bad, "--size", "64x64", "-o", tmp_path / "o.ctf", "--model", tiny_model)
    assert r.returncode == 2 and "unknown metric 'grain_size'" in r.stderr


def test_target_json_in_micrometres_matches_cells(tmp_path):
    from infinityebsd.pipeline.targets import cond_from_json, target_from_json

    sizes = np.random.default_rng(0).gamma(4, 5, 500)
    import json

    (tmp_path / "um.json").write_text(json.dumps(
        {"units": "um", "step": 2.0, "metrics": {"size": {"values": (sizes * 2).tolist()}}}))
    (tmp_path / "cells.json").write_text(json.dumps({"metrics": {"size": {"values": sizes.tolist()}}}))
    a = target_from_json(tmp_path / "um.json")
    b = target_from_json(tmp_path / "cells.json")
    np.testing.assert_allclose(a.cond[0], b.cond[0], rtol=1e-6, atol=1e-6)
    assert np.isnan(a.cond[1:]).all()
    for t in (a, b):  # the median sets a model's grid scale, the mean is grain growth's target
        assert t.median_size == pytest.approx(np.median(sizes)) and t.mean_size == pytest.approx(sizes.mean())
    assert cond_from_json(tmp_path / "cells.json")[1] == pytest.approx(sizes.mean())
    # a histogram: 1/4 of the grains in [0, 10), 3/4 in [10, 30): the median lies a third into the
    # second bin, the mean is 0.25 * 5 + 0.75 * 20
    (tmp_path / "hist.json").write_text(json.dumps(
        {"metrics": {"size": {"edges": [0, 10, 30], "density": [0.025, 0.0375]}}}))
    h = target_from_json(tmp_path / "hist.json")
    assert h.median_size == pytest.approx(10 + 20 / 3) and h.mean_size == pytest.approx(16.25)
    for name in ("target_metrics.json", "sizes_only.json"):
        c = target_from_json(REPO / "src" / "infinityebsd" / "examples" / name).cond
        assert np.isfinite(c[0]).all()


def test_matching_crystallography_moves_disorientations_to_target_and_spares_fixed_grains(rng):
    from infinityebsd.crystal import disorientation_angle, mackenzie_density, random_quat
    from infinityebsd.metrics import grain_table
    from infinityebsd.pipeline.crystallography import BINS, match_crystallography
    from conftest import block_labels

    labels = block_labels(240, 240, 12, 12)  # 400 square grains
    n = labels.max() + 1
    t = grain_table(labels, random_quat(n, rng))
    # start far from the target: all grains near one orientation (low-angle boundaries)
    from infinityebsd.crystal import axis_angle_to_quat, qmul

    base = random_quat(1, rng)[0]
    q0 = qmul(base, axis_angle_to_quat(rng.standard_normal((n, 3)), np.deg2rad(rng.uniform(0, 20, n))))
    centres = (BINS[:-1] + BINS[1:]) / 2
    target = mackenzie_density(centres)
    target /= target.sum()
    editable = np.ones(n, bool)
    editable[:40] = False
    pool = random_quat(2000, rng)  # random-texture target grains
    q = match_crystallography(t.pairs, q0, editable, target, target_quat=pool, seed=1)
    np.testing.assert_array_equal(q[:40], q0[:40])

    def l2(qq):
        d = np.rad2deg(disorientation_angle(qq[t.pairs[:, 0]], qq[t.pairs[:, 1]]))
        h, _ = np.histogram(d, bins=BINS)
        return np.sqrt(np.sum((h / h.sum() - target) ** 2))

    assert l2(q) < 0.5 * l2(q0)
    # swaps only exchange orientations: the multiset of editable orientations is a draw from the pool
    assert np.isin(np.round(q[40:], 9), np.round(pool, 9)).all(axis=1).all()


def test_generated_cells_that_continue_a_known_grain_take_its_orientation(rng):
    from infinityebsd.crystal import axis_angle_to_quat, disorientation_angle, euler_to_quat, qmul, quat_to_euler
    from infinityebsd.pipeline.continuation import continue_grains

    P = 40
    A, B = np.deg2rad([10.0, 20.0, 30.0]), np.deg2rad([50.0, 35.0, 5.0])
    truth = np.zeros((P, P, 3))
    truth[:20] = A
    truth[20:] = B
    known = np.zeros((P, P), bool)
    known[:, :20] = True
    # the decoder's view: the two grains run on across the border, each cell off by 2° about a random axis;
    # a third grain C, 40° from B, sits in the lower right corner
    q = euler_to_quat(truth)
    C = qmul(axis_angle_to_quat([1.0, 0.0, 0.0], np.deg2rad(40.0)), euler_to_quat(B))
    q[30:, 30:] = C
    axes = rng.normal(size=(P, P, 3))
    noisy = qmul(axis_angle_to_quat(axes / np.linalg.norm(axes, axis=-1, keepdims=True), np.deg2rad(2.0)), q)
    decoded = quat_to_euler(noisy)
    out = continue_grains(truth, known, decoded)
    np.testing.assert_array_equal(out[known], truth[known])
    got = euler_to_quat(out)
    exact = np.rad2deg(disorientation_angle(got, euler_to_quat(truth))) < 1e-3
    third = np.zeros((P, P), bool)
    third[30:, 30:] = True
    assert exact[~third].all()  # both grains continue with their exact orientations
    # the third grain keeps its decoded orientations: it continues nothing
    np.testing.assert_allclose(out[third], decoded[third])

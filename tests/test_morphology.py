"""Morphology-first generation: representations, segmentation, training items, the pipeline."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from conftest import block_labels
from infinityebsd.data.representation import (
    MORPHOLOGY_CHANNELS, boundary_cells, decode_morphology, distance_field, encode_morphology,
)
from infinityebsd.data.synth import grain_growth_labels
from infinityebsd.errors import InputError


def same_partition(a, b):
    """True when two label maps split the cells into the same regions (labels may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------
def test_distance_field_of_two_half_planes_is_the_distance_to_the_line():
    lab = np.zeros((20, 30), int)
    lab[:, 15:] = 1
    f = distance_field(lab, clip=8.0)
    # cells 14 and 15 touch the boundary (distance 0 -> -1); cell 15 - k is k-1 cells from cell 14
    d = (f + 1) / 2 * 8
    expected = np.minimum(np.abs(np.arange(30) - 14.5) - 0.5, 8)
    assert np.allclose(d[7], expected)


def test_known_field_sees_no_boundary_across_the_known_edge():
    lab = block_labels(32, 32, 32, 8)  # vertical stripes 8 cells wide
    known = np.zeros_like(lab, bool)
    known[:, :12] = True  # cuts the second stripe
    f = encode_morphology(lab, "distance", known=known)[0]
    assert (f[~known] == 0).all()
    # column 11 is the known edge; the stripe 8..15 continues there, so no boundary is drawn at 11
    assert not boundary_cells(lab, known)[:, 11].any()
    # and the known field does not depend on what lies in the unknown cells
    other = lab.copy()
    other[~known] = 999
    assert np.array_equal(f, encode_morphology(other, "distance", known=known)[0])


@pytest.mark.parametrize("kind", list(MORPHOLOGY_CHANNELS))
def test_encode_shape_and_range(kind):
    lab = grain_growth_labels((48, 48), 10, rng=0, workers=1)
    t = encode_morphology(lab, kind, rng=1)
    assert t.shape == (MORPHOLOGY_CHANNELS[kind], 48, 48) and t.dtype == np.float32
    assert t.min() >= -1 and t.max() <= 1


def test_unknown_representation_is_a_user_error():
    with pytest.raises(InputError, match="unknown morphology representation"):
        encode_morphology(np.zeros((4, 4), int), "colour")


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------
def test_decode_recovers_convex_grains_exactly():
    lab = block_labels(48, 48, 12, 12)
    dec = decode_morphology(encode_morphology(lab, "distance"), "distance")
    assert same_partition(lab, dec)


def test_decode_keeps_a_concave_grain_whole():
    # an L-shaped grain (two arms, two distance maxima) next to a square: two grains, not three
    lab = np.ones((40, 40), int)
    lab[:30, :12] = 0
    lab[18:30, :30] = 0
    dec = decode_morphology(encode_morphology(lab, "distance"), "distance")
    assert dec.max() == 1
    # the boundary band is flat (-1), so at the concave corner a cell or two may go either way
    agree = max((dec == lab).mean(), (dec == 1 - lab).mean())
    assert agree > 0.995


def test_decode_grain_growth_map_recovers_most_grains():
    lab = grain_growth_labels((96, 96), 10, rng=3, workers=1)
    dec = decode_morphology(encode_morphology(lab, "distance"), "distance")
    n = lab.max() + 1
    assert abs((dec.max() + 1) - n) <= 0.1 * n


def test_decode_floods_from_known_grains_and_numbers_new_ones_above():
    lab = block_labels(32, 32, 16, 16) + 5  # labels 5..8
    known = np.zeros(lab.shape, bool)
    known[:, :10] = True
    field = encode_morphology(lab, "distance")
    dec = decode_morphology(field, "distance", known_labels=np.where(known, lab, 0), known=known)
    assert np.array_equal(dec[known], lab[known])
    # the two known grains (5 and 7) continue to column 15; the right-hand grains are new: 8 and 9
    assert np.array_equal(dec[:, :16], lab[:, :16])
    assert set(np.unique(dec[:, 16:])) == {8, 9}


def test_decode_continues_a_cut_grain_without_a_boundary():
    lab = np.zeros((32, 32), int)  # one grain; the known half must simply continue
    known = np.zeros(lab.shape, bool)
    known[:, :16] = True
    dec = decode_morphology(encode_morphology(lab, "distance"), "distance", known_labels=lab, known=known)
    assert (dec == 0).all()


# ---------------------------------------------------------------------------------------------
# Training items
# ---------------------------------------------------------------------------------------------
def _corpus():
    from infinityebsd.train.morph import morph_conditioning

    labs = [grain_growth_labels((96, 96), 10, rng=k, workers=1) for k in range(2)]
    return [{"labels": lab, "cond": morph_conditioning(lab), "kind": "synthetic", "name": str(k)}
            for k, lab in enumerate(labs)]


def test_training_item_known_input_is_the_known_cells_field():
    from infinityebsd.train.morph import MorphWindows

    ds = MorphWindows(_corpus(), 32, "distance", seed=0)
    for i in range(6):
        item = ds[i]
        crop, m, known, cond, _ = ds.window(i)
        win = crop[m:-m, m:-m]
        # the input is computed from the known cells only: same whatever the unknown cells hold
        scrambled = np.where(known, win, 10_000)
        assert np.allclose(item["known"][0].numpy(), distance_field(scrambled, known))
        assert np.array_equal(item["mask"][0].numpy().astype(bool), known)
        # the target is the field of the crop with its margin, not of the bare window
        assert np.allclose(item["x"][0].numpy(), distance_field(crop)[m:-m, m:-m])
        assert item["cond"].shape == (8, 1024)


def test_training_items_are_a_function_of_the_index():
    from infinityebsd.train.morph import MorphWindows

    a = MorphWindows(_corpus(), 32, "distance", seed=4)
    b = MorphWindows(_corpus(), 32, "distance", seed=4)
    assert all(torch.equal(a[i]["x"], b[i]["x"]) for i in (0, 17, 99))
    assert not torch.equal(a[0]["x"], a[1]["x"])


# ---------------------------------------------------------------------------------------------
# Model, pipeline, extension
# ---------------------------------------------------------------------------------------------
TINY = {
    "name": "tiny-morph", "patch": 32, "representation": "distance", "space": "pixel", "distance_clip": 8.0,
    "grain_size_range_cells": [8.0, 13.0],
    "unet": {"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "block_out_channels": [16, 32],
             "layers_per_block": 1, "attention_head_dim": 2, "cross_attention_dim": 32, "norm_num_groups": 8},
    "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                  "prediction_type": "v_prediction", "clip_sample": False},
    "train_unet": {"lr": 1e-3, "batch": 2, "steps": 2, "warmup": 1, "ema_decay": 0.9, "synthetic_maps": 2,
                   "synthetic_size": 64},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from infinityebsd.train.morph import train_morphology

    out = tmp_path_factory.mktemp("morph")
    r = train_morphology(out, TINY, steps=2, batch=2, progress=False, log=lambda *a: None)
    assert r["step"] == 2 and not r["interrupted"]
    return out


def test_trained_folder_loads_as_a_pixel_model(tiny_model):
    from infinityebsd.models.ldm import load_model, read_info

    info = read_info(tiny_model)
    assert info["space"] == "pixel" and info["representation"] == "distance"
    m = load_model(tiny_model)
    assert m.vae is None and m.unet.config.in_channels == 3 and m.unet.config.out_channels == 1
    assert json.loads((tiny_model / "unet" / "config.json").read_text())["sample_size"] == 32


def test_pipeline_keeps_known_cells_and_batches_like_single_windows(tiny_model):
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.morph import MorphPipeline

    pipe = MorphPipeline(load_model(tiny_model), precision="fp32")
    lab = grain_growth_labels((32, 32), 10, rng=1, workers=1)
    known = np.zeros((2, 32, 32), bool)
    known[0, :, :16] = True
    known[1, :16] = True
    kf = np.stack([pipe.known_field(lab, k) for k in known])
    cond = np.full((8, 1024), np.nan, np.float32)
    both = pipe(kf, known, cond, seeds=[3, 4], steps=3, resample=2)
    one = pipe(kf[1:], known[1:], cond, seeds=[4], steps=3, resample=2)
    assert np.allclose(both[1], one[0], atol=1e-5)
    assert np.array_equal(both[:, 0][known], kf[:, 0][known])


def test_bfloat16_fields_match_fp32_and_keep_known_cells(tiny_model):
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.morph import MorphPipeline

    lab = grain_growth_labels((32, 32), 10, rng=1, workers=1)
    known = np.zeros((1, 32, 32), bool)
    known[0, :, :16] = True
    cond = np.full((8, 1024), np.nan, np.float32)
    out = {}
    for precision in ("fp32", "bf16"):
        pipe = MorphPipeline(load_model(tiny_model), precision=precision)
        assert pipe.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        kf = pipe.known_field(lab, known[0])[None]
        out[precision] = pipe(kf, known, cond, seeds=[3], steps=3, resample=2)
        assert np.array_equal(out[precision][:, 0][known], kf[:, 0][known])
    # bfloat16 keeps 8 bits of mantissa: the fields agree to well under the segmentation's
    # thresholds (h-maxima 0.05 on a field in [-1, 1])
    diff = np.abs(out["bf16"] - out["fp32"])[:, 0][~known]
    assert diff.mean() < 0.02 and diff.max() < 0.2


def test_auto_precision_is_bf16_only_where_the_cpu_flags_say_native():
    """``auto`` picks bfloat16 only on CPUs that compute it natively; the kernel's own flags
    (/proc/cpuinfo) are the independent record. oneDNN's bf16 check says yes on plain AVX-512 too,
    where emulated bf16 ran the UNet 2.6x slower than fp32."""
    import platform
    import re
    import subprocess

    from infinityebsd.models.precision import cpu_native_bf16

    flags = set()
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            if re.match(r"(flags|Features)\s*:", line):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:  # macOS: Intel Macs list their CPUID features; Apple silicon runs fp32 (no oneDNN bf16)
        if platform.machine() in ("x86_64", "AMD64"):
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.leaf7_features"], capture_output=True, text=True)
            flags = {"avx512_bf16"} if "AVX512BF16" in out.stdout.upper() else set()
    assert cpu_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("gamma", [5.0, None])
def test_min_snr_weighting_is_the_same_x0_weight_in_either_parameterisation(gamma):
    """For one x0 estimate, the weighted ε-loss and the weighted v-loss both equal min(snr, γ) times
    the squared x0 error (Hang et al. 2023); with no γ each is its own plain loss."""
    from infinityebsd.train.morph import diffusion_target, min_snr_weight

    g = torch.Generator().manual_seed(0)
    x, noise, x_hat = (torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    a = torch.tensor([0.999, 0.9, 0.6, 0.3, 0.05, 0.001], dtype=torch.float64).view(-1, 1, 1, 1)
    noisy = a.sqrt() * x + (1 - a).sqrt() * noise
    eps_hat = (noisy - a.sqrt() * x_hat) / (1 - a).sqrt()      # what a network predicting x_hat says
    v_hat = a.sqrt() * eps_hat - (1 - a).sqrt() * x_hat
    x0_err = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
    snr = (a / (1 - a)).view(-1)
    per = {}
    for pred, hat in (("epsilon", eps_hat), ("v_prediction", v_hat)):
        err = ((hat - diffusion_target(x, noise, a, pred)) ** 2).mean(dim=(1, 2, 3))
        per[pred] = min_snr_weight(a.view(-1), gamma, pred) * err
    if gamma is None:
        assert torch.allclose(per["epsilon"], snr * x0_err)
        assert torch.allclose(per["v_prediction"], (snr + 1) * x0_err)
    else:
        expect = torch.clamp(snr, max=gamma) * x0_err
        assert torch.allclose(per["epsilon"], expect) and torch.allclose(per["v_prediction"], expect)
    with pytest.raises(InputError):
        diffusion_target(x, noise, a, "sample")


def test_epsilon_model_trains_with_loader_workers_and_keeps_known_cells(tmp_path):
    """An ε-prediction config on a linear schedule trains (with data-loader processes, whose batches
    are those of the single-process loader), and its pipeline keeps the known cells exact."""
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.morph import MorphPipeline
    from infinityebsd.train.morph import train_morphology

    cfg = json.loads(json.dumps(TINY))
    cfg["scheduler"].update(prediction_type="epsilon", beta_schedule="linear")
    cfg["train_unet"]["min_snr_gamma"] = 0
    losses = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        seen = []
        r = train_morphology(out, cfg, steps=2, batch=2, num_workers=workers, progress=False, log=lambda *a: None,
                             callback=lambda step, loss: seen.append(loss))
        assert r["step"] == 2 and not r["interrupted"]
        losses[workers] = seen
    assert losses[0] and np.allclose(losses[0], losses[2])
    pipe = MorphPipeline(load_model(tmp_path / "w2"), precision="fp32")
    assert pipe.prediction == "epsilon"
    _assert_known_half_kept(pipe, 32, rng=1, seed=3, steps=3, resample=2)


def _assert_known_half_kept(pipe, size, rng, seed, steps, resample):
    """Sample a ``size``² grain-growth window with its left half known and no metrics: the known cells
    come back exactly as encoded, and every value is finite."""
    lab = grain_growth_labels((size, size), 10, rng=rng, workers=1)
    known = np.zeros((1, size, size), bool)
    known[0, :, : size // 2] = True
    kf = pipe.known_field(lab, known[0])[None]
    out = pipe(kf, known, np.full((8, 1024), np.nan, np.float32), seeds=[seed], steps=steps, resample=resample)
    assert np.array_equal(out[:, 0][known], kf[:, 0][known]) and np.isfinite(out).all()


def test_lite_config_costs_under_a_third_of_morph_per_window():
    """The measured variant's point is speed: count its forward FLOPs against morph's on the same
    128-cell window (torch's FLOP counter, independent of the configs' own claims)."""
    from torch.utils.flop_counter import FlopCounterMode

    from infinityebsd.models.morph import build_morph_unet, load_morph_config

    def flops(name):
        cfg = load_morph_config(name)
        net = build_morph_unet(cfg).eval()
        x = torch.zeros(1, net.config.in_channels, 128, 128)
        ctx = torch.zeros(1, cfg["metric_encoder"]["n_tokens"], cfg["unet"]["cross_attention_dim"])
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            net(x, torch.tensor([500]), ctx)
        return fc.get_total_flops(), sum(p.numel() for p in net.parameters())

    (lite, n_lite), (full, n_full) = flops("morph-lite"), flops("morph")
    assert lite < full / 3
    assert 0.8 < n_lite / n_full < 1.2  # cheaper by shape, not by fewer weights


def test_shipped_lite_folder_is_the_lite_network_with_the_default_sampler():
    """pretrained/morph-lite was evaluated with the default folder's sampler settings and is offered
    for its speed: it must load through the CLI loader as the morph-lite config's network, sample like
    the default, and keep the known half of a window exact."""
    from infinityebsd.cli.generate import DEFAULT_MODEL, load_pipeline
    from infinityebsd.models.ldm import read_info
    from infinityebsd.models.morph import load_morph_config

    lite_dir = DEFAULT_MODEL.parent / "morph-lite"
    pipe = load_pipeline(str(lite_dir), "cpu", precision="fp32")
    want = load_morph_config("morph-lite")["unet"]
    assert list(pipe.model.unet.config.block_out_channels) == want["block_out_channels"]
    assert list(pipe.model.unet.config.down_block_types) == want["down_block_types"]
    assert read_info(lite_dir)["sampling"] == read_info(DEFAULT_MODEL)["sampling"]
    _assert_known_half_kept(pipe, 64, rng=2, seed=0, steps=4, resample=1)


def test_inference_window_fits_the_canvas():
    from infinityebsd.pipeline.morph_extend import fit_window

    assert fit_window(None, 64, (500, 400)) == 64
    assert fit_window(128, 64, (500, 400)) == 128
    assert fit_window(128, 64, (100, 400)) == 96       # no larger than the canvas, a multiple of 8
    assert fit_window(130, 64, (500, 400)) == 128
    assert fit_window(128, 64, (64, 70)) == 64         # never under the training patch


def _input_map():
    from infinityebsd.data.synth import synth_map

    return synth_map((64, 64), 10, seed=2, workers=1)


def test_extension_keeps_the_input_and_resumes_to_the_same_map(tiny_model, tmp_path):
    from infinityebsd.grains import clean
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.extend import extend
    from infinityebsd.pipeline.morph import MorphPipeline

    pipe = MorphPipeline(load_model(tiny_model))
    m = _input_map()
    kw = dict(seed=5, steps=2, resample=1, progress=False, log=lambda *a: None)
    full = extend(pipe, m, (96, 80), **kw)
    r0, c0, h, w = full.input_box
    assert np.allclose(full.map.euler[r0:r0 + h, c0:c0 + w], clean(m).euler)
    # a window twice the training patch (the UNet is convolutional) fills the same canvas
    wide = extend(pipe, m, (96, 80), window=64, **kw)
    assert wide.plan.patch == 64 and wide.plan.n_windows < full.plan.n_windows
    assert np.allclose(wide.map.euler[r0:r0 + h, c0:c0 + w], clean(m).euler)
    stopped = extend(pipe, m, (96, 80), work_dir=tmp_path / "job", stop_after_waves=1, **kw)
    assert stopped is None
    resumed = extend(pipe, m, (96, 80), work_dir=tmp_path / "job", resume=True, **kw)
    assert np.array_equal(resumed.map.euler, full.map.euler)


def test_generated_grains_meet_the_minimum_area(tiny_model):
    from infinityebsd.grains import reconstruct
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.extend import extend
    from infinityebsd.pipeline.morph import MorphPipeline
    from infinityebsd.train.morph import morph_conditioning

    pipe = MorphPipeline(load_model(tiny_model))
    cond = morph_conditioning(grain_growth_labels((64, 64), 10, rng=0, workers=1))
    res = extend(pipe, None, (64, 64), cond=cond, seed=1, steps=2, resample=1, progress=False, log=lambda *a: None)
    g = reconstruct(res.map, 10.0)
    assert g.area.min() >= 10


def test_export_from_the_last_checkpoint_gives_the_final_ema_weights(tiny_model, tmp_path):
    from infinityebsd.models.ldm import load_model
    from infinityebsd.train.morph import export_checkpoint
    from infinityebsd.train.trainer import latest_checkpoint

    ck = latest_checkpoint(tiny_model / "checkpoints" / "morph")
    out = export_checkpoint(ck, tmp_path / "exported")
    a, b = load_model(tiny_model), load_model(out)
    for (na, pa), (nb, pb) in zip(a.unet.state_dict().items(), b.unet.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


def test_warm_start_continues_from_the_source_weights_and_rejects_another_network(tiny_model, tmp_path):
    from infinityebsd.models.ldm import load_model, read_info, write_info
    from infinityebsd.train.morph import train_morphology

    source = tmp_path / "source"
    shutil.copytree(tiny_model, source, ignore=shutil.ignore_patterns("checkpoints", "corpus.npz"))
    write_info(source, {**read_info(source), "sampling": {"steps": 4, "resample": 1}})
    quiet = dict(steps=1, batch=2, progress=False, log=lambda *a: None)
    # With a vanishing learning rate the run cannot move the weights, so what it exports is what it
    # loaded: the source's weights, not the new seed's random initialisation.
    warm = train_morphology(tmp_path / "warm", TINY, seed=7, lr=1e-12, init_from=source, **quiet)
    cold = train_morphology(tmp_path / "cold", TINY, seed=7, lr=1e-12, **quiet)
    assert warm["step"] == cold["step"] == 1
    src, w, c = (load_model(d) for d in (source, tmp_path / "warm", tmp_path / "cold"))
    for part in ("unet", "metric_encoder"):
        for (name, a), b in zip(getattr(src, part).state_dict().items(), getattr(w, part).state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), name
    assert not all(torch.equal(a, r) for a, r in zip(src.unet.state_dict().values(), c.unet.state_dict().values()))
    info = read_info(tmp_path / "warm")
    assert info["provenance"]["morph"]["init_from"]["folder"] == str(source)
    assert info["sampling"] == {"steps": 4, "resample": 1} and "sampling" not in read_info(tmp_path / "cold")

    other = json.loads(json.dumps(TINY))
    other["unet"]["block_out_channels"] = [16, 16]
    with pytest.raises(InputError, match="network differs"):
        train_morphology(tmp_path / "bad", other, init_from=source, **quiet)
    assert not (tmp_path / "bad").exists()  # refused before the corpus is drawn and cached
    with pytest.raises(InputError, match="not a readable model folder"):
        train_morphology(tmp_path / "bad2", TINY, init_from=tmp_path / "missing", **quiet)
    weights = next((source / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated copy
    with pytest.raises(InputError, match="not a readable model folder"):
        train_morphology(tmp_path / "bad3", TINY, init_from=source, **quiet)


def test_rescaled_conditioning_moves_the_size_distribution_by_the_factor():
    from infinityebsd.metrics import METRIC_NAMES, axis_values
    from infinityebsd.pipeline.morph_extend import median_ecd_of_cond, rescale_cond
    from infinityebsd.train.morph import morph_conditioning

    cond = morph_conditioning(grain_growth_labels((128, 128), 20, rng=0, workers=1))
    half = rescale_cond(cond, 0.5)
    assert median_ecd_of_cond(half) == pytest.approx(median_ecd_of_cond(cond) / 2, abs=0.5)
    k = METRIC_NAMES.index("coordination")
    assert np.array_equal(half[k], cond[k])
    v = axis_values("size")
    s = METRIC_NAMES.index("size")
    assert np.average(v, weights=half[s]) == pytest.approx(np.average(v, weights=cond[s]) / 2, rel=0.03)


def test_plan_is_drawn_at_grain_scale_and_matches_the_job(tiny_model):
    """Coarse grains (median ECD ~2x the model's range) run on a grid about half as fine, so the
    windows drawn on the output grid are about twice the model's; the plan --plan shows is the
    plan the job runs, and together with the input its windows cover the whole canvas."""
    from infinityebsd.data.synth import synth_map
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.extend import extend
    from infinityebsd.pipeline.morph import MorphPipeline
    from infinityebsd.pipeline.morph_extend import plan_morph

    pipe = MorphPipeline(load_model(tiny_model))
    pipe.sampling["overlap"] = 0.25  # a folder's sampling settings are the job's defaults
    m = synth_map((80, 80), 24, seed=3, workers=1)
    size = (160, 140)
    plan = plan_morph(pipe, m, size, overlap=0.25, log=lambda *a: None)
    assert plan.canvas == size
    assert 1.5 * pipe.patch <= plan.patch <= 3 * pipe.patch
    cover = np.zeros(size, bool)
    r0, c0, h, w = plan.input_box
    cover[r0:r0 + h, c0:c0 + w] = True
    for r, c in plan.windows:
        cover[r:r + plan.patch, c:c + plan.patch] = True
    assert cover[2:-2, 2:-2].all()  # rounding to the output grid may leave the last cell or two
    res = extend(pipe, m, size, seed=0, steps=1, progress=False, log=lambda *a: None)
    assert res.plan.windows == plan.windows and res.plan.patch == plan.patch


def test_train_morph_command_trains_calibrates_and_resumes(tmp_path):
    """The command line trains a model folder that loads as a pixel model, with segmentation
    thresholds chosen from the calibration grid, and --resume goes on from its checkpoint."""
    from infinityebsd.models.ldm import read_info

    from conftest import console_script

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    out = tmp_path / "m"
    base = [console_script(), "train-morph", "-o", str(out), "--config", str(cfg), "--batch", "2",
            "--checkpoint-every", "1"]
    r = subprocess.run(base + ["--steps", "2"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    info = read_info(out)
    assert info["space"] == "pixel" and info["provenance"]["morph"]["steps"] == 2
    assert info["decode"]["h"] in (0.05, 0.1, 0.15, 0.25)
    assert info["decode"]["merge_above"] in (-0.85, -0.7, -0.6, -0.5, -0.4)
    r = subprocess.run(base + ["--steps", "3", "--resume", "--no-calibrate"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_info(out)["provenance"]["morph"]["steps"] == 3


def test_folder_sampling_settings_are_the_defaults(tiny_model, monkeypatch):
    """Left out, a job's sampler settings are the model folder's: ``guidance_generate`` from metrics
    alone, ``guidance`` when extending a map, and the folder's steps and RePaint passes; given ones win."""
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.extend import extend
    from infinityebsd.pipeline.morph import MorphPipeline
    from infinityebsd.train.morph import morph_conditioning

    pipe = MorphPipeline(load_model(tiny_model))
    pipe.sampling.update(guidance_generate=4.0, guidance=1.5, steps=3, resample=1, guidance_until=0.4)
    seen = []
    real_call = MorphPipeline.__call__

    def spy(self, *args, **kw):
        seen.append((kw["guidance"], kw["steps"], kw["resample"], kw["guidance_until"]))
        return real_call(self, *args, **kw)

    monkeypatch.setattr(MorphPipeline, "__call__", spy)
    cond = morph_conditioning(grain_growth_labels((64, 64), 10, rng=0, workers=1))
    kw = dict(seed=1, progress=False, log=lambda *a: None)
    extend(pipe, None, (64, 64), cond=cond, **kw)
    assert set(seen) == {(4.0, 3, 1, 0.4)}
    seen.clear()
    extend(pipe, _input_map(), (80, 80), **kw)
    assert set(seen) == {(1.5, 3, 1, 0.4)}
    seen.clear()
    extend(pipe, None, (64, 64), cond=cond, guidance=2.0, steps=2, resample=2, guidance_until=1.0, **kw)
    assert set(seen) == {(2.0, 2, 2, 1.0)}


# ---------------------------------------------------------------------------------------------
# Size bound on generated grains, guidance interval
# ---------------------------------------------------------------------------------------------
def _growth_map_and_target():
    from infinityebsd.train.morph import morph_conditioning

    lab = grain_growth_labels((160, 160), 10 / 0.85, rng=3, workers=1)
    return lab, morph_conditioning(lab)


def test_lognormal_fit_of_the_target_matches_the_grains_ln_ecd():
    from infinityebsd.pipeline.morph_extend import lognormal_of_cond

    lab, cond = _growth_map_and_target()
    ln_ecd = np.log(np.sqrt(4 * np.bincount(lab.ravel()) / np.pi))
    mu, sig = lognormal_of_cond(cond)
    assert abs(mu - ln_ecd.mean()) < 0.05 and abs(sig - ln_ecd.std()) < 0.05


def test_split_leaves_grains_drawn_from_the_target_alone():
    from infinityebsd.pipeline.morph_extend import split_oversized

    lab, cond = _growth_map_and_target()
    out, n = split_oversized(lab, np.zeros(lab.shape, bool), cond)
    assert n == 0 and np.array_equal(out, lab)


def test_a_giant_generated_grain_is_cut_into_target_sized_pieces():
    from skimage.measure import label as cc_label

    from infinityebsd.pipeline.morph_extend import lognormal_of_cond, split_oversized

    lab, cond = _growth_map_and_target()
    giant = np.zeros(lab.shape, bool)
    giant[40:100, 50:120] = True  # one grain of 4200 cells, ~40 times the median grain
    lab = np.where(giant, lab.max() + 1, lab)
    out, n = split_oversized(lab, np.zeros(lab.shape, bool), cond, seed=0)
    assert n == 1
    assert np.array_equal(out[~giant], lab[~giant])  # nothing else moves
    mu, sig = lognormal_of_cond(cond)
    piece = np.pi / 4 * np.exp(2 * mu + 2 * sig ** 2)  # the log-normal's mean area
    pieces, area = np.unique(out[giant], return_counts=True)
    assert len(pieces) == round(giant.sum() / piece)
    assert area.max() < 2.5 * area.min()  # balanced, compact pieces
    assert all(cc_label(out == p, connectivity=1).max() == 1 for p in pieces)
    # a grain with a protected (input) cell is never cut
    prot = np.zeros(lab.shape, bool)
    prot[70, 80] = True
    kept, n = split_oversized(lab, prot, cond)
    assert n == 0 and np.array_equal(kept, lab)


def test_guidance_interval_zero_is_plain_conditional_sampling(tiny_model):
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.morph import MorphPipeline
    from infinityebsd.train.morph import morph_conditioning

    pipe = MorphPipeline(load_model(tiny_model))
    lab = grain_growth_labels((32, 32), 10, rng=1, workers=1)
    known = np.zeros((1, 32, 32), bool)
    known[0, :, :16] = True
    kf = pipe.known_field(lab, known[0])[None]
    cond = morph_conditioning(lab)
    kw = dict(seeds=[3], steps=4, resample=2)
    plain = pipe(kf, known, cond, guidance=1.0, **kw)
    none = pipe(kf, known, cond, guidance=3.0, guidance_until=0.0, **kw)
    half = pipe(kf, known, cond, guidance=3.0, guidance_until=0.5, **kw)
    full = pipe(kf, known, cond, guidance=3.0, **kw)
    assert np.allclose(none, plain, atol=1e-6)
    assert not np.allclose(half, plain, atol=1e-4) and not np.allclose(half, full, atol=1e-4)


def test_size_bound_is_exceeded_by_the_largest_of_lognormal_grains_at_the_stated_rate():
    """Maps of n grains drawn from the fitted log-normal itself (Monte Carlo): the largest grain
    exceeds the bound in a fraction alpha of them."""
    from infinityebsd.pipeline.morph_extend import lognormal_of_cond, oversize_area

    _, cond = _growth_map_and_target()
    mu, sig = lognormal_of_cond(cond)
    n, alpha = 400, 0.05
    rng = np.random.default_rng(7)
    ecd = np.exp(rng.normal(mu, sig, (4000, n)))  # 4000 maps of n grains
    largest = (np.pi / 4 * ecd**2).max(axis=1)
    assert abs((largest > oversize_area(cond, n, alpha)).mean() - alpha) < 0.015
    assert np.isnan(oversize_area(np.full((8, 1024), np.nan), n))  # no size target, no bound


def test_extension_continues_every_grain_cut_by_the_input_border(tiny_model):
    """Even an untrained network's fields (boundaries anywhere) leave each border cell's grain holding
    the cell just outside it: the rim the segmentation gives back to the cut grains. Judged on the
    final map: the same orientation on both sides of every edge crossing the input border."""
    from infinityebsd.crystal import disorientation_angle, euler_to_quat
    from infinityebsd.evaluate.border_grains import crossing_edges
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.extend import extend
    from infinityebsd.pipeline.morph import MorphPipeline

    pipe = MorphPipeline(load_model(tiny_model))
    res = extend(pipe, _input_map(), (112, 96), seed=3, steps=2, resample=1, progress=False, log=lambda *a: None)
    inner, outer = crossing_edges(res.input_box, res.map.shape)
    q = euler_to_quat(res.map.euler).reshape(-1, 4)
    assert len(inner) > 100
    assert np.rad2deg(disorientation_angle(q[inner], q[outer])).max() < 0.01


def test_relaxed_grains_come_back_only_while_the_map_is_coarser_than_its_target():
    """A 49-cell disc inside a large grain vanishes under curvature flow. With a target whose mean
    grain area (from the size distribution) implies three grains in the region, it is given back
    exactly; with a target of grains as large as the region's two, it stays gone."""
    from infinityebsd.metrics import METRIC_NAMES, axis_values
    from infinityebsd.pipeline.growth import relax
    from infinityebsd.pipeline.morph_extend import _restore_to_target, expected_grain_area

    r, c = np.indices((120, 120))
    before = (c >= 60).astype(np.int64)
    disc = (r - 60) ** 2 + (c - 30) ** 2 <= 16
    before[disc] = 2
    pin = np.zeros(before.shape, bool)
    after = relax(before, pin, steps=2)
    assert len(np.unique(after)) == 2

    def cond_of_ecd(ecd):
        cond = np.full((8, 1024), np.nan, np.float32)
        row = np.zeros(1024, np.float32)
        row[np.argmin(np.abs(axis_values("size") - ecd))] = 1.0
        cond[METRIC_NAMES.index("size")] = row
        return cond

    small = cond_of_ecd(np.sqrt(4 / np.pi * 120 * 120 / 3))  # three grains' worth of area each
    assert expected_grain_area(small) == pytest.approx(120 * 120 / 3, rel=0.05)
    back = _restore_to_target(before, after, pin, small)
    assert len(np.unique(back)) == 3
    assert len(np.unique(back[disc])) == 1 and (back == back[60, 30]).sum() == disc.sum()
    large = cond_of_ecd(np.sqrt(4 / np.pi * 120 * 120 / 2))
    assert np.array_equal(_restore_to_target(before, after, pin, large), after)
    # the same target on a grid twice as fine (the network's grain-scale grid) decides the same
    from infinityebsd.pipeline.morph_extend import rescale_cond

    assert len(np.unique(_restore_to_target(before, after, pin, rescale_cond(small, 2.0), scale=2.0))) == 3
    assert np.array_equal(_restore_to_target(before, after, pin, rescale_cond(large, 2.0), scale=2.0), after)


def _squares(shape, side, offset=(0, 0)):
    """Labels of a tiling by ``side``-cell squares shifted by ``offset``."""
    r, c = np.indices(shape)
    r, c = (r + offset[0]) // side, (c + offset[1]) // side
    return r * (shape[1] // side + 2) + c


def test_split_tail_cuts_only_the_excess_of_large_grains():
    """Generated grains follow the target except for some 24-cell squares among 8-cell ones: after
    the split no more grains exceed the target's 95th size percentile than a sample of the target
    would hold (binomial mean + 2 SD); a protected giant (the input's) and a map already on target
    are left as they are."""
    from infinityebsd.metrics import METRIC_NAMES, axis_values, conditioning_tensor, grain_table
    from infinityebsd.pipeline.morph_extend import split_tail

    rng = np.random.default_rng(0)
    # target: squares of 8 and, 3 % of them by number, 24 cells
    target = np.concatenate([np.full(970, 8.0), np.full(30, 24.0)])
    ecd = 2 * np.sqrt(target ** 2 / np.pi)
    cond = conditioning_tensor({"size": (np.array([ecd.min() - 1, ecd.min() + 1, ecd.max() - 1, ecd.max() + 1]),
                                         np.array([0.97, 0.0, 0.03]) / 2)})
    p = cond[METRIC_NAMES.index("size")] / cond[METRIC_NAMES.index("size")].sum()
    d95 = axis_values("size")[np.searchsorted(np.cumsum(p), 0.95)]
    labels = _squares((384, 384), 8)
    ok, n0 = split_tail(labels, np.zeros(labels.shape, bool), cond)
    assert n0 == 0 and np.array_equal(ok, labels)
    # half of the 24-cell blocks merged into one grain: far more large grains than the target's 3 %
    block = (np.indices(labels.shape) // 24)
    bid = block[0] * 16 + block[1]
    big = rng.random(256) < 0.5
    lab = np.where(big[bid], labels.max() + 1 + bid, labels)
    _, lab = np.unique(lab, return_inverse=True)
    lab = lab.reshape(labels.shape)
    protected = np.zeros(lab.shape, bool)
    first_big = np.flatnonzero(big)[0]
    protected[bid == first_big] = True
    out, n = split_tail(lab, protected, cond)
    assert n > 0
    area = np.bincount(out.ravel())
    prot = np.unique(out[protected])
    assert len(prot) == 1 and area[prot[0]] == 24 * 24  # the input's giant is kept whole
    # as many as exceed the binomial bound are halved, the rest of the large grains stay whole
    a0 = np.bincount(lab.ravel())
    gen0 = a0 > 0
    gen0[np.unique(lab[protected])] = False
    m = gen0.sum()
    n_over = ((2 * np.sqrt(a0 / np.pi) > d95) & gen0).sum()
    assert n == n_over - np.ceil(m * 0.05 + 2 * np.sqrt(m * 0.05 * 0.95))
    assert np.sum(area == 24 * 24) == n_over + 1 - n  # whole giants left: the protected one and the rest
    halves = area[(area > 64) & (area < 24 * 24)]
    assert len(halves) == 2 * n and np.all(np.abs(halves - 288) < 0.25 * 288)
    # every grain is still one connected piece
    from skimage.measure import label as cc_label

    assert cc_label(out + 1, connectivity=1).max() == len(np.unique(out))


def test_merge_head_merges_only_the_excess_of_small_grains_into_their_neighbour():
    """8-cell squares, a third of them holding a 2×2 speck, against a target with 10 % of 3×3-cell
    grains: the target's 5th size percentile lies in its small bin, so every speck falls under it;
    the specks beyond the binomial bound (mean + 2 SD) go back into the square around them (their
    only neighbour), the rest and a protected speck stay, and a map without specks is untouched; a
    target resting on fewer than 20 whole grains merges nothing."""
    from infinityebsd.metrics import conditioning_tensor
    from infinityebsd.pipeline.morph_extend import merge_head

    e3, e8 = 2 * np.sqrt(9 / np.pi), 2 * np.sqrt(64 / np.pi)
    cond = conditioning_tensor({"size": (np.array([e3 - 0.5, e3 + 0.5, e8 - 0.5, e8 + 0.5]),
                                         np.array([0.1, 0.0, 0.9]) / 2)})
    squares = _squares((384, 384), 8)
    same, n0 = merge_head(squares, np.zeros(squares.shape, bool), cond)
    assert n0 == 0 and np.array_equal(same, squares)
    rng = np.random.default_rng(1)
    n_sq = int(squares.max()) + 1
    speck = np.zeros(n_sq, bool)
    speck[np.unique(squares)] = rng.random(len(np.unique(squares))) < 1 / 3
    r, c = np.indices(squares.shape)
    inside = (r % 8 >= 3) & (r % 8 < 5) & (c % 8 >= 3) & (c % 8 < 5) & speck[squares]
    lab = np.where(inside, n_sq + squares, squares)
    protected = np.zeros(lab.shape, bool)
    first = np.flatnonzero(speck)[0]
    protected[(squares == first) & inside] = True
    out, n = merge_head(lab, protected, cond)
    m = len(np.unique(lab)) - 1  # the protected speck is not generated
    n_under = int(speck.sum()) - 1
    assert n == n_under - np.ceil(m * 0.05 + 2 * np.sqrt(m * 0.05 * 0.95)) > 0
    area = np.bincount(out.ravel())
    assert np.sum(area == 4) == n_under + 1 - n  # specks left: the protected one and the rest
    assert np.sum(area == 64) == (~speck[np.unique(squares)]).sum() + n  # each merged speck refills its square
    assert area[out[protected][0]] == 4
    # a target measured on fewer than 1/q whole grains has no 5th percentile to hold the map to
    assert merge_head(lab, protected, cond, n_target=19)[1] == 0
    assert merge_head(lab, protected, cond, n_target=20)[1] == n


# ---------------------------------------------------------------------------------------------
# Elongated inputs: the stretched (isotropic) frame
# ---------------------------------------------------------------------------------------------
def test_axis_stretch_of_a_mean_shape():
    """Analytic cases: along X the stretch is √a and leaves a round shape; along Y its inverse; at 45°
    none (an axis stretch only shears it); in between the stretched tensor's aspect is the least
    over all stretches (checked against a grid of them)."""
    from infinityebsd.pipeline.morph_extend import axis_stretch

    assert axis_stretch(3.0, 0.0) == pytest.approx((np.sqrt(3.0), 1.0))
    assert axis_stretch(3.0, 90.0) == pytest.approx((1 / np.sqrt(3.0), 1.0))
    assert axis_stretch(3.0, 45.0) == pytest.approx((1.0, 3.0))
    r, left = axis_stretch(2.5, 10.0)
    t = np.deg2rad(10.0)
    e = np.array([np.sin(t), np.cos(t)])  # long axis as (row, col)
    T = 2.5**2 * np.outer(e, e) + np.outer([e[1], -e[0]], [e[1], -e[0]])
    def aspect(q):
        w = np.linalg.eigvalsh(np.diag([q, 1 / q]) @ T @ np.diag([q, 1 / q]))
        return np.sqrt(w[1] / w[0])
    grid = np.linspace(0.5, 2.5, 4001)
    assert r == pytest.approx(grid[np.argmin([aspect(q) for q in grid])], abs=1e-3)
    assert left == pytest.approx(aspect(r), rel=1e-9)


@pytest.mark.parametrize("angle, long_axis", [(0.0, "cols"), (90.0, "rows"), (176.0, "cols")])
def test_stretch_makes_axis_elongated_grains_equiaxed(angle, long_axis):
    """Grains grown 3:1 along (or 4° off) a map axis: the stretch lengthens the grid across them and
    shortens it along them (area kept), and on the stretched grid the same measurement finds them
    about equiaxed."""
    from infinityebsd.pipeline.morph_extend import frame_stretch, resize_nearest

    lab = grain_growth_labels((160, 160), 12, aspect=3.0, angle_deg=angle, rng=1, workers=1)
    sr, sc, a, _ = frame_stretch(lab)
    assert a > 2.0
    assert sr * sc == pytest.approx(1.0)
    assert (sr > 1) == (long_axis == "cols") and max(sr, sc) > 0.9 * np.sqrt(a)
    stretched = resize_nearest(lab, (round(160 * sr), round(160 * sc)))
    assert frame_stretch(stretched, min_aspect=1.0)[2] < 1.3


def test_no_stretch_for_equiaxed_or_oblique_grains():
    from infinityebsd.pipeline.morph_extend import frame_stretch

    assert frame_stretch(grain_growth_labels((128, 128), 12, rng=2, workers=1))[:2] == (1.0, 1.0)
    sr, sc, a, ang = frame_stretch(grain_growth_labels((160, 160), 12, aspect=3.0, angle_deg=30.0, rng=1, workers=1))
    assert a > 2.0 and 20 < ang < 40 and (sr, sc) == (1.0, 1.0)


def test_elongated_input_is_extended_on_a_stretched_grid(tiny_model):
    """An input of grains 3:1 along X runs on a grid stretched across them: the input stays exact,
    the plan drawn on the output grid has windows longer along X than across, and with the input
    they cover the canvas; ``--plan`` shows that plan and its JSON keeps the window shape."""
    from infinityebsd.data.synth import synth_map
    from infinityebsd.evaluate.seams import seam_lines
    from infinityebsd.grains import clean
    from infinityebsd.models.ldm import load_model
    from infinityebsd.pipeline.extend import extend
    from infinityebsd.pipeline.morph import MorphPipeline
    from infinityebsd.pipeline.morph_extend import plan_morph
    from infinityebsd.pipeline.planner import Plan

    pipe = MorphPipeline(load_model(tiny_model))
    m = synth_map((96, 96), 10, aspect=3.0, seed=4, workers=1)
    size = (144, 150)
    plan = plan_morph(pipe, m, size, log=lambda *a: None)
    pr, pc = plan.window_shape
    assert pc > 1.5 * pr
    cover = np.zeros(size, bool)
    r0, c0, h, w = plan.input_box
    cover[r0:r0 + h, c0:c0 + w] = True
    for r, c in plan.windows:
        cover[r:r + pr, c:c + pc] = True
    assert cover[2:-2, 2:-2].all()
    assert Plan.from_json(plan.to_json()) == plan
    hor, ver = seam_lines(plan)
    assert all(line in {c + pc for _, c in plan.windows} | {c for _, c in plan.windows} for line, _, _ in ver)
    res = extend(pipe, m, size, seed=0, steps=1, resample=1, progress=False, log=lambda *a: None)
    assert res.plan == plan
    r0, c0, h, w = res.input_box
    assert np.allclose(res.map.euler[r0:r0 + h, c0:c0 + w], clean(m).euler)


def test_halving_cuts_each_grain_across_its_long_axis():
    """Rectangles 2:1 and a tilted ellipse: each is cut into two equal halves, the line between the
    halves' centroids along the grain's long axis; other grains are untouched."""
    from infinityebsd.pipeline.morph_extend import _halve_grains

    lab = np.zeros((40, 80), np.int64)
    lab[:, 40:] = 1                      # 40 x 40 square (kept) beside a 40 x 40 ... split below
    lab[:20, :40] = 2                    # 20 x 40: long along the columns
    r, c = np.indices(lab.shape)
    t = np.deg2rad(30.0)                 # an ellipse 30 deg from the row axis, semi-axes 16 and 6
    u, v = (r - 20) * np.cos(t) + (c - 60) * np.sin(t), -(r - 20) * np.sin(t) + (c - 60) * np.cos(t)
    lab[(u / 16) ** 2 + (v / 6) ** 2 <= 1] = 3
    out = _halve_grains(lab, np.array([2, 3]))
    assert np.array_equal(out[lab < 2], lab[lab < 2])
    new = np.setdiff1d(np.unique(out), np.unique(lab))
    assert len(new) == 2
    for g in (2, 3):
        pieces = np.unique(out[lab == g])
        assert len(pieces) == 2
        cen = np.array([[r[out == p].mean(), c[out == p].mean()] for p in pieces])
        sizes = [int((out == p).sum()) for p in pieces]
        assert abs(sizes[0] - sizes[1]) <= 0.06 * sum(sizes)
        d = cen[1] - cen[0]
        axis = np.array([0.0, 1.0]) if g == 2 else np.array([np.cos(t), np.sin(t)])
        assert abs(d @ axis) / np.linalg.norm(d) > 0.98


def test_halves_of_an_ellipse_have_the_analytic_inertia_ratio():
    """An ellipse of inertia ratio I cut across its long axis gives halves of ratio
    (1/4 - 16/(9 pi^2)) / (1/4) I = 0.280 I; cut along it, I / 0.280 (the same cut of the ellipse
    turned by 90 degrees)."""
    from infinityebsd.metrics import grain_table
    from infinityebsd.pipeline.morph_extend import HALF_INERTIA, _halve_grains

    k = (0.25 - 16 / (9 * np.pi**2)) / 0.25
    assert HALF_INERTIA == pytest.approx(k, abs=0.01)
    r, c = np.indices((160, 160))
    t = np.deg2rad(25.0)
    u, v = (r - 80) * np.cos(t) + (c - 80) * np.sin(t), -(r - 80) * np.sin(t) + (c - 80) * np.cos(t)
    lab = np.zeros((160, 160), np.int64)
    lab[(u / 60) ** 2 + (v / 30) ** 2 <= 1] = 1                    # I = (60/30)^2 = 4
    quat = np.tile([1.0, 0, 0, 0], (3, 1))
    whole = grain_table(lab, quat[:2]).inertia_ratio[1]
    assert whole == pytest.approx(4.0, rel=0.02)
    for along, want in ((False, max(k * whole, 1 / (k * whole))), (True, whole / k)):
        out = _halve_grains(lab, np.array([1]), np.array([along]))
        assert len(np.unique(out)) == 3
        ratios = grain_table(out, quat).inertia_ratio[1:]
        assert ratios == pytest.approx([want, want], rel=0.04)


def test_frame_count_leaves_out_the_grains_on_the_first_row_and_column():
    """Square grains 8x8 tiling a 32x32 map: a counting frame counts the 3x3 not on row 0 or
    column 0, so cells per counted grain is the map's 1024 / 9, as many frames tiled would give."""
    from infinityebsd.pipeline.morph_extend import frame_count

    lab = (np.arange(32)[:, None] // 8) * 4 + np.arange(32)[None, :] // 8
    assert frame_count(lab, np.ones(16, bool)) == 9
    sel = np.zeros(16, bool)
    sel[[0, 5, 6, 15]] = True                                        # 0 touches both edges
    assert frame_count(lab, sel) == 3


def test_split_to_count_brings_the_mean_grain_area_to_the_targets():
    """Generated grains from grain growth of mean ECD 12 where the target's grew to 10: the generated
    region is split until its mean grain area is the target map's (measured on its labels; held to
    a count per area, as a counting frame counts grains on both maps); a finer
    map than the target, and protected grains, are left as they are."""
    from infinityebsd.pipeline.morph_extend import split_to_count
    from infinityebsd.train.morph import morph_conditioning

    def frame_grains(lab, grains):
        # a counting frame: grains touching the first row or column are another frame's
        edge = np.unique(np.concatenate([lab[0], lab[:, 0]]))
        return len(np.setdiff1d(grains, edge))

    target = grain_growth_labels((384, 384), 10, rng=3, workers=1)
    cond = morph_conditioning(target)
    target_area = target.size / len(np.unique(target))
    frame_area = target.size / frame_grains(target, np.unique(target))
    finer = grain_growth_labels((256, 256), 7, rng=4, workers=1)
    same, n0 = split_to_count(finer, np.zeros(finer.shape, bool), cond)
    assert n0 == 0 and np.array_equal(same, finer)
    labels = grain_growth_labels((384, 384), 12, rng=5, workers=1)
    protected = np.zeros(labels.shape, bool)
    protected[:40, :40] = True
    held = np.isin(labels, np.unique(labels[protected]))
    out, n = split_to_count(labels, protected, cond)
    assert n > 0
    free = ~held
    before = free.sum() / len(np.unique(labels[free]))
    after = free.sum() / len(np.unique(out[free]))
    assert before > 1.3 * target_area
    assert after == pytest.approx(target_area, rel=0.05)
    assert np.array_equal(out[held], labels[held])
    # held to a count per area (an input's), grains are counted as a counting frame counts them
    out, n = split_to_count(labels, protected, cond, area_mean=frame_area)
    assert n > 0
    assert free.sum() / frame_grains(out, np.unique(out[free])) == pytest.approx(frame_area, rel=0.03)
    assert np.array_equal(out[held], labels[held])


def test_cut_relaxation_moves_the_cuts_and_holds_small_neighbours():
    """Grain-growth grains, the largest dozen halved by straight cuts: two steps of flow on the cut
    grains and their neighbours of at least median area keep every half as a grain, move the cuts,
    and leave every cell of the pinned grains and of the small neighbours in its grain."""
    from infinityebsd.pipeline.morph_extend import _halve_grains, _relax_cuts

    pre = grain_growth_labels((160, 160), 14, rng=7, workers=1).astype(np.int64)
    big = np.argsort(-np.bincount(pre.ravel()))[:12]
    cut = _halve_grains(pre, big)
    halves = np.unique(cut[np.isin(pre, big)])
    corner = np.zeros(pre.shape, bool)
    corner[:30, :30] = True
    pinned = np.setdiff1d(np.unique(cut[corner]), halves)
    pin = np.isin(cut, pinned)
    out = _relax_cuts(pre, cut, pin, {"aspect": 1.0, "angle_deg": 0.0}, seed=0)
    assert len(np.unique(out)) == len(np.unique(cut))              # no grain vanished
    # the flow renumbers grains: follow each cut-map grain to the output label most of it has
    to = {g: np.bincount(out[cut == g]).argmax() for g in np.unique(cut)}
    assert len(set(to.values())) == len(to)                          # halves stay apart
    area = np.bincount(cut.ravel())
    small = np.flatnonzero((area > 0) & (area < np.median(area[area > 0])))
    for g in np.union1d(pinned, np.setdiff1d(small, halves)):
        assert np.all(out[cut == g] == to[g])
    moved = sum(int((out[cut == h] != to[h]).sum()) for h in halves)
    assert moved > 0.02 * np.isin(cut, halves).sum()


def test_split_elongated_halves_only_the_excess_of_elongated_grains_across_their_long_axis():
    """Squares (inertia ratio 1) with some 8x32 rectangles (16) against an equiaxed target: as many
    rectangles as exceed the binomial bound at the target's 95th inertia-ratio percentile are cut in
    two 8x16 halves (inertia ratio 4, the cut across the long axis), the most elongated first; a
    protected rectangle (the input's) and a map of squares are left as they are."""
    from infinityebsd.data.shape_reference import assume_equiaxed, equiaxed_rows
    from infinityebsd.metrics import METRIC_NAMES, grain_table
    from infinityebsd.pipeline.morph_extend import _quantile_of, split_elongated

    width = equiaxed_rows()["inertia_ratio"].size
    cond = assume_equiaxed(np.full((len(METRIC_NAMES), width), np.nan, np.float32))[0]
    t95 = _quantile_of(cond, "inertia_ratio", 0.95)
    assert 1.0 < t95 < 16.0  # the bars (16) lie beyond the reference's 95th percentile, the squares (1) not
    squares = _squares((256, 256), 8)
    same, n0 = split_elongated(squares, np.zeros(squares.shape, bool), cond)
    assert n0 == 0 and np.array_equal(same, squares)
    # every second 32x32 block of the upper half becomes four horizontal 8x32 bars
    r, c = np.indices(squares.shape)
    bar = (r < 128) & ((c // 32) % 2 == 0)
    lab = np.where(bar, 10_000 + (r // 8) * 8 + c // 32, squares)
    _, lab = np.unique(lab, return_inverse=True)
    lab = lab.reshape(squares.shape)
    protected = np.zeros(lab.shape, bool)
    protected[0:8, 0:32] = True  # the first bar is the input's
    out, n = split_elongated(lab, protected, cond)
    t = grain_table(lab, np.tile([1.0, 0, 0, 0], (int(lab.max()) + 1, 1)))
    gen = np.ones(t.n, bool)
    gen[np.unique(lab[protected])] = False
    m = int(gen.sum())
    n_over = int((gen & (t.inertia_ratio > t95)).sum())
    assert n == n_over - np.ceil(m * 0.05 + 2 * np.sqrt(m * 0.05 * 0.95)) > 0
    after = grain_table(out, np.tile([1.0, 0, 0, 0], (int(out.max()) + 1, 1)))
    assert after.n == t.n + n
    # the halves are 8x16 (inertia ratio (16^2 - 1 + 1) / (8^2) = 4 with the cells' own extent)
    halves = np.isclose(after.inertia_ratio, 4.0, atol=0.05) & (after.area == 128)
    assert halves.sum() == 2 * n
    assert np.array_equal(out[protected], np.full(protected.sum(), out[0, 0]))  # the input's bar whole
    assert np.bincount(out.ravel())[out[0, 0]] == 256
    # a target measured on 19 whole grains has no 95th percentile to speak of: nothing is cut
    few, n_few = split_elongated(lab, protected, cond, n_target=19)
    assert n_few == 0 and np.array_equal(few, lab)
    assert split_elongated(lab, protected, cond, n_target=20)[1] == n


def test_equiaxed_shape_prior_shrinks_a_few_round_grains_shape_and_keeps_an_elongated_one():
    """The inertia-ratio row measured on an input of n whole equiaxed grains becomes
    n/(n + 20) of itself plus 20/(n + 20) of the equiaxed reference; other rows are unchanged, and an
    input of elongated grains keeps its row."""
    from infinityebsd.data.shape_reference import equiaxed_rows
    from infinityebsd.metrics import METRIC_NAMES, conditioning_tensor, edge_corrected_distributions, grain_table
    from infinityebsd.pipeline.morph_extend import equiaxed_shape_prior

    k = METRIC_NAMES.index("inertia_ratio")
    for lab, n_expected, elongated in ((_squares((48, 48), 12, (6, 6)), 9, False),
                                       (np.indices((96, 96))[0] // 8 * 4 + np.indices((96, 96))[1] // 32, None, True)):
        lab = np.unique(lab, return_inverse=True)[1].reshape(lab.shape)
        q = np.tile([1.0, 0, 0, 0], (int(lab.max()) + 1, 1))
        t = grain_table(lab, q)
        n = int((~t.border).sum())
        cond = conditioning_tensor(edge_corrected_distributions(t, lab))
        out = equiaxed_shape_prior(cond, lab, n)
        others = [i for i in range(len(METRIC_NAMES)) if i != k]
        np.testing.assert_array_equal(np.nan_to_num(out[others], nan=-1), np.nan_to_num(cond[others], nan=-1))
        if elongated:
            np.testing.assert_array_equal(out[k], cond[k])
        else:
            assert n == n_expected
            w = n / (n + 20)
            np.testing.assert_allclose(out[k], w * cond[k] + (1 - w) * equiaxed_rows()["inertia_ratio"], rtol=1e-6)


def test_cut_continued_cuts_an_input_grain_carried_on_too_far_and_keeps_its_input_cells():
    """8-cell squares against a target of 8-cell squares; an input grain (its first square inside the
    fixed box) continued over six more squares is cut into pieces of the mean area: the piece holding
    its input cells keeps its label and about one square, the others become new grains without input
    cells; input grains within the bound and generated grains are left as they are."""
    from skimage.measure import label as cc_label

    from infinityebsd.metrics import conditioning_tensor
    from infinityebsd.pipeline.morph_extend import cut_continued

    ecd = 2 * np.sqrt(64 / np.pi)
    cond = conditioning_tensor({"size": (np.array([ecd - 0.5, ecd + 0.5]), np.array([1.0]))})
    squares = np.unique(_squares((64, 64), 8), return_inverse=True)[1].reshape(64, 64)
    fixed = np.zeros(squares.shape, bool)
    fixed[:16, :16] = True
    same, n0 = cut_continued(squares, fixed, cond)
    assert n0 == 0 and np.array_equal(same, squares)
    lab = squares.copy()
    g = lab[0, 8]
    lab[:8, 8:] = g  # the input's square at (0, 8) carried on to the right edge: 7 squares, 448 cells
    out, n = cut_continued(lab, fixed, cond)
    assert n == 1
    assert np.array_equal(out[fixed], lab[fixed])  # the input's cells never change
    keep = out == g
    assert keep[:8, 8:16].all() and 64 <= keep.sum() <= 128
    cut_off = np.unique(out[:8, 8:][~keep[:8, 8:]])
    assert len(cut_off) >= 4 and not np.isin(cut_off, out[fixed]).any()
    assert not np.isin(cut_off, lab[lab != g]).any()  # new labels, not a neighbour's
    np.testing.assert_array_equal(out[8:], lab[8:])  # everything else as it was
    assert cc_label(out + 1, connectivity=1).max() == len(np.unique(out))  # every grain one piece
    # the bound is the largest inside part of a cut grain: an input whose band of eight squares shows
    # 448 of its cells inside says such outside parts happen, and nothing is cut
    lab2, fixed2 = lab.copy(), fixed.copy()
    lab2[16:24] = lab2[16, 0]
    fixed2[16:24, :56] = True
    same2, n2 = cut_continued(lab2, fixed2, cond)
    assert n2 == 0 and np.array_equal(same2, lab2)

"""Learning layer: representation, augmentation, masks, dataset, models, training (tiny configs)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from infinityebsd import EBSDMap
from infinityebsd.crystal import (
    CUBIC_SYMMETRY, disorientation_angle, euler_to_quat, ipf_colors, qmul, quat_to_euler, random_quat,
)
from infinityebsd.data import masks as mk
from infinityebsd.data import representation as rep
from infinityebsd.data.augment import VARIANT_NAMES, augment, transform_cells
from infinityebsd.data.dataset import ArrayDataset, ShardDataset, ShardStream, build_dataset, windows
from infinityebsd.metrics import compute_metrics

SRC = str(Path(__file__).resolve().parents[1] / "src")


def voronoi_map(shape, n_grains, seed) -> EBSDMap:
    """Random Voronoi grains with random orientations (independent of the package's generator)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    pts = rng.random((n_grains, 2)) * np.array(shape)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    lab = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1))[1].reshape(shape)
    return EBSDMap.from_euler(quat_to_euler(random_quat(n_grains, rng))[lab])


@pytest.fixture(scope="module")
def grain_map():
    from infinityebsd.grains import clean

    return clean(voronoi_map((40, 48), 14, seed=3))


# ------------------------------------------------------------------------------ representation
@pytest.mark.parametrize("kind", ["euler", "quat"])
def test_representation_round_trip_is_exact_up_to_symmetry(kind):
    rng = np.random.default_rng(0)
    e = quat_to_euler(random_quat(600, rng)).reshape(20, 30, 3)
    t = rep.encode(e, kind)
    assert t.shape == (rep.CHANNELS[kind], 20, 30) and t.dtype == np.float32
    assert t.min() >= -1 and t.max() <= 1
    back = rep.decode(t, kind)
    d = disorientation_angle(euler_to_quat(back), euler_to_quat(e))
    assert np.degrees(d).max() < 1e-3


@pytest.mark.parametrize("kind", ["euler", "quat"])
def test_symmetry_equivalents_encode_equal(kind):
    rng = np.random.default_rng(1)
    q = random_quat(50, rng)
    s = CUBIC_SYMMETRY[rng.integers(1, 24, 50)]
    a = rep.encode(quat_to_euler(q).reshape(5, 10, 3), kind)
    b = rep.encode(quat_to_euler(qmul(q, s)).reshape(5, 10, 3), kind)
    assert np.allclose(a, b, atol=1e-5)


def test_euler_encoding_scaling_matches_paper():
    # In the fundamental zone the identity has all angles 0 → all channels −1.
    t = rep.encode(np.zeros((2, 2, 3)), "euler")
    assert np.allclose(t, -1)
    # Φ = 45° about X (inside the zone): Φ channel = 45/180*2-1 = -0.5
    t = rep.encode(np.broadcast_to([0, np.pi / 4, 0], (1, 1, 3)), "euler")
    assert np.allclose(t[:, 0, 0], [-1, -0.5, -1], atol=1e-6)


# ------------------------------------------------------------------------------ augmentation
def _in_plane_matrix(variant, shape=(6, 6)):
    """From the cell movement alone: the 2×2 matrix A with old (x, y) = A·new (x, y) + c."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    moved = transform_cells(np.stack([x, y], -1), variant)  # old coordinates at each new cell
    ny, nx = np.mgrid[0:moved.shape[0], 0:moved.shape[1]].astype(float)
    design = np.stack([nx.ravel(), ny.ravel(), np.ones(nx.size)], 1)
    coef, *_ = np.linalg.lstsq(design, moved.reshape(-1, 2), rcond=None)
    return np.round(coef[:2].T).astype(int)


def test_rot90_ipf_x_of_rotated_map_is_ipf_y_of_original(grain_map):
    e = grain_map.euler
    r = augment(e, "rot90")
    new_x = ipf_colors(euler_to_quat(r), (1, 0, 0))
    old_y = ipf_colors(euler_to_quat(e), (0, 1, 0))
    assert np.allclose(new_x, np.rot90(old_y), atol=1e-6)
    # The pixel mode (paper) does not have this property.
    p = augment(e, "rot90", mode="pixel")
    assert not np.allclose(ipf_colors(euler_to_quat(p), (1, 0, 0)), np.rot90(old_y), atol=1e-3)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_physical_augmentation_turns_every_sample_direction_with_the_map(grain_map, variant):
    # A sample direction d in the new frame is A·d (with Z sign det A) in the old one; the IPF colour
    # of a general direction (not only X, Y, Z) must follow the cells.
    A = _in_plane_matrix(variant)
    d_new = np.array([1.0, 2.0, 3.0])
    d_old = np.array([*(A @ d_new[:2]), np.linalg.det(A) * d_new[2]])
    e = grain_map.euler
    new = ipf_colors(euler_to_quat(augment(e, variant)), d_new)
    old = transform_cells(ipf_colors(euler_to_quat(e), d_old), variant)
    assert np.allclose(new, old, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_pixel_augmentation_keeps_angles(grain_map, variant):
    e = grain_map.euler
    assert np.array_equal(augment(e, variant, "pixel"), transform_cells(e, variant))


@pytest.mark.parametrize("mode", ["physical", "pixel"])
def test_augmentation_preserves_metrics(grain_map, mode):
    ref = compute_metrics(grain_map)
    for v in VARIANT_NAMES:
        t = compute_metrics(EBSDMap.from_euler(augment(grain_map.euler, v, mode)))
        assert len(t.size) == len(ref.size)
        for name in ("size", "perimeter", "inertia_ratio", "coordination", "disorientation_deg"):
            assert np.allclose(np.sort(getattr(t, name)), np.sort(getattr(ref, name)), atol=1e-6), (v, name)
        assert np.isclose(t.length.sum(), ref.length.sum())


def test_variants_are_the_eight_distinct_symmetries_of_the_square():
    a = np.arange(16).reshape(4, 4)
    outs = {transform_cells(a, v).tobytes() for v in VARIANT_NAMES}
    assert len(outs) == 8


# ------------------------------------------------------------------------------ masks
def test_masks_cover_four_types_in_all_orientations():
    P = 16
    ms = mk.all_masks(P)
    assert len(ms) == 13
    assert len({m.tobytes() for m in ms.values()}) == 13
    frac = {t: {m.mean() for (tt, _), m in ms.items() if tt == t} for t in mk.ORIENTATIONS}
    assert frac == {"closed_angle": {0.75}, "half": {0.5}, "open_angle": {0.25}, "full": {0.0}}
    # each family is closed under the rotations of the square
    for t in ("closed_angle", "half", "open_angle"):
        fam = {m.tobytes() for (tt, _), m in ms.items() if tt == t}
        for m in list(fam):
            arr = np.frombuffer(m, dtype=np.float32).reshape(P, P)
            assert np.rot90(arr).copy().tobytes() in fam
    # semantics: closed angle 'br' misses the bottom-right quarter; half 'left' knows columns < P/2
    assert ms[("closed_angle", "br")][P - 1, P - 1] == 0 and ms[("closed_angle", "br")][0, P - 1] == 1
    assert ms[("half", "left")][:, : P // 2].all() and not ms[("half", "left")][:, P // 2:].any()
    assert ms[("open_angle", "tl")][0, 0] == 1 and ms[("open_angle", "tl")].sum() == (P // 2) ** 2


def test_random_masks_draw_every_kind_and_irregular_ones_touch_the_border():
    rng = np.random.default_rng(0)
    labels = {mk.random_mask(32, rng, p_irregular=0.2)[1] for _ in range(400)}
    assert labels == {f"{t}/{o}" for t, os_ in mk.ORIENTATIONS.items() for o in os_} | {"irregular"}
    for _ in range(10):
        m = mk.irregular_mask(32, rng)
        assert 0.05 < m.mean() < 0.95
        border = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]])
        assert border.any()


# ------------------------------------------------------------------------------ dataset
def test_dataset_build_stream_and_resume(tmp_path):
    from infinityebsd.grains import clean

    maps = [voronoi_map((48, 48), 12, seed=10), voronoi_map((48, 40), 10, seed=11),
            voronoi_map((20, 20), 3, seed=12)]
    notes = []
    out = tmp_path / "data"
    man = build_dataset(maps, out, patch=32, variants=("identity", "rot90"), shard_size=5,
                        progress=False, log=notes.append)
    n_expected = (len(windows((48, 48), 32)) + len(windows((48, 40), 32))) * 2
    assert len(windows((48, 48), 32)) == 4 and len(windows((48, 40), 32)) == 2
    assert man["n_patches"] == n_expected
    assert len(notes) == 1 and "smaller than the patch" in notes[0]
    assert man["params"]["augment"] == "physical" and man["grain_size_range"][0] > 0
    ds = ShardDataset(out, "euler")
    assert len(ds) == n_expected
    item = ds[0]
    assert item["x"].shape == (3, 32, 32) and item["cond"].shape == (8, 1024)
    # item 0 is window 0, identity variant: the cleaned map's cells (up to symmetry)
    c = clean(maps[0]).euler[:32, :32]
    got = rep.decode(item["x"].numpy(), "euler")
    assert np.degrees(disorientation_angle(euler_to_quat(got), euler_to_quat(c))).max() < 1e-3
    # its conditioning tensor is the patch's own
    from infinityebsd.metrics import conditioning_tensor

    ref = conditioning_tensor(compute_metrics(EBSDMap.from_euler(c)))
    assert np.allclose(item["cond"].numpy(), ref, atol=1e-4)
    # streaming reader yields every item once
    seen = [it["x"].numpy().tobytes() for it in ShardStream(out, "euler", seed=1)]
    assert len(seen) == n_expected and set(seen) == {ds[i]["x"].numpy().tobytes() for i in range(len(ds))}
    # interrupt: forget the last shard; a rerun rebuilds exactly it
    mpath = out / "manifest.json"
    m = json.loads(mpath.read_text())
    last = m["shards"].pop()
    mpath.write_text(json.dumps(m))
    man2 = build_dataset(maps, out, patch=32, variants=("identity", "rot90"), shard_size=5,
                         progress=False, log=notes.append)
    assert man2["n_patches"] == n_expected
    assert man2["shards"][-1]["items"] == last["items"]
    # a rerun of a finished build adds nothing
    assert build_dataset(maps, out, patch=32, variants=("identity", "rot90"), shard_size=5,
                         progress=False)["n_patches"] == n_expected


# ------------------------------------------------------------------------------ models
def _tiny_data(n=4, seed=0, kind="euler"):
    maps = [voronoi_map((32, 32), 5, seed=seed + i).euler for i in range(n)]
    cond = np.random.default_rng(seed).random((n, 8, 1024)).astype(np.float32)
    return ArrayDataset(np.stack(maps), cond, representation=kind)


def _losses(folder, kind):
    return np.array([float(r["loss"]) for r in csv.DictReader(open(Path(folder) / "logs" / f"{kind}_log.csv"))])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny VAE and UNet trained on one fixed batch of 4 maps."""
    from infinityebsd.train import train_unet, train_vae

    out = tmp_path_factory.mktemp("model")
    ds = _tiny_data()
    rv = train_vae(ds, out, config="tiny", steps=150, batch=4, progress=False, checkpoint_every=1000)
    ru = train_unet(ds, out, config="tiny", steps=300, batch=4, progress=False, checkpoint_every=1000)
    return out, ds, rv, ru


def test_tiny_vae_overfits_a_fixed_batch(trained):
    out, ds, rv, _ = trained
    loss = _losses(out, "vae")
    assert len(loss) == 150
    assert loss[-10:].mean() < loss[:10].mean() / 4
    # the stored latent scale gives the trained VAE's latents of this data unit standard deviation
    from infinityebsd.models import load_model

    m = load_model(out, parts=("vae",))
    assert m.scaling_factor == pytest.approx(rv["scaling_factor"])
    with torch.no_grad():
        z = m.vae.encode(torch.stack([ds[i]["x"] for i in range(len(ds))])).latent_dist.mean
    assert float((z * m.scaling_factor).std()) == pytest.approx(1.0, rel=1e-3)


def test_scaling_factor_gives_unit_variance_latents_over_all_batches():
    from infinityebsd.models import build_vae, load_config
    from infinityebsd.train.trainer import measure_scaling_factor

    torch.manual_seed(0)
    vae = build_vae(load_config("tiny"))
    ds = _tiny_data(n=6)
    # the last items' latents are made larger, so a factor measured on the first batch only is off
    scale = torch.tensor([1.0, 1.0, 1.0, 1.0, 3.0, 3.0])
    data = [{"x": ds[i]["x"] * scale[i], "cond": ds[i]["cond"]} for i in range(len(ds))]
    sf = measure_scaling_factor(vae, data, 2, 16, "cpu")
    with torch.no_grad():
        z = vae.encode(torch.stack([d["x"] for d in data])).latent_dist.mean
    assert float((z * sf).std()) == pytest.approx(1.0, rel=1e-4)
    # and it reads at most max_batches batches
    sf1 = measure_scaling_factor(vae, data, 2, 1, "cpu")
    assert float((z[:2] * sf1).std()) == pytest.approx(1.0, rel=1e-4) and abs(sf1 - sf) > 0.01 * sf


def test_tiny_unet_overfits_a_fixed_batch(trained):
    out, _, _, _ = trained
    loss = _losses(out, "unet")
    assert len(loss) == 300
    # ε-prediction loss stays noisy (random t and noise each step); compare means
    assert loss[-50:].mean() < loss[:10].mean() / 2.5


def test_model_folder_layout_and_reload_gives_identical_outputs(trained, tmp_path):
    from infinityebsd.models import load_model, save_model, unet_input

    out, ds, rv, _ = trained
    for part in ("vae", "unet", "metric_encoder", "scheduler"):
        assert (out / part / ("scheduler_config.json" if part == "scheduler" else "config.json")).exists()
    info = json.loads((out / "infinityebsd.json").read_text())
    assert info["patch"] == 32 and info["representation"] == "euler" and info["ema"] is True
    assert info["latent_scaling_factor"] == pytest.approx(rv["scaling_factor"])
    assert len(info["metric_names"]) == 8
    m = load_model(out)
    assert m.unet.config.in_channels == 9 and m.unet.config.out_channels == 4
    save_model(tmp_path / "copy", vae=m.vae, unet=m.unet, metric_encoder=m.metric_encoder,
               scheduler=m.scheduler, info=m.info)
    m2 = load_model(tmp_path / "copy")
    x = torch.stack([ds[i]["x"] for i in range(2)])
    cond = torch.stack([ds[i]["cond"] for i in range(2)])
    with torch.no_grad():
        z1, z2 = m.vae.encode(x).latent_dist.mean, m2.vae.encode(x).latent_dist.mean
        assert torch.equal(z1, z2)
        assert torch.equal(m.vae.decode(z1).sample, m2.vae.decode(z1).sample)
        mask = torch.ones(2, 1, 32, 32)
        inp = unet_input(z1, z1, mask)
        t = torch.tensor([10, 500])
        drop = torch.tensor([[False] * 8, [True] * 8])
        o1 = m.unet(inp, t, encoder_hidden_states=m.metric_encoder(cond, drop)).sample
        o2 = m2.unet(inp, t, encoder_hidden_states=m2.metric_encoder(cond, drop)).sample
        assert torch.equal(o1, o2)
        # a dropped metric is its null token, whatever the input
        tok = m.metric_encoder(cond, drop)
        assert torch.equal(tok[1], m.metric_encoder.null_tokens)
    # the parts load with plain diffusers from_pretrained too
    from diffusers import UNet2DConditionModel

    u = UNet2DConditionModel.from_pretrained(out, subfolder="unet")
    assert all(torch.equal(a, b) for a, b in zip(u.state_dict().values(), m.unet.state_dict().values()))


def test_attention_heads_follow_the_config():
    from infinityebsd.models import build_unet, load_config

    cfg = load_config("small")
    u = build_unet(cfg)
    cross = [m for n, m in u.named_modules() if n.endswith("attn2")]
    assert cross and all(a.heads == cfg["unet"]["attention_head_dim"] for a in cross)
    assert all(a.to_k.in_features == cfg["unet"]["cross_attention_dim"] for a in cross)
    paper = load_config("paper")
    assert paper["unet"]["block_out_channels"] == [320, 640, 1280, 1280]
    assert paper["vae"]["block_out_channels"] == [128, 256, 512, 512]
    assert paper["unet"]["cross_attention_dim"] == 1024
    assert paper["unet"]["down_block_types"].count("CrossAttnDownBlock2D") == 3


# ------------------------------------------------------------------------------ resume
def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def test_kill_and_resume_reproduces_uninterrupted_run(trained, tmp_path):
    from infinityebsd.train import train_unet, train_vae

    base, ds, _, _ = trained
    steps = 8
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        shutil.copytree(base / "vae", d / "vae")
        shutil.copy(base / "infinityebsd.json", d / "infinityebsd.json")
    kw = dict(config="tiny", steps=steps, batch=2, progress=False, checkpoint_every=3, seed=5)
    train_unet(ds, a, **kw)

    def kill_at_half(step, loss):
        if step == steps // 2:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the trainer's handler

    r = train_unet(ds, b, callback=kill_at_half, **kw)
    assert r["interrupted"] and r["step"] == steps // 2
    assert not (b / "unet").exists()
    r = train_unet(ds, b, resume=True, config="small", steps=None, batch=None, progress=False,
                   checkpoint_every=3)  # the checkpoint's config, batch and seed win
    assert r["step"] == steps and not r["interrupted"]
    for part in ("unet", "metric_encoder"):  # EMA weights
        wa, wb = _weights(a / part), _weights(b / part)
        assert all(torch.allclose(wa[k], wb[k], atol=1e-6, rtol=1e-5) for k in wa)
    ra = sorted((a / "checkpoints" / "unet").glob("step-*"))[-1] / "model.safetensors"
    rb = sorted((b / "checkpoints" / "unet").glob("step-*"))[-1] / "model.safetensors"
    from safetensors.torch import load_file

    wa, wb = load_file(str(ra)), load_file(str(rb))  # raw weights
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6, rtol=1e-5) for k in wa)
    # The log has one row per step, none repeated.
    assert [int(r["step"]) for r in csv.DictReader(open(b / "logs" / "unet_log.csv"))] == list(range(1, steps + 1))
    # VAE too
    kwv = dict(config="tiny", steps=6, batch=2, progress=False, checkpoint_every=100, seed=2)
    c, d = tmp_path / "c", tmp_path / "d"
    train_vae(ds, c, **kwv)
    train_vae(ds, d, callback=lambda s, l: s == 3 and os.kill(os.getpid(), signal.SIGTERM), **kwv)
    train_vae(ds, d, resume=True, progress=False)
    wc, wd = _weights(c / "vae"), _weights(d / "vae")
    assert all(torch.allclose(wc[k], wd[k], atol=1e-6, rtol=1e-5) for k in wc)


# ------------------------------------------------------------------------------ CLI + DDP
DDP_VAE_DRIVER = """
import os
import sys

import torch

from infinityebsd.data.dataset import ShardDataset
from infinityebsd.train import trainer

data, model, out = sys.argv[1:4]


class Recording(ShardDataset):
    seen = []

    def __getitem__(self, i):
        self.seen.append(int(i))
        return super().__getitem__(i)


spy = {}
build, scale = trainer.build_vae, trainer.measure_scaling_factor


def build_and_keep(cfg):
    vae = build(cfg)
    spy["initial"] = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    return vae


def scale_after_training(vae, dataset, *args):
    spy["seen"] = list(dataset.seen)  # the items trained on, before this pass reads more
    spy["weights"] = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    return scale(vae, dataset, *args)


trainer.build_vae, trainer.measure_scaling_factor = build_and_keep, scale_after_training
trainer.train_vae(Recording(data, "quat"), model, config="tiny", steps=1, batch=2, representation="quat",
                  progress=False)
torch.save(spy, os.path.join(out, "rank%s.pt" % os.environ["RANK"]))
"""


def test_cli_dataset_and_ddp_training_with_two_cpu_processes(tmp_path):
    from infinityebsd.io import write_ctf

    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(2):
        write_ctf(voronoi_map((48, 48), 10, seed=20 + i), maps / f"m{i}.ctf")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    data, model = tmp_path / "data", tmp_path / "model"
    run = lambda *a: subprocess.run(a, env=env, capture_output=True, text=True, timeout=240)
    p = run(sys.executable, "-m", "infinityebsd", "dataset", str(maps), "-o", str(data), "--patch", "32",
            "--shard-size", "8")
    assert p.returncode == 0, p.stderr
    assert ShardDataset(data).__len__() == 2 * 4 * 8
    # torchrun starts the two gloo processes (on CPUs `accelerate launch` delegates to mpirun).
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--master_port", str(29500 + os.getpid() % 1000)]
    # The VAE step runs through a small driver that records, on each process, the items it trained on
    # and its weights after the step: the processes must agree on the weights (gradients averaged)
    # and must have seen different items (the data split between them).
    driver = tmp_path / "ddp_vae.py"
    driver.write_text(DDP_VAE_DRIVER)
    p = run(*launch, str(driver), str(data), str(model), str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert len(r0["seen"]) == len(r1["seen"]) == 2  # one step, batch 2 per process
    assert not set(r0["seen"]) & set(r1["seen"])
    assert r0["weights"].keys() == r1["weights"].keys()
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert any(not torch.equal(r0["weights"][k], r0["initial"][k]) for k in r0["weights"])  # a step was taken
    p = run(*launch, "-m", "infinityebsd", "train", str(data), "-o", str(model), "--config", "tiny",
            "--steps", "3", "--batch", "2")
    assert p.returncode == 0, p.stderr[-3000:]
    st = json.loads((model / "checkpoints" / "unet" / "step-0000003" / "trainer_state.json").read_text())
    assert st["world"] == 2
    assert (model / "checkpoints" / "unet" / "step-0000003" / "random_states_1.pkl").exists()
    info = json.loads((model / "infinityebsd.json").read_text())
    assert info["provenance"]["unet"]["processes"] == 2
    assert info["representation"] == "quat" and info["channels"] == 4  # the UNet followed the VAE
    assert (model / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_step_sampler_splits_epochs_between_processes_and_resumes_in_place():
    from infinityebsd.train import StepSampler

    n, b, w = 12, 2, 2
    per_rank = [list(StepSampler(n, b, w, r, seed=3, start=0, steps=3)) for r in range(w)]
    epoch0 = [i for s in range(3) for r in range(w) for i in per_rank[r][s]]
    assert sorted(epoch0) == list(range(n))  # 3 steps × 2 processes × 2 = one epoch, each item once
    later = list(StepSampler(n, b, w, 1, seed=3, start=2, steps=3))
    assert later == per_rank[1][2:]


def test_cli_help_has_examples(tmp_path, monkeypatch):
    from test_cli import help_examples, parse_example

    monkeypatch.chdir(tmp_path)  # the examples' files are made here
    for cmd in ("dataset", "train-vae", "train"):
        examples = help_examples(cmd)
        assert examples
        for args in examples:
            name, params = parse_example(args)
            assert name == cmd and isinstance(params["seed"], int)  # every learning command takes --seed


def test_defaults_and_shapes_come_from_one_place(tmp_path):
    # The conditioning shape is defined once (metrics) and the representation default once (data);
    # every consumer agrees with those definitions rather than with its own literal.
    from infinityebsd.metrics import CONDITIONING_SHAPE, METRIC_NAMES, conditioning_tensor
    from infinityebsd.models import ldm
    from infinityebsd.train import trainer

    assert CONDITIONING_SHAPE == (len(METRIC_NAMES), 1024)
    assert (ldm.N_METRICS, ldm.METRIC_DIM) == CONDITIONING_SHAPE
    enc = ldm.MetricEncoder()
    assert enc.null_tokens.shape[0] == CONDITIONING_SHAPE[0]
    assert enc(torch.zeros(1, *CONDITIONING_SHAPE), torch.zeros(1, CONDITIONING_SHAPE[0], dtype=torch.bool)).shape[1] \
        == CONDITIONING_SHAPE[0]
    assert ArrayDataset(np.zeros((2, 8, 8, 3)))[0]["cond"].shape == CONDITIONING_SHAPE
    grains = compute_metrics(EBSDMap.from_euler(np.zeros((8, 8, 3))))
    assert conditioning_tensor(grains).shape == CONDITIONING_SHAPE
    assert trainer._metric_axes()[0] == list(METRIC_NAMES)
    cfg = ldm.load_config("tiny")
    del cfg["representation"]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg))
    assert ldm.load_config(p)["representation"] == rep.DEFAULT


@pytest.fixture
def fresh_accelerate_state():
    # Accelerate keeps one precision per process; these tests set up several, so start and end clean
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.mark.parametrize("native", [True, False])
def test_cpu_training_computes_in_bf16_only_where_the_cpu_does(native, monkeypatch, fresh_accelerate_state):
    """The default precision of CPU training: bf16 autocast where the CPU has bf16 instructions (the
    forward pass then yields bfloat16 activations, the weights stay fp32), plain fp32 elsewhere,
    where bf16 would be emulated."""
    from infinityebsd.train import trainer

    monkeypatch.setattr(trainer, "cpu_native_bf16", lambda: native)
    acc = trainer._make_accelerator(None, cpu=True)
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    with acc.autocast():
        y = conv(x)
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    assert conv.weight.dtype == torch.float32
    ref = conv(x)  # outside autocast: fp32, which bf16's 8 significant bits approximate
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)
    assert native != torch.equal(y.float(), ref)

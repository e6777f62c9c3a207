"""Training of the pixel-space morphology model (:mod:`infinityebsd.models.morph`).

The corpus is a set of label maps at grain scale (median grain ECD inside the config's
``grain_size_range_cells``): synthetic grain-growth maps (equiaxed, elongated, broad and bimodal size
distributions) plus, optionally, cleaned real maps rescaled to that scale. Each training item is a
random window of one map under a random symmetry of the square (the grain network has no
crystallography, so all eight are physical), with:

* the target: the morphology field of the window, computed on a larger crop so that the window's
  edge is not mistaken for a boundary;
* the network's known-region input: the field of the known cells alone
  (:func:`~infinityebsd.data.representation.encode_morphology` with ``known``), as at inference;
* a mask of the paper's four types (split fraction drawn from 0.25-0.75) or an irregular one;
* the conditioning tensor of the whole map (what inference gives: the input's or the target's
  metrics), with metric dropout, all-metrics dropout for classifier-free guidance, and the
  orientation metrics always dropped.

Diffusion: the config's noise schedule and parameterisation (the shipped config: cosine,
v-prediction, min-SNR-γ loss weighting; ε-prediction and the plain loss are there for comparison);
AdamW, cosine LR, gradient clipping, EMA. The loop, checkpoints, exact resumption and multi-process data parallelism are those of :mod:`.trainer`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .._shared import atomic_write
from ..data.masks import irregular_mask, make_mask, ORIENTATIONS
from ..data.representation import encode_morphology
from ..data.synth import grain_growth_labels
from ..errors import InputError
from ..metrics import conditioning_tensor, grain_table
from ..models.ldm import save_model
from ..models.morph import build_morph_parts, load_morph_config, morph_drop, morph_input
from .trainer import (
    DenoiserTrainModule, _loop, _make_accelerator, _prepare, _provenance, _resolve_resume, _resume, _timesteps,
    step_rng,
)

__all__ = ["train_morphology", "build_morph_corpus", "MorphWindows", "morph_conditioning", "diffusion_target",
           "min_snr_weight"]

VIRTUAL_ITEMS = 1 << 22
"""Items per epoch of the window stream: each index seeds its own map, window, symmetry and mask."""


def morph_conditioning(labels: np.ndarray) -> np.ndarray:
    """Conditioning tensor (8, 1024) of a label map's grains; orientation rows are meaningless here
    (identity orientations) and are always dropped by the morphology model."""
    n = int(labels.max()) + 1
    q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, 1))
    return conditioning_tensor(grain_table(labels, q))


def _median_ecd(labels: np.ndarray) -> float:
    area = np.bincount(labels.ravel())
    area = area[area > 0]
    return float(np.median(np.sqrt(4 * area / np.pi)))


def _rescale_labels(labels: np.ndarray, f: float) -> np.ndarray:
    """Nearest-neighbour rescaling of a label map by ``f`` (cells per cell)."""
    R, C = max(1, int(round(labels.shape[0] * f))), max(1, int(round(labels.shape[1] * f)))
    r = np.minimum(((np.arange(R) + 0.5) / f).astype(int), labels.shape[0] - 1)
    c = np.minimum(((np.arange(C) + 0.5) / f).astype(int), labels.shape[1] - 1)
    return labels[r][:, c]


def _relabel_cc(labels: np.ndarray) -> np.ndarray:
    from skimage.measure import label as cc_label

    return cc_label(labels + 1, connectivity=1, background=0) - 1


def build_morph_corpus(cfg: dict, seed: int = 0, real_maps=(), progress: bool = True, log=print) -> list[dict]:
    """Label maps at the config's grain scale: ``train_unet.synthetic_maps`` grain-growth maps of
    ``synthetic_size``² cells, and each real map (EBSDMap or path) cleaned and rescaled to three
    scales inside the range. Each entry: ``{'labels', 'cond', 'kind', 'name'}``."""
    from tqdm.auto import tqdm

    from ..grains import clean_with_grains
    from ..io import read_map

    t = cfg["train_unet"]
    lo, hi = cfg.get("grain_size_range_cells", [8.0, 13.0])
    n, size = int(t.get("synthetic_maps", 400)), int(t.get("synthetic_size", 160))
    rng = np.random.default_rng([seed, 11])
    out = []
    for k in tqdm(range(n), desc="synthetic maps", disable=not progress):
        # the growth generator's grain_size is a mean ECD; medians run ~0.85 of it
        target_median = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        aspect = 1.0 if rng.random() < 0.5 else float(rng.uniform(1.3, 3.5))
        bimodal = 0.0 if rng.random() < 0.85 else float(rng.uniform(0.1, 0.3))
        lab = grain_growth_labels((size, size), target_median / 0.85, aspect=aspect,
                                  angle_deg=float(rng.uniform(0, 180)), bimodal=bimodal,
                                  size_spread=float(rng.uniform(0.2, 0.8)), rng=int(rng.integers(2**31)), workers=1)
        out.append({"labels": lab.astype(np.int32), "kind": "synthetic", "name": f"growth-{k}"})
    for src in real_maps:
        m = read_map(src) if not hasattr(src, "euler") else src
        _, g = clean_with_grains(m)
        med = _median_ecd(g.labels)
        for target in np.exp(np.linspace(np.log(lo), np.log(hi), 3)):
            lab = _relabel_cc(_rescale_labels(g.labels, target / med))
            out.append({"labels": lab.astype(np.int32), "kind": "real", "name": f"{Path(str(src)).name}@{target:.1f}"})
        log(f"real map {src}: {g.n} grains, median ECD {med:.1f} cells, rescaled to {lo:g}-{hi:g}")
    for e in out:
        e["cond"] = morph_conditioning(e["labels"])
    return out


class MorphWindows(torch.utils.data.Dataset):
    """Training items from a corpus; item ``i`` is a pure function of ``(seed, i)``.

    Each item: ``{'x': (C, P, P) target field, 'known': (C, P, P) field of the known cells,
    'mask': (1, P, P) known mask, 'cond': (8, 1024)}``.
    """

    def __init__(self, corpus: list[dict], patch: int, representation: str, seed: int = 0, p_real: float = 0.2,
                 p_irregular: float = 0.15, clip: float = 8.0):
        self.corpus, self.P, self.rep, self.seed = corpus, int(patch), representation, int(seed)
        self.p_irregular, self.clip = p_irregular, clip
        self.real = [i for i, e in enumerate(corpus) if e["kind"] == "real"]
        self.syn = [i for i, e in enumerate(corpus) if e["kind"] != "real"]
        if not self.syn and not self.real:
            raise InputError("the morphology corpus is empty")
        self.p_real = p_real if self.real and self.syn else (1.0 if self.real else 0.0)

    def __len__(self):
        return VIRTUAL_ITEMS

    def _mask(self, rng) -> np.ndarray:
        if rng.random() < self.p_irregular:
            return irregular_mask(self.P, rng).astype(bool)
        kind = list(ORIENTATIONS)[rng.integers(len(ORIENTATIONS))]
        orient = ORIENTATIONS[kind][rng.integers(len(ORIENTATIONS[kind]))]
        return make_mask(kind, orient, self.P, float(rng.uniform(0.25, 0.75))).astype(bool)

    def window(self, i: int):
        """(labels window, known mask, cond) of item ``i``."""
        rng = np.random.default_rng([self.seed, int(i), 5])
        pool = self.real if rng.random() < self.p_real else self.syn
        e = self.corpus[pool[rng.integers(len(pool))]]
        lab = e["labels"]
        m = int(np.ceil(self.clip))  # margin: the window's edge is not a boundary
        S = self.P + 2 * m
        if lab.shape[0] < S or lab.shape[1] < S:
            lab = np.pad(lab, ((0, max(0, S - lab.shape[0])), (0, max(0, S - lab.shape[1]))), mode="symmetric")
        r = rng.integers(lab.shape[0] - S + 1)
        c = rng.integers(lab.shape[1] - S + 1)
        crop = lab[r:r + S, c:c + S]
        k = int(rng.integers(4))
        crop = np.rot90(crop, k)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop), m, self._mask(rng), e["cond"], rng

    def __getitem__(self, i: int) -> dict:
        crop, m, known, cond, rng = self.window(i)
        vseed = int(rng.integers(2**31))
        full = encode_morphology(crop, self.rep, rng=vseed, clip=self.clip)[:, m:-m, m:-m]
        win = crop[m:-m, m:-m]
        kf = encode_morphology(win, self.rep, known=known, rng=vseed, clip=self.clip)
        if self.rep != "distance":  # value channels: the known values are the same draw as the target's
            kf[-1] = np.where(known, full[-1], 0.0)
        return {"x": torch.from_numpy(full), "known": torch.from_numpy(kf),
                "mask": torch.from_numpy(known[None].astype(np.float32)),
                "cond": torch.from_numpy(np.asarray(cond, np.float32))}


def _check_prediction(prediction: str) -> None:
    if prediction not in ("v_prediction", "epsilon"):
        raise InputError(f"prediction_type '{prediction}': the morphology trainer knows v_prediction and epsilon")


def diffusion_target(x: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, prediction: str) -> torch.Tensor:
    """What the network learns to output for clean ``x`` noised with ``noise`` at cumulative signal
    ``alpha_bar`` (noisy = √ᾱ·x + √(1-ᾱ)·ε): ε itself, or v = √ᾱ·ε − √(1-ᾱ)·x."""
    if prediction == "v_prediction":
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x
    _check_prediction(prediction)
    return noise


def min_snr_weight(alpha_bar: torch.Tensor, gamma: float | None, prediction: str) -> torch.Tensor:
    """Per-sample loss weight of min-SNR-γ (Hang et al. 2023) for the given parameterisation.

    The weight on the squared x0 error is min(snr, γ), snr = ᾱ/(1-ᾱ). For one x0 estimate the
    squared ε error is snr times the squared x0 error and the squared v error (snr + 1) times it, so
    the weights in those losses are min(snr, γ)/snr and min(snr, γ)/(snr + 1). ``gamma`` None or 0:
    all ones (the plain loss of the parameterisation)."""
    if not gamma:
        return torch.ones_like(alpha_bar)
    snr = alpha_bar / (1 - alpha_bar)
    return torch.clamp(snr, max=float(gamma)) / (snr + 1 if prediction == "v_prediction" else snr)


def train_morphology(out, config="morph", steps=None, batch=None, lr=None, seed=0, resume=False,
                     real_maps=(), corpus=None, checkpoint_every=250, keep_checkpoints=2, log_every=10,
                     mixed_precision=None, cpu=False, num_workers=0, progress=True, callback=None,
                     log=print, init_from=None) -> dict:
    """Train a morphology model into the folder ``out`` (resumable with ``resume=True``).

    ``corpus`` (a list from :func:`build_morph_corpus`) is built from the config and ``real_maps`` when
    not given; it is cached in ``OUT/corpus.npz`` so that a resumed run does not redraw it.
    ``num_workers`` data-loader processes prepare the windows (items are pure functions of their
    index, so the batches are the same with any number). ``init_from`` (a morphology model folder)
    warm-starts a fresh run from that model's weights (its EMA weights, as exported) with a new
    optimiser, warm-up and cosine schedule, and keeps the source's sampler settings; the config must
    build the same network. A resumed run ignores it (its checkpoint holds the weights).
    Returns ``{'step', 'interrupted', 'seconds'}``.
    """
    out = Path(out)
    ck, saved = _resolve_resume("morph", out, resume)
    cfg = load_morph_config(saved["config"] if saved else config)
    t = cfg["train_unet"]
    if saved:
        seed, batch, lr = saved["seed"], saved["batch"], saved["lr"]
        steps = steps or saved["steps"]
    steps, batch, lr = int(steps or t["steps"]), int(batch or t["batch"]), float(lr or t["lr"])
    acc = _make_accelerator(mixed_precision, cpu)
    warm, warm_parts = (saved.get("init_from") if saved else None), None
    if init_from is not None and ck is None:
        # checked before the corpus, which takes minutes to draw; on parts of their own, so that the
        # global RNG and the parts trained below are what they are without a warm start
        with torch.random.fork_rng():
            warm_parts = build_morph_parts(cfg)[:2]
        warm = _warm_start(*warm_parts, init_from)
    cache = out / "corpus.npz"
    if corpus is None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        corpus = [{"labels": z[f"l{k}"], "cond": z[f"c{k}"], **meta[k]} for k in range(len(meta))]
    if corpus is None:
        corpus = build_morph_corpus(cfg, seed, real_maps, progress=progress and acc.is_main_process, log=log)
        if acc.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            arrays = {f"l{k}": e["labels"] for k, e in enumerate(corpus)}
            arrays.update({f"c{k}": e["cond"] for k, e in enumerate(corpus)})
            meta = json.dumps([{"kind": e["kind"], "name": e["name"]} for e in corpus])
            with atomic_write(cache, "wb") as fh:
                np.savez(fh, meta=np.array(meta), **arrays)
    ds = MorphWindows(corpus, cfg["patch"], cfg["representation"], seed, float(t.get("p_real", 0.2)),
                      float(t.get("p_irregular_mask", 0.15)), float(cfg.get("distance_clip", 8.0)))
    torch.manual_seed(seed)
    unet, menc, noise_sched = build_morph_parts(cfg)
    if warm_parts:
        unet.load_state_dict(warm_parts[0].state_dict())
        menc.load_state_dict(warm_parts[1].state_dict())
    module, opt, sched, ema, params = _prepare(acc, DenoiserTrainModule(unet, menc), t, lr, steps, weight_decay=1e-2,
                                               min_lr_ratio=0.05, ema_decay=0.999)
    state = dict(kind="morph", config=cfg, seed=seed, batch=batch, steps=steps, lr=lr, world=acc.num_processes)
    if warm:
        state["init_from"] = warm
    start, run, sampler = _resume("morph", ck, out, acc, state, progress, len(ds), batch, seed, steps)
    p_drop, p_uncond = float(t.get("metric_dropout", 0.15)), float(t.get("p_uncond", 0.1))
    gamma = t.get("min_snr_gamma", 5.0)
    gamma = float(gamma) if gamma else None  # None or 0: the plain loss of the parameterisation
    prediction = noise_sched.config.prediction_type
    _check_prediction(prediction)  # before any training step
    T, acp = _timesteps(noise_sched, acc.device)

    def step_fn(item, step):
        rng, g = step_rng(seed, step, acc.process_index, 3)
        x = item["x"].to(acc.device)
        b = x.shape[0]
        noise = torch.randn(x.shape, generator=g).to(acc.device)
        tt = torch.randint(0, T, (b,), generator=g).to(acc.device)
        a = acp[tt].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x + (1 - a).sqrt() * noise
        target = diffusion_target(x, noise, a, prediction)
        drop = rng.random((b, item["cond"].shape[1])) < p_drop
        drop |= (rng.random(b) < p_uncond)[:, None]
        drop = morph_drop(torch.from_numpy(drop)).to(acc.device)
        pred = module(morph_input(noisy, item["known"].to(acc.device), item["mask"].to(acc.device)), tt,
                      item["cond"].to(acc.device), drop)
        per = ((pred.float() - target.float()) ** 2).mean(dim=(1, 2, 3))
        return (min_snr_weight(a.view(-1), gamma, prediction) * per).mean()

    t0 = time.perf_counter()
    done, interrupted = _loop(run, module, opt, sched, ema, params, sampler, ds, step_fn, start, steps, batch,
                              t.get("grad_clip", 1.0), checkpoint_every, keep_checkpoints, log_every, num_workers, callback,
                              "morph")
    seconds = time.perf_counter() - t0
    result = {"step": done, "interrupted": interrupted, "seconds": seconds}
    if interrupted:
        return result
    if acc.is_main_process:
        m = acc.unwrap_model(module)
        ema.store(params)
        ema.copy_to(params)
        prov = _provenance(state, {}, acc)
        prov["corpus"] = {"synthetic": len(ds.syn), "real": [corpus[i]["name"] for i in ds.real]}
        prov["train_seconds_this_run"] = round(seconds, 1)
        if warm:
            prov["init_from"] = warm
        save_model(out, unet=m.unet, metric_encoder=m.metric_encoder, scheduler=noise_sched, info={
            "space": "pixel", "patch": cfg["patch"], "representation": cfg["representation"],
            "distance_clip": cfg.get("distance_clip", 8.0), "grain_size_range_cells": cfg["grain_size_range_cells"],
            "grain_size_statistic": "median ECD", "ema": True, "config": cfg, "provenance": {"morph": prov},
            **_inherited_sampling(warm)})
        ema.restore(params)
    acc.wait_for_everyone()
    return result


def _warm_start(unet, menc, folder) -> dict:
    """Load a model folder's UNet and metric-encoder weights into freshly built parts; returns what
    the provenance records about the source (its path and its own training record)."""
    from ..models.ldm import load_model, read_info

    folder = Path(folder)
    try:
        info = read_info(folder)
        src = load_model(folder, parts=("unet", "metric_encoder"))
    except Exception as e:  # missing, corrupt or truncated files; as `extend --model` reports them
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__
        raise InputError(f"--init-from {folder}: not a readable model folder ({why})") from None
    if src.unet is None or src.metric_encoder is None:
        raise InputError(f"--init-from {folder}: no unet/ and metric_encoder/ there; give a morphology model folder")
    try:
        unet.load_state_dict(src.unet.state_dict())
        menc.load_state_dict(src.metric_encoder.state_dict())
    except RuntimeError:
        raise InputError(f"--init-from {folder}: its network differs from the config's; pass the config "
                         "it was trained with (--config)") from None
    return {"folder": str(folder), "steps": (info.get("training") or {}).get("steps")
            or (info.get("provenance", {}).get("morph") or {}).get("steps_done"),
            "train_seconds": (info.get("training") or {}).get("train_seconds")}


def _inherited_sampling(warm) -> dict:
    """A warm-started model keeps its source's sampler settings (steps, resampling, guidance) as
    its defaults: they were chosen for the same network, and a fine-tune should not silently fall
    back to the package defaults. Empty when there is no source or it is gone."""
    from ..models.ldm import read_info

    if not warm:
        return {}
    try:
        sampling = read_info(Path(warm["folder"])).get("sampling")
    except (OSError, ValueError):
        return {}
    return {"sampling": sampling} if sampling else {}


def export_checkpoint(checkpoint, out) -> Path:
    """Write a model folder from a training checkpoint's EMA weights (e.g. to try a model while its
    training goes on, or after stopping early). Returns ``out``."""
    ck = Path(checkpoint)
    st = json.loads((ck / "trainer_state.json").read_text())
    cfg = load_morph_config(st["config"])
    unet, menc, noise_sched = build_morph_parts(cfg)
    module = DenoiserTrainModule(unet, menc)
    params = list(module.parameters())
    ema_state = None
    for p in sorted(ck.glob("custom_checkpoint_*.pkl")):
        obj = torch.load(p, map_location="cpu", weights_only=False)
        if isinstance(obj, dict) and "shadow_params" in obj:
            ema_state = obj
    if ema_state is None:
        raise InputError(f"{ck}: no EMA state in this checkpoint")
    shadow = ema_state["shadow_params"]
    if len(shadow) != len(params):
        raise InputError(f"{ck}: the EMA state does not match the config's model")
    with torch.no_grad():
        for p, s in zip(params, shadow):
            p.copy_(s)
    prov = {"kind": "morph", "steps_done": st["step"], "of_steps": st["steps"], "batch": st["batch"],
            "exported_from_checkpoint": ck.name}
    if st.get("init_from"):
        prov["init_from"] = st["init_from"]
    save_model(out, unet=unet, metric_encoder=menc, scheduler=noise_sched, info={
        "space": "pixel", "patch": cfg["patch"], "representation": cfg["representation"],
        "distance_clip": cfg.get("distance_clip", 8.0), "grain_size_range_cells": cfg["grain_size_range_cells"],
        "grain_size_statistic": "median ECD", "ema": True, "config": cfg, "provenance": {"morph": prov},
        **_inherited_sampling(st.get("init_from"))})
    return Path(out)

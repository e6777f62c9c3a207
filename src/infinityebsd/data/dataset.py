"""Training corpora: cleaned, augmented patches with their conditioning tensors, in shards that stream.

Layout of a dataset folder::

    data/
      manifest.json                 parameters, sources, and one entry per shard
      shard-00000.euler.npy         float32 (N, P, P, 3) Bunge angles (radians), fundamental zone
      shard-00000.cond.npy          float32 (N, 8, 1024) conditioning tensors of those patches
      ...

Angles are stored rather than network tensors so one corpus serves every representation; the
encoding happens when an item is read. Shards are plain ``.npy`` files opened memory-mapped, so a
corpus never has to fit in memory. Every file is written to a temporary name and renamed; the manifest
is rewritten after each shard and records which (source, window, variant) items it holds, so an
interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .._shared import atomic_write, atomic_write_text
from ..crystal import quat_to_euler
from ..errors import InputError
from ..grains import clean
from ..io import EBSDMap, read_map
from ..metrics import CONDITIONING_SHAPE, compute_metrics, conditioning_tensor
from . import representation as rep
from .augment import MODES, VARIANT_NAMES, augment

MANIFEST = "manifest.json"
MAP_SUFFIXES = (".ctf", ".ang", ".h5", ".hdf5", ".h5ebsd", ".h5oina")


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------
class _Base(torch.utils.data.Dataset):
    """Items are dicts ``{'x': float32 (C, P, P), 'cond': float32 (8, 1024)}`` as torch tensors."""

    representation = rep.DEFAULT
    info: dict = {}

    def _item(self, euler, cond):
        return {"x": torch.from_numpy(rep.encode(euler, self.representation)),
                "cond": torch.from_numpy(np.asarray(cond, dtype=np.float32))}


class ArrayDataset(_Base):
    """An in-memory dataset of angle maps ``(N, P, P, 3)`` and conditioning ``(N, 8, 1024)``
    (zeros if None); for tests and small experiments."""

    def __init__(self, euler, cond=None, representation: str = rep.DEFAULT, info: dict | None = None):
        self.euler = np.asarray(euler, dtype=np.float32)
        n, p = self.euler.shape[0], self.euler.shape[1]
        self.cond = np.zeros((n, *CONDITIONING_SHAPE), np.float32) if cond is None else np.asarray(cond, np.float32)
        self.representation = rep.check(representation)
        self.info = {"patch": int(p), "n_patches": int(n), **(info or {})}
        # Encoding is deterministic; do it once.
        self._x = np.stack([rep.encode(e, representation) for e in self.euler])

    def __len__(self):
        return len(self.euler)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self._x[i]), "cond": torch.from_numpy(self.cond[i])}


class ShardDataset(_Base):
    """A dataset folder written by :func:`build_dataset`, read lazily from memory-mapped shards.

    Works as a map-style ``torch.utils.data.Dataset`` (``len`` and indexing), so samplers can shuffle
    and resume exactly; only the shards touched are paged in.
    """

    def __init__(self, folder, representation: str | None = None):
        self.folder = Path(folder)
        mpath = self.folder / MANIFEST
        if not mpath.exists():
            raise InputError(f"{self.folder}: no {MANIFEST}; build it with 'infinityebsd dataset'")
        self.manifest = json.loads(mpath.read_text())
        self.shards = [s for s in self.manifest["shards"]]
        if not self.shards:
            raise InputError(f"{self.folder}: the dataset has no patches")
        self.counts = np.array([s["n"] for s in self.shards])
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.representation = rep.check(representation or self.manifest["params"].get("representation", rep.DEFAULT))
        self._open: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        p = self.manifest["params"]
        self.info = {"patch": p["patch"], "n_patches": int(self.offsets[-1]),
                     "grain_size_range": self.manifest.get("grain_size_range"),
                     "augment": p.get("augment"), "manifest": str(mpath.resolve())}

    def __len__(self):
        return int(self.offsets[-1])

    def _shard(self, k):
        if k not in self._open:
            if len(self._open) > 8:  # bound open memory maps
                self._open.pop(next(iter(self._open)))
            s = self.shards[k]
            self._open[k] = (np.load(self.folder / s["euler"], mmap_mode="r"),
                             np.load(self.folder / s["cond"], mmap_mode="r"))
        return self._open[k]

    def __getitem__(self, i):
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        e, c = self._shard(k)
        j = i - self.offsets[k]
        return self._item(np.array(e[j], np.float64), np.array(c[j], np.float32))

    def __getstate__(self):  # DataLoader workers reopen their own maps
        d = dict(self.__dict__)
        d["_open"] = {}
        return d


class ShardStream(torch.utils.data.IterableDataset):
    """A ``torch.utils.data.IterableDataset``-style stream over the shards, one shard in memory at a
    time, shards and items within them shuffled by ``seed``; split across DataLoader workers."""

    def __init__(self, folder, representation: str | None = None, seed: int = 0, shuffle: bool = True):
        self.ds = ShardDataset(folder, representation)
        self.seed, self.shuffle = seed, shuffle

    def __iter__(self):
        wi = torch.utils.data.get_worker_info()
        wid, nw = (wi.id, wi.num_workers) if wi else (0, 1)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.ds.shards)) if self.shuffle else np.arange(len(self.ds.shards))
        for k in order[wid::nw]:
            e, c = (np.array(a) for a in self.ds._shard(int(k)))
            idx = rng.permutation(len(e)) if self.shuffle else np.arange(len(e))
            for j in idx:
                yield self.ds._item(e[j].astype(np.float64), c[j])


def open_dataset(data, representation: str | None = None):
    """A torch Dataset from a dataset folder path, or ``data`` itself if it is already a Dataset."""
    if isinstance(data, (str, os.PathLike)):
        return ShardDataset(data, representation)
    if not isinstance(data, torch.utils.data.Dataset):
        raise InputError("training data must be a dataset folder or a torch Dataset")
    return data


# ---------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------
def find_maps(inputs) -> list[Path]:
    """Map files from paths and folders (folders searched recursively for EBSD map files)."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in MAP_SUFFIXES and q.is_file())
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not out:
        raise InputError("no EBSD map files (.ctf, .ang, .h5) found in the inputs")
    return out


def windows(shape, patch: int, overlap: float = 0.5) -> list[tuple[int, int]]:
    """Top-left corners of the sliding windows of size ``patch`` with the given overlap."""
    stride = max(1, int(round(patch * (1 - overlap))))
    rows, cols = shape
    return [(r, c) for r in range(0, rows - patch + 1, stride) for c in range(0, cols - patch + 1, stride)]


def _file_id(p: Path) -> str:
    st = p.stat()
    return hashlib.sha1(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]


def patch_conditioning(euler: np.ndarray, threshold_deg: float = 10.0):
    """Conditioning tensor (8, 1024) and median grain size (ECD, cells) of a clean patch."""
    table = compute_metrics(EBSDMap.from_euler(euler), threshold_deg=threshold_deg)
    cond = np.asarray(conditioning_tensor(table), dtype=np.float32)
    size = np.asarray(table.size, dtype=np.float64)
    return cond, float(np.median(size)) if size.size else 0.0


def build_dataset(inputs, out, patch: int = 256, overlap: float = 0.5, augment_mode: str = "physical",
                  variants=VARIANT_NAMES, shard_size: int = 64, threshold_deg: float = 10.0,
                  min_area: int = 10, merge_twins: bool = True, phase: str | None = None,
                  representation: str = rep.DEFAULT, progress: bool = True, log=print) -> dict:
    """Build (or resume building) a training corpus from EBSD maps.

    Each map is cleaned with :func:`infinityebsd.grains.clean` (the same pre-processing as the
    ``clean`` command), cut into ``patch``-sized windows with ``overlap``, each window turned into the
    requested symmetry ``variants`` (:func:`~infinityebsd.data.augment.augment`, ``augment_mode``
    'physical' or 'pixel'), and each resulting patch stored with its conditioning tensor computed on
    the patch itself. Maps smaller than the patch are skipped with a note.

    ``inputs`` are paths (files or folders) or :class:`~infinityebsd.EBSDMap` objects. Returns the
    manifest.
    """
    from tqdm.auto import tqdm

    if augment_mode not in MODES:
        raise InputError(f"unknown augmentation '{augment_mode}'; use 'physical' or 'pixel'")
    if patch < 8:
        raise InputError(f"patch size {patch} is too small; use at least 8")
    variants = [v if isinstance(v, str) else VARIANT_NAMES[v] for v in variants]
    for v in variants:
        if v not in VARIANT_NAMES:
            raise InputError(f"unknown variant '{v}'; use some of: {', '.join(VARIANT_NAMES)}")
    rep.check(representation)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    sources = []
    for item in inputs:
        if isinstance(item, EBSDMap):
            sources.append(item)
        else:
            sources += find_maps([item])

    params = dict(patch=patch, overlap=overlap, augment=augment_mode, variants=variants,
                  threshold_deg=threshold_deg, min_area=min_area, merge_twins=merge_twins, phase=phase,
                  representation=representation, shard_size=shard_size, cleaning="infinityebsd.grains.clean")
    mpath = out / MANIFEST
    if mpath.exists():
        manifest = json.loads(mpath.read_text())
        old = {k: v for k, v in manifest["params"].items() if k != "representation"}
        new = {k: v for k, v in params.items() if k != "representation"}
        if old != new:
            raise InputError(f"{out} holds a dataset built with other parameters ({old}); "
                             "use a new output folder")
    else:
        manifest = {"format": "infinityebsd-dataset/1", "params": params, "sources": [], "shards": [],
                    "skipped": [], "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    done = {tuple(it) for s in manifest["shards"] for it in s["items"]}
    src_ids = {s["id"]: s for s in manifest["sources"]}
    skipped = set(manifest.get("skipped_ids", []))

    buf_e, buf_c, buf_items, buf_sizes = [], [], [], []

    def flush():
        if not buf_e:
            return
        k = len(manifest["shards"])
        names = {"euler": f"shard-{k:05d}.euler.npy", "cond": f"shard-{k:05d}.cond.npy"}
        for key, buf in (("euler", buf_e), ("cond", buf_c)):
            with atomic_write(out / names[key], "wb") as fh:
                np.save(fh, np.stack(buf).astype(np.float32))
        manifest["shards"].append({**names, "n": len(buf_e), "items": list(buf_items),
                                   "median_grain_size": [round(s, 3) for s in buf_sizes]})
        sizes = [s for sh in manifest["shards"] for s in sh["median_grain_size"]]
        manifest["grain_size_range"] = [float(np.percentile(sizes, 5)), float(np.percentile(sizes, 95))]
        manifest["n_patches"] = int(sum(s["n"] for s in manifest["shards"]))
        atomic_write_text(mpath, json.dumps(manifest, indent=1))
        buf_e.clear(), buf_c.clear(), buf_items.clear(), buf_sizes.clear()

    bar = tqdm(total=len(sources), desc="maps", unit="map", disable=not progress)
    for src in sources:
        if isinstance(src, EBSDMap):
            m, name = src, src.source or "<array>"
            sid = hashlib.sha1(np.ascontiguousarray(src.euler).tobytes()).hexdigest()[:12]
        else:
            name, sid = str(src), _file_id(src)
        bar.set_postfix_str(Path(name).name[:30])
        if sid in skipped:
            bar.update()
            continue
        if not isinstance(src, EBSDMap):
            m = read_map(src)
        if sid not in src_ids:
            src_ids[sid] = {"id": sid, "source": name, "shape": list(m.shape)}
            manifest["sources"].append(src_ids[sid])
        wins = windows(m.shape, patch, overlap)
        if not wins:
            note = f"{name}: {m.shape[0]}x{m.shape[1]} cells is smaller than the patch ({patch}); skipped"
            log(f"note: {note}")
            manifest["skipped"].append(note)
            manifest.setdefault("skipped_ids", []).append(sid)
            skipped.add(sid)
            bar.update()
            continue
        todo = [(sid, w, v) for w in range(len(wins)) for v in variants if (sid, w, v) not in done]
        if not todo:
            bar.update()
            continue
        mc = clean(m, threshold_deg=threshold_deg, min_area=min_area, merge_twins=merge_twins, phase=phase)
        for sid_, w, v in todo:
            r0, c0 = wins[w]
            e = mc.euler[r0:r0 + patch, c0:c0 + patch]
            e = augment(e, v, augment_mode)
            # One canonical equivalent per orientation, so equal grains store equal angles.
            e = quat_to_euler(rep.canonical_quat(e))
            cond, gsize = patch_conditioning(e, threshold_deg)
            buf_e.append(e), buf_c.append(cond), buf_items.append([sid_, w, v]), buf_sizes.append(gsize)
            done.add((sid_, w, v))
            if len(buf_e) >= shard_size:
                flush()
        bar.update()
    bar.close()
    flush()
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    manifest.setdefault("n_patches", 0)
    atomic_write_text(mpath, json.dumps(manifest, indent=1))
    return manifest

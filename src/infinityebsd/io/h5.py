"""EDAX OIM HDF5 (``.h5``) reader: the first scan's ``EBSD/Header`` and ``EBSD/Data`` groups.

Angles are radians; non-indexed points have CI = −1 (the text formats' convention, kept by OIM).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError
from ._grid import place_cells
from .ang import TSL_TO_LAUE, tsl_cells
from .ebsdmap import EBSDMap, Phase


def _scalar(ds):
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.ravel()[0] if v.size else None
    if isinstance(v, bytes):
        v = v.decode("latin-1").strip("\x00 ")
    return v


# What a damaged file should say it needs, after naming what it holds instead.
_DAMAGED = "the file is damaged: export the scan again from OIM Analysis (or as .ang)"


def _shown(v) -> str:
    """A found value as a message shows it: short, on one line."""
    if v is None:  # an empty dataset
        return "nothing"
    t = repr(v.item() if isinstance(v, np.generic) else v)
    return t if len(t) <= 40 else t[:37] + "..."


def _number(path, ds, where: str, whole: bool = False):
    """The header dataset ``ds`` as a finite float (an int if ``whole``), else a :class:`FormatError`
    naming the field and what it holds: a damaged file can hold text, an empty array or a group there."""
    kind = "a whole number" if whole else "a finite number"
    if not hasattr(ds, "dtype"):
        found = "is a group"
    else:
        v = _scalar(ds)
        try:
            x = float(v)
        except (TypeError, ValueError, OverflowError):
            x = None
        if x is not None and np.isfinite(x) and (not whole or x == int(x)):
            return int(x) if whole else x
        found = f"holds {_shown(v)}"
    raise FormatError(path, f"'{where}' {found}, not {kind}; {_DAMAGED}", field=where.rsplit("/", 1)[-1])


def _text(path, ds, where: str) -> str:
    """The header dataset ``ds`` as text (any value reads as text; only a group there is damage)."""
    if not hasattr(ds, "dtype"):
        raise FormatError(path, f"'{where}' is a group, not text; {_DAMAGED}", field=where.rsplit("/", 1)[-1])
    return str(_scalar(ds))


def _column(path, ds, where: str) -> np.ndarray:
    """The data dataset ``ds`` flattened, if it holds numbers; text (or a record type) there is damage."""
    if not hasattr(ds, "dtype"):
        found = "is a group"
    elif ds.dtype.kind in "biuf":
        return np.asarray(ds[()]).ravel()
    else:
        what = "text" if ds.dtype.kind in "SUO" else f"type {ds.dtype}"
        found = f"holds {what} ({_shown(_scalar(ds))} first)" if ds.size else f"holds {what}"
    raise FormatError(path, f"'{where}' {found}, not numbers; {_DAMAGED}", field=where.rsplit("/", 1)[-1])


def read_h5(path) -> EBSDMap:
    """Read an EDAX OIM ``.h5`` file (first scan) into an :class:`EBSDMap`."""
    import h5py

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(path, f"not a readable HDF5 file ({exc})") from None
    with f:
        scans = [k for k in f.keys() if isinstance(f[k], h5py.Group) and isinstance(f[k].get("EBSD"), h5py.Group)]
        if not scans:
            raise FormatError(path, "no scan group with an 'EBSD' sub-group; not an EDAX OIM .h5 file")
        scan = f[scans[0]]["EBSD"]
        try:
            h, d = scan["Header"], scan["Data"]
        except KeyError as exc:
            raise FormatError(path, f"scan '{scans[0]}' lacks {exc}") from None

        base = f"{scans[0]}/EBSD"
        for g, name in ((h, "Header"), (d, "Data")):
            if not isinstance(g, h5py.Group):
                raise FormatError(path, f"'{base}/{name}' is a dataset, not a group; {_DAMAGED}", field=name)

        def need(group, key, where):
            if key not in group:
                raise FormatError(path, f"'{base}/{where}/{key}' is missing", field=key)
            return group[key]

        def num(key, whole=False):
            return _number(path, need(h, key, "Header"), f"{base}/Header/{key}", whole)

        def column(key):
            return _column(path, need(d, key, "Data"), f"{base}/Data/{key}")

        grid = _text(path, need(h, "Grid Type", "Header"), f"{base}/Header/Grid Type")
        if grid.lower().startswith("hex"):
            raise FormatError(path, "scan is on a hexagonal grid; only square grids are supported: "
                              "resample it to a square grid first", field="Grid Type")
        xstep, ystep = num("Step X"), num("Step Y")
        ncols, nrows = num("nColumns", whole=True), num("nRows", whole=True)
        if ncols <= 0 or nrows <= 0 or not (xstep > 0 and ystep > 0):
            raise FormatError(path, f"grid {ncols} x {nrows}, steps {xstep}, {ystep} is not usable", field="nColumns")
        cols = {k: column(k) for k in ("Phi1", "Phi", "Phi2", "X Position", "Y Position", "CI", "Phase")
                if k in d or k not in ("CI", "Phase")}  # CI and Phase may be absent; the rest must be there
        n = ncols * nrows
        for k, v in cols.items():
            if v.size != n:
                raise FormatError(path, f"'{k}' has {v.size} points, nColumns x nRows = {n}", field=k)
        ci = cols["CI"].astype(np.float64) if "CI" in cols else np.zeros(n)
        phase_col = cols["Phase"].astype(np.int32) if "Phase" in cols else np.zeros(n, np.int32)
        phases = []
        if "Phase" in h:
            ph = h["Phase"]
            if not isinstance(ph, h5py.Group):
                raise FormatError(path, f"'{base}/Header/Phase' is a dataset, not a group of phases; {_DAMAGED}",
                                  field="Phase")
            for key in sorted(ph.keys(), key=lambda s: int(s) if s.isdigit() else 0):
                g, at = ph[key], f"{base}/Header/Phase/{key}"
                if not isinstance(g, h5py.Group):
                    raise FormatError(path, f"'{at}' is a dataset, not a phase group; {_DAMAGED}", field=key)
                sym = _number(path, g["Symmetry"], f"{at}/Symmetry", whole=True) if "Symmetry" in g else 0
                lat = tuple(_number(path, g[f"Lattice Constant {c}"], f"{at}/Lattice Constant {c}")
                            if f"Lattice Constant {c}" in g else 1.0 for c in "abc")
                ang = tuple(_number(path, g[f"Lattice Constant {c}"], f"{at}/Lattice Constant {c}")
                            if f"Lattice Constant {c}" in g else 90.0 for c in ("alpha", "beta", "gamma"))
                name = _text(path, g["MaterialName"], f"{at}/MaterialName") if "MaterialName" in g else f"phase {key}"
                phases.append(Phase(name=name, laue_group=TSL_TO_LAUE.get(sym, 0), lattice=lat, angles=ang))
        if not phases:
            raise FormatError(path, "no phase described under 'Header/Phase'", field="Phase")
        # IQ and Fit only ride along for writing back; one of another length is left out, as before,
        # but text there still fails the read rather than vanish without a word.
        channels_raw = {k: column(k).astype(np.float64) for k in ("IQ", "CI", "Fit")
                        if k in d and getattr(d[k], "shape", None) and d[k].shape[0] == n}

    cells = place_cells(cols["X Position"], cols["Y Position"], xstep, ystep, ncols, nrows, path)
    order = np.empty(n, dtype=np.int64)
    order[cells] = np.arange(n)
    euler = np.stack([cols["Phi1"], cols["Phi"], cols["Phi2"]], axis=1).astype(np.float64)[order]
    pid, euler = tsl_cells(euler, ci[order], phase_col[order], len(phases))
    channels = {k: v[order].reshape(nrows, ncols) for k, v in channels_raw.items()}
    return EBSDMap(euler=euler.reshape(nrows, ncols, 3), phase_id=pid.reshape(nrows, ncols),
                   step=(ystep, xstep), phases=phases, header={"Grid Type": grid}, channels=channels,
                   source=path)

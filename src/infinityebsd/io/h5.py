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


def read_h5(path) -> EBSDMap:
    """Read an EDAX OIM ``.h5`` file (first scan) into an :class:`EBSDMap`."""
    import h5py

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(path, f"not a readable HDF5 file ({exc})") from None
    with f:
        scans = [k for k in f.keys() if isinstance(f[k], h5py.Group) and "EBSD" in f[k]]
        if not scans:
            raise FormatError(path, "no scan group with an 'EBSD' sub-group; not an EDAX OIM .h5 file")
        scan = f[scans[0]]["EBSD"]
        try:
            h, d = scan["Header"], scan["Data"]
        except KeyError as exc:
            raise FormatError(path, f"scan '{scans[0]}' lacks {exc}") from None

        def need(group, key, where):
            if key not in group:
                raise FormatError(path, f"'{scans[0]}/EBSD/{where}/{key}' is missing", field=key)
            return group[key]

        grid = str(_scalar(need(h, "Grid Type", "Header")))
        if grid.lower().startswith("hex"):
            raise FormatError(path, "scan is on a hexagonal grid; only square grids are supported: "
                              "resample it to a square grid first", field="Grid Type")
        xstep = float(_scalar(need(h, "Step X", "Header")))
        ystep = float(_scalar(need(h, "Step Y", "Header")))
        ncols = int(_scalar(need(h, "nColumns", "Header")))
        nrows = int(_scalar(need(h, "nRows", "Header")))
        if ncols <= 0 or nrows <= 0 or not (xstep > 0 and ystep > 0):
            raise FormatError(path, f"grid {ncols} x {nrows}, steps {xstep}, {ystep} is not usable", field="nColumns")
        cols = {k: np.asarray(need(d, k, "Data")[()]).ravel() for k in
                ("Phi1", "Phi", "Phi2", "X Position", "Y Position")}
        n = ncols * nrows
        for k, v in cols.items():
            if v.size != n:
                raise FormatError(path, f"'{k}' has {v.size} points, nColumns x nRows = {n}", field=k)
        ci = np.asarray(d["CI"][()]).ravel().astype(np.float64) if "CI" in d else np.zeros(n)
        phase_col = np.asarray(d["Phase"][()]).ravel().astype(np.int32) if "Phase" in d else np.zeros(n, np.int32)
        phases = []
        if "Phase" in h:
            for key in sorted(h["Phase"].keys(), key=lambda s: int(s) if s.isdigit() else 0):
                g = h["Phase"][key]
                sym = int(_scalar(g["Symmetry"])) if "Symmetry" in g else 0
                lat = tuple(float(_scalar(g[f"Lattice Constant {c}"])) if f"Lattice Constant {c}" in g
                            else 1.0 for c in "abc")
                ang = tuple(float(_scalar(g[f"Lattice Constant {c}"])) if f"Lattice Constant {c}" in g
                            else 90.0 for c in ("alpha", "beta", "gamma"))
                name = str(_scalar(g["MaterialName"])) if "MaterialName" in g else f"phase {key}"
                phases.append(Phase(name=name, laue_group=TSL_TO_LAUE.get(sym, 0), lattice=lat, angles=ang))
        if not phases:
            raise FormatError(path, "no phase described under 'Header/Phase'", field="Phase")
        channels_raw = {k: np.asarray(d[k][()]).ravel().astype(np.float64) for k in ("IQ", "CI", "Fit")
                        if k in d and d[k].shape and d[k].shape[0] == n}

    cells = place_cells(cols["X Position"], cols["Y Position"], xstep, ystep, ncols, nrows, path)
    order = np.empty(n, dtype=np.int64)
    order[cells] = np.arange(n)
    euler = np.stack([cols["Phi1"], cols["Phi"], cols["Phi2"]], axis=1).astype(np.float64)[order]
    pid, euler = tsl_cells(euler, ci[order], phase_col[order], len(phases))
    channels = {k: v[order].reshape(nrows, ncols) for k, v in channels_raw.items()}
    return EBSDMap(euler=euler.reshape(nrows, ncols, 3), phase_id=pid.reshape(nrows, ncols),
                   step=(ystep, xstep), phases=phases, header={"Grid Type": grid}, channels=channels,
                   source=path)

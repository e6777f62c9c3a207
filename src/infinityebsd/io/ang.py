"""TSL/EDAX ``.ang`` reader (angles in radians in the file and in memory).

Non-indexed points have CI = −1 or all three angles equal to 4π (12.566); single-phase files often
write phase 0 for indexed points, so the phase column is only trusted when several phases exist.
Only square grids are supported; a hexagonal grid is refused with a message that says how to resample.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import FormatError
from ._grid import check_numbers, place_cells
from .ebsdmap import SYMBOL_TO_LAUE, EBSDMap, Phase

# TSL symmetry codes to CTF Laue group numbers.
TSL_TO_LAUE = {43: 11, 23: 10, 62: 9, 6: 8, 32: 7, 3: 6, 42: 5, 4: 4, 22: 3, 2: 2, 1: 1, 20: 2, 21: 1}
FOUR_PI = 4 * np.pi


def _laue_from_tsl(text: str, path, lineno):
    t = text.strip()
    if t in SYMBOL_TO_LAUE:
        return SYMBOL_TO_LAUE[t]
    try:
        code = int(t)
    except ValueError:
        raise FormatError(path, f"symmetry '{t}' is not a TSL code or Laue symbol", line=lineno,
                          field="Symmetry") from None
    if code not in TSL_TO_LAUE:
        raise FormatError(path, f"unknown TSL symmetry code {code}", line=lineno, field="Symmetry")
    return TSL_TO_LAUE[code]


def read_ang(path) -> EBSDMap:
    """Read a TSL ``.ang`` file into an :class:`EBSDMap`."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    text = raw.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    header: dict[str, str] = {}
    phases: list[Phase] = []
    nhead = 0
    for k, line in enumerate(lines):
        if not line.startswith("#"):
            if line.strip():
                break
            nhead = k + 1
            continue
        nhead = k + 1
        body = line[1:].strip()
        m = re.match(r"([A-Za-z_ \-]+?)\s*:?\s+(.*)$", body) or re.match(r"([A-Za-z_\-]+):?$", body)
        if not m:
            continue
        key = m.group(1).strip()
        val = m.group(2).strip() if m.lastindex and m.lastindex >= 2 else ""
        if key == "Phase":
            phases.append(Phase(name=f"phase {val}", laue_group=0))
        elif key == "MaterialName":
            if not phases:
                phases.append(Phase(name=val, laue_group=0))
            phases[-1].name = val
        elif key == "Symmetry" and phases:
            phases[-1].laue_group = _laue_from_tsl(val, path, k + 1)
        elif key == "Symmetry":
            phases.append(Phase(name="phase", laue_group=_laue_from_tsl(val, path, k + 1)))
        elif key == "LatticeConstants" and phases:
            try:
                v = [float(t) for t in val.split()]
                phases[-1].lattice, phases[-1].angles = tuple(v[:3]), tuple(v[3:6])
            except (ValueError, IndexError):
                pass
        else:
            header.setdefault(key, val)

    body = "\n".join(lines[nhead:])
    first_line = nhead + 1
    rows_text = [ln for ln in lines[nhead:] if ln.strip()]
    if not rows_text:
        raise FormatError(path, "no data lines after the header; the file is empty or truncated")
    ncolumns = len(rows_text[0].split())
    if ncolumns < 8:
        raise FormatError(path, f"data lines have {ncolumns} columns; an .ang file needs at least 8 "
                          "(phi1 Phi phi2 x y IQ CI phase)", line=first_line)
    try:
        flat = np.fromstring(body, dtype=np.float64, sep=" ")  # noqa: NPY201
    except ValueError:
        flat = None
    if flat is None or flat.size % ncolumns or flat.size // ncolumns != len(rows_text):
        _locate_bad(lines, nhead, ncolumns, path)
    table = flat.reshape(-1, ncolumns)
    x, y = table[:, 3], table[:, 4]

    grid = header.get("GRID")
    if grid is None or grid.lower().startswith("hex"):
        if grid is not None or _looks_hexagonal(x, y):
            raise FormatError(path, "scan is on a hexagonal grid; only square grids are supported: "
                              "resample it to a square grid first (MTEX, OIM or DREAM.3D can)", field="GRID")
        raise FormatError(path, "required header line '# GRID: SqrGrid' is missing", field="GRID")
    for key in ("XSTEP", "YSTEP", "NCOLS_ODD", "NROWS"):
        if key not in header:
            raise FormatError(path, f"required header line '# {key}:' is missing", field=key)
    try:
        xstep, ystep = float(header["XSTEP"]), float(header["YSTEP"])
        ncols, nrows = int(header["NCOLS_ODD"]), int(header["NROWS"])
    except ValueError as exc:
        raise FormatError(path, f"grid header is not numeric ({exc})", field="XSTEP/NCOLS_ODD/NROWS") from None
    if ncols <= 0 or nrows <= 0 or not (xstep > 0 and ystep > 0):
        raise FormatError(path, f"grid {ncols} x {nrows} with steps {xstep}, {ystep} is not usable",
                          field="NCOLS_ODD/NROWS")
    expected = ncols * nrows
    if len(table) < expected:
        raise FormatError(path, f"truncated: {len(table)} data lines, but NCOLS_ODD x NROWS = {expected}",
                          line=first_line + len(rows_text) - 1)
    if len(table) > expected:
        raise FormatError(path, f"{len(table)} data lines, more than NCOLS_ODD x NROWS = {expected}")
    data_lines = np.flatnonzero([bool(ln.strip()) for ln in lines[nhead:]]) + first_line
    cells = place_cells(x, y, xstep, ystep, ncols, nrows, path, line_of=lambda i: int(data_lines[i]))
    order = np.empty(expected, dtype=np.int64)
    order[cells] = np.arange(expected)
    table = table[order]

    if not phases:
        raise FormatError(path, "no phase described in the header ('# Phase', '# Symmetry')", field="Phase")
    pid, euler = tsl_cells(table[:, :3], table[:, 6], table[:, 7], len(phases))
    for p in phases:
        if p.laue_group == 0:
            raise FormatError(path, f"phase '{p.name}' has no '# Symmetry' line", field="Symmetry")
    names = ["IQ", "CI", "PhaseIndex", "SEM", "Fit"]
    channels = {names[k - 5] if k - 5 < len(names) else f"col{k}": table[:, k].reshape(nrows, ncols)
                for k in range(5, ncolumns) if k != 7}
    return EBSDMap(euler=euler.reshape(nrows, ncols, 3), phase_id=pid.reshape(nrows, ncols),
                   step=(ystep, xstep), phases=phases, header=header, channels=channels, source=path)


def tsl_cells(euler: np.ndarray, ci: np.ndarray, phase_col: np.ndarray, n_phases: int):
    """Phase ids and angles of TSL points (``.ang`` and OIM ``.h5`` alike): ``(phase_id, euler)``.

    A point is not indexed when its CI is −1 or its three angles are 4π (OIM's two markers); it then
    gets phase id 0 and angles 0. With one phase every indexed point is phase 1 (files often write 0 in
    the phase column then); with several, the column gives the phase, and a value outside 1..n_phases
    makes the point non-indexed.
    """
    euler = np.asarray(euler, np.float64)
    phase_col = np.asarray(phase_col).astype(np.int32)
    indexed = (np.asarray(ci) != -1) & ~np.all(np.abs(euler - FOUR_PI) < 1e-3, axis=1)
    if n_phases == 1:
        pid = np.where(indexed, 1, 0)
    else:
        pid = np.where(indexed & (phase_col >= 1) & (phase_col <= n_phases), phase_col, 0)
    return pid.astype(np.int32), np.where(indexed[:, None], euler, 0.0)


def _looks_hexagonal(x, y) -> bool:
    """True when alternate rows are offset by half a step, the signature of a hexagonal scan."""
    ys = np.unique(np.round(y, 6))
    if len(ys) < 2:
        return False
    x0 = np.round(x[np.isclose(y, ys[0])].min(), 6)
    x1 = np.round(x[np.isclose(y, ys[1])].min(), 6)
    xs = np.unique(np.round(x[np.isclose(y, ys[0])], 6))
    step = np.diff(xs).min() if len(xs) > 1 else 0
    return step > 0 and abs(abs(x1 - x0) - step / 2) < step * 0.05


def _locate_bad(lines, nhead, ncolumns, path):
    for k in range(nhead, len(lines)):
        parts = lines[k].split()
        if not parts:
            continue
        if len(parts) != ncolumns:
            raise FormatError(path, f"has {len(parts)} fields, expected {ncolumns} (truncated or "
                              "malformed line)", line=k + 1)
        check_numbers(parts, path, k + 1)
    raise FormatError(path, "data block could not be parsed")

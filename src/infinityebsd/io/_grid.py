"""Placing scan points on the grid by their positions, shared by all readers."""

from __future__ import annotations

import numpy as np

from .._shared import atomic_write_bytes  # noqa: F401  (its home was here; callers still import it)
from ..errors import FormatError


def place_cells(x, y, xstep, ystep, ncols, nrows, path, line_of=None):
    """Flat indices ``row * ncols + col`` of points at positions ``(x, y)``.

    Positions are relative to the smallest X and Y present. Raises :class:`FormatError` naming the
    first offending point when a position is off the grid, outside the declared size, or repeated.
    ``line_of(i)`` gives the file line of point ``i`` for the message.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    fc = (x - x.min()) / xstep
    fr = (y - y.min()) / ystep
    col = np.rint(fc).astype(np.int64)
    row = np.rint(fr).astype(np.int64)
    where = lambda i: None if line_of is None else line_of(int(i))  # noqa: E731
    checks = (((np.abs(fc - col) > 0.1) | (np.abs(fr - row) > 0.1),
               f"is not on the declared {xstep:g} x {ystep:g} grid (is it a hexagonal grid?)"),
              ((col >= ncols) | (row >= nrows), f"lies outside the declared {ncols} x {nrows} cells"))
    for bad, what in checks:
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise FormatError(path, f"position X={x[i]:g}, Y={y[i]:g} {what}", line=where(i))
    flat = row * ncols + col
    if len(flat) == ncols * nrows and flat[0] == 0 and (np.diff(flat) == 1).all():
        return flat  # raster order: in range and no repeats by construction
    counts = np.bincount(flat, minlength=ncols * nrows)
    if (counts > 1).any():
        cell = int(np.flatnonzero(counts > 1)[0])
        i = np.flatnonzero(flat == cell)[1]
        raise FormatError(path, f"position X={x[i]:g}, Y={y[i]:g} appears twice; positions do "
                          f"not form the declared grid", line=where(i))
    return flat


def check_numbers(parts, path, line) -> None:
    """Raise :class:`FormatError` naming the first of a data line's fields that is not a number."""
    for p in parts:
        try:
            float(p)
        except ValueError:
            raise FormatError(path, f"'{p}' is not a number", line=line) from None


def on_raster(x, y, origin, xstep, ystep, ncols, start=0) -> bool:
    """Whether points ``start, start + 1, ...`` at positions ``(x, y)`` lie on cells ``start, start + 1,
    ...`` (row-major, X fastest) of the grid whose first cell is at ``origin``.

    With ``origin`` the smallest X and Y, these are the cells :func:`place_cells` gives them (the same
    arithmetic and 0.1-step tolerance). Files are nearly always written in this order, and checking it
    a chunk at a time is far cheaper than placing every point.
    """
    row, col = np.divmod(np.arange(start, start + len(x)), ncols)
    for v, o, step, index in ((x, origin[0], xstep, col), (y, origin[1], ystep, row)):
        t = np.subtract(v, o, dtype=np.float64)
        t /= step
        t -= index
        if not np.abs(t, out=t).max(initial=0.0) <= 0.1:
            return False
    return True

"""Reading and writing EBSD maps: Oxford ``.ctf``, TSL ``.ang`` and EDAX OIM ``.h5``."""

from __future__ import annotations

import os

from ..errors import FormatError, InputError
from .ang import read_ang
from .ctf import read_ctf, write_ctf
from .ebsdmap import EBSDMap, Phase
from .h5 import read_h5

READERS = {".ctf": read_ctf, ".ang": read_ang, ".h5": read_h5, ".hdf5": read_h5}


def read_map(path) -> EBSDMap:
    """Read an EBSD map from a ``.ctf``, ``.ang`` or EDAX OIM ``.h5`` file.

    Raises :class:`~infinityebsd.errors.FormatError` (a one-line message naming the file and the
    line or field) for malformed input.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise InputError(f"{path}: unknown file type '{ext}'; supported: .ctf, .ang, .h5")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    m = READERS[ext](path)
    if m.phase_id.size == 0:
        raise FormatError(path, "the map has no cells")
    return m


__all__ = ["EBSDMap", "Phase", "read_map", "read_ctf", "read_ang", "read_h5", "write_ctf"]

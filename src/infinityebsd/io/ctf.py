"""Oxford Instruments Channel Text File (.ctf) reader and writer.

Angles in the file are Bunge degrees; in memory they are radians. No reference-frame conversion is
applied in either direction, so a round trip never rotates a map. Cells are placed by their X/Y
positions, not by line order.

The layout (Oxford's text export; tab-separated, CRLF or LF line ends): a ``Channel Text File``
line, header ``key<TAB>value`` lines (``XCells``, ``YCells``, ``XStep``, ``YStep`` are required), ``Phases N``
followed by one line per phase (``a;b;c``, ``α;β;γ``, name, Laue group number, space group number),
then the column-name line (``Phase X Y Bands Error Euler1 Euler2 Euler3 MAD BC BS``; extra columns are
kept) and one line per cell, X fastest. ``Phase`` 0 means not indexed. :func:`ctf_header` shows exactly
what the writer puts before the data.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._shared import atomic_write_bytes
from ..errors import FormatError
from ._grid import check_numbers, on_raster, place_cells
from .ebsdmap import EBSDMap, Phase

REQUIRED_KEYS = ("XCells", "YCells", "XStep", "YStep")
REQUIRED_COLUMNS = ("Phase", "X", "Y", "Euler1", "Euler2", "Euler3")
MAX_CELLS = 400_000_000
_HEAD_BYTES = 1 << 20  # read first; a header is a few kB
_PART_BYTES = 16 << 20  # smallest data block worth a thread of its own
_MAX_PARTS = 8
_CHUNK_ROWS = 1 << 18  # lines pandas converts at a time: 2 MB per column, small enough to stay cached


def _number(text: str, path, line: int, field: str, kind=float, comma=False):
    t = text.strip()
    if comma:
        t = t.replace(",", ".")
    try:
        return kind(t)
    except ValueError:
        raise FormatError(path, f"'{text.strip()}' is not a valid number", line=line, field=field) from None


def _parse_header(lines, path):
    """Header dict, phases, the column names, and the index of the column-name line."""
    if not lines or not lines[0].startswith("Channel Text File"):
        raise FormatError(path, "does not start with 'Channel Text File'; not a CTF file", line=1)
    header: dict[str, str] = {}
    phases: list[Phase] = []
    i = 1
    while i < len(lines):
        line = lines[i]
        parts = line.split("\t")
        key = parts[0].strip()
        if key == "Phase" and len(parts) > 2 and parts[1].strip() == "X":
            return header, phases, [p.strip() for p in parts], i
        if key == "Phases":
            n = _number(parts[1] if len(parts) > 1 else "", path, i + 1, "Phases", int)
            header["Phases"] = str(n)
            for k in range(n):
                i += 1
                if i >= len(lines):
                    raise FormatError(path, f"file ends inside the {n} phase lines", line=i + 1)
                phases.append(_parse_phase(lines[i], path, i + 1))
        elif key:
            header[key] = "\t".join(parts[1:]).strip() if len(parts) > 1 else ""
        i += 1
    raise FormatError(path, "no column header line ('Phase\\tX\\tY\\t...') found; the file is "
                      "truncated or not a CTF file")


def _parse_phase(line: str, path, lineno: int) -> Phase:
    parts = line.split("\t")
    if len(parts) < 4:
        raise FormatError(path, "phase line needs 'a;b;c', 'alpha;beta;gamma', name and Laue group",
                          line=lineno)
    try:
        lat = tuple(float(v.replace(",", ".")) for v in parts[0].split(";"))
        ang = tuple(float(v.replace(",", ".")) for v in parts[1].split(";"))
        if len(lat) != 3 or len(ang) != 3:
            raise ValueError
    except ValueError:
        raise FormatError(path, "lattice constants must be three ';'-separated numbers each",
                          line=lineno) from None
    laue = _number(parts[3], path, lineno, "Laue group", int)
    space = _number(parts[4], path, lineno, "space group", int) if len(parts) > 4 and parts[4].strip() else 0
    return Phase(name=parts[2].strip(), laue_group=laue, space_group=space, lattice=lat, angles=ang,
                 extra=tuple(p.rstrip("\r\n") for p in parts[5:]))


def read_ctf(path) -> EBSDMap:
    """Read an Oxford ``.ctf`` file into an :class:`EBSDMap` (angles converted to radians)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        # The header is short; read it alone. The parsing threads read the (large) data block.
        head = fh.read(_HEAD_BYTES)
        if not _has_column_line(head):
            head += fh.read()  # a very long header, or none at all
        size = os.fstat(fh.fileno()).st_size
    head_end = head.find(b"\nPhase\tX\tY")
    if head_end < 0:
        head_text = head[:65536].decode("latin-1")
        _parse_header(head_text.replace("\r\n", "\n").split("\n"), path)  # raises the precise error
        raise FormatError(path, "no column header line found")
    nl = head.find(b"\n", head_end + 1)
    nl = len(head) if nl < 0 else nl
    head_lines = head[: nl + 1].decode("latin-1").replace("\r\n", "\n").rstrip("\n").split("\n")
    header, phases, columns, col_line = _parse_header(head_lines, path)
    first_data_line = col_line + 2  # 1-based

    for key in REQUIRED_KEYS:
        if key not in header:
            raise FormatError(path, f"required header key '{key}' is missing", field=key)
    comma = "," in header["XStep"] and "." not in header["XStep"]
    ncols = _number(header["XCells"], path, None, "XCells", int)
    nrows = _number(header["YCells"], path, None, "YCells", int)
    xstep = _number(header["XStep"], path, None, "XStep", float, comma)
    ystep = _number(header["YStep"], path, None, "YStep", float, comma)
    for name, v in (("XCells", ncols), ("YCells", nrows)):
        if v <= 0:
            raise FormatError(path, f"{name} = {v}; the header must give a positive number of cells", field=name)
    if ncols * nrows > MAX_CELLS:
        raise FormatError(path, f"XCells x YCells = {ncols} x {nrows} is implausibly large; the header "
                          f"is corrupted", field="XCells")
    for name, v in (("XStep", xstep), ("YStep", ystep)):
        if not v > 0:
            raise FormatError(path, f"{name} = {v} must be positive", field=name)
    for c in REQUIRED_COLUMNS:
        if c not in columns:
            raise FormatError(path, f"data column '{c}' is missing", line=col_line + 1)
    if not phases:
        raise FormatError(path, "no phase lines ('Phases N' followed by N lines)", field="Phases")

    data_start = min(nl + 1, size)
    with open(path, "rb") as fh:
        bounds = _split_lines(fh, data_start, size, _parts(size - data_start))
    ncolumns = len(columns)
    expected = ncols * nrows
    pool = ThreadPoolExecutor(len(bounds) - 1) if len(bounds) > 2 else None

    def each(fn, items):  # fn over items, side by side on the pool's threads when there is one
        return list(pool.map(fn, items)) if pool else [fn(x) for x in items]

    try:
        parts = each(lambda r: _parse_range(path, r[0], r[1], ncolumns, comma), zip(bounds[:-1], bounds[1:]))
        chunks = None if any(p is None for p in parts) else [c for p in parts for c in p if len(c[0])]
        if chunks is None or sum(len(c[0]) for c in chunks) != expected:
            with open(path, "rb") as fh:
                fh.seek(data_start)
                data = fh.read()
            _locate_bad_line(data.replace(b",", b".") if comma else data, ncolumns, expected, path,
                             first_data_line)
        index = {c: k for k, c in enumerate(columns)}
        starts = np.cumsum([0] + [len(ch[0]) for ch in chunks])
        origin = tuple(min(ch[index[c]].min() for ch in chunks) for c in ("X", "Y"))
        euler = np.empty((expected, 3))
        phase = np.empty(expected, dtype=np.int32)
        channels = {c: np.empty(expected) for c in columns if c not in REQUIRED_COLUMNS}

        def fill(k, flat=None):
            """Copy chunk k into the grids: to cells ``starts[k]...`` when ``flat`` is None (the file in
            raster order, the usual case), else to the cells ``flat`` gives. Returns whether the chunk
            was in raster order and whether its phases are all declared."""
            ch, a, b = chunks[k], starts[k], starts[k + 1]
            at = slice(a, b) if flat is None else flat[a:b]
            for j, c in enumerate(("Euler1", "Euler2", "Euler3")):
                euler[at, j] = np.deg2rad(ch[index[c]])
            for c, grid in channels.items():
                grid[at] = ch[index[c]]
            ph = ch[index["Phase"]].astype(np.int32)
            phase[at] = ph
            raster = flat is not None or on_raster(ch[index["X"]], ch[index["Y"]], origin, xstep, ystep,
                                                   ncols, start=a)
            return raster, ph.min() >= 0 and ph.max() <= len(phases)

        # numpy releases the GIL while copying, so the chunks fill side by side
        checks = each(fill, range(len(chunks)))
        flat = None
        if not all(raster for raster, _ in checks):
            x, y = (np.concatenate([ch[index[c]] for ch in chunks]) for c in ("X", "Y"))
            flat = place_cells(x, y, xstep, ystep, ncols, nrows, path, line_of=lambda i: first_data_line + i)
        if not all(ok for _, ok in checks):
            ph = np.concatenate([ch[index["Phase"]] for ch in chunks]).astype(np.int32)
            bad = int(np.flatnonzero((ph < 0) | (ph > len(phases)))[0])
            raise FormatError(path, f"phase {ph[bad]} has no phase line (file declares {len(phases)})",
                              line=first_data_line + bad, field="Phase")
        if flat is not None:  # lines out of order: place the cells by their positions after all
            each(lambda k: fill(k, flat), range(len(chunks)))
    finally:
        if pool:
            pool.shutdown()
    channels = {c: v.reshape(nrows, ncols) for c, v in channels.items()}
    header["_columns"] = "\t".join(columns)
    return EBSDMap(euler=euler.reshape(nrows, ncols, 3), phase_id=phase.reshape(nrows, ncols),
                   step=(ystep, xstep), phases=phases, header=header, channels=channels, source=path)


def _has_column_line(head: bytes) -> bool:
    i = head.find(b"\nPhase\tX\tY")
    return i >= 0 and head.find(b"\n", i + 1) >= 0


def _parts(nbytes: int) -> int:
    """How many pieces to parse the data block in: one per core, none smaller than ``_PART_BYTES``.

    pandas' tokenizer and float conversion release the GIL, so threads scale with the cores.
    """
    try:
        import pandas  # noqa: F401
    except ImportError:
        return 1  # numpy's parser holds the GIL
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, _MAX_PARTS, nbytes // _PART_BYTES))


def _split_lines(fh, start: int, stop: int, parts: int) -> list[int]:
    """Byte offsets ``start, ..., stop`` that cut ``[start, stop)`` into ``parts`` runs of whole lines."""
    bounds = [start]
    for k in range(1, parts):
        fh.seek(max(bounds[-1], start + (stop - start) * k // parts))
        pos = fh.tell()
        while True:
            block = fh.read(1 << 16)
            i = block.find(b"\n")
            if i >= 0 or not block:
                pos = pos + i + 1 if i >= 0 else stop
                break
            pos += len(block)
        if pos < stop:
            bounds.append(pos)
    return bounds + [stop]


class _FileWindow(io.BufferedIOBase):
    """Bytes ``[start, stop)`` of a file as a read-only binary file.

    Each thread streams its own part of the data block through pandas in small reads, rather than
    holding a copy of the whole part (less memory traffic, and reading overlaps parsing).
    """

    def __init__(self, path, start: int, stop: int):
        self._fh = open(path, "rb")
        self._fh.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def read(self, size=-1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._fh.read(size)
        self._left -= len(data)
        return data

    read1 = read

    def close(self):
        self._fh.close()
        super().close()


def _parse_range(path, start: int, stop: int, ncolumns: int, comma: bool):
    """:func:`_parse_table` of bytes ``[start, stop)`` of the file."""
    with _FileWindow(path, start, stop) as src:
        return _parse_table(src, ncolumns, comma)


def _parse_table(src, ncolumns: int, comma: bool):
    """The data block (a binary file) as a list of chunks of lines, each a list of ``ncolumns`` float64
    column arrays, or None when it is not a clean table (the caller then finds and names the bad line).

    pandas' C tokenizer is the fast path (several times numpy's text parser); without pandas, numpy.
    """
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        try:
            # Chunks that the caller copies straight into the grids: joining them into whole columns
            # (what pandas does otherwise) allocates ~400 MB per 2048x2048 map, and on a VM the page
            # faults took longer than the parsing.
            with pd.read_csv(src, sep="\t", header=None, dtype=np.float64, engine="c", chunksize=_CHUNK_ROWS,
                             decimal="," if comma else ".", skip_blank_lines=True) as reader:
                chunks = [_clean_columns([df[c].to_numpy() for c in df.columns], ncolumns) for df in reader]
        except pd.errors.EmptyDataError:
            return []
        except (ValueError, pd.errors.ParserError):
            return None
        return None if any(c is None for c in chunks) else chunks
    data = src.read()
    if comma:
        data = data.replace(b",", b".")
    try:
        flat = np.fromstring(data, dtype=np.float64, sep=" ")  # noqa: NPY201
    except ValueError:
        return None
    if flat.size % ncolumns:
        return None
    return [list(flat.reshape(-1, ncolumns).T)]


def _clean_columns(cols, ncolumns: int):
    """``cols`` without the empty columns that trailing tabs make, or None if any value is missing."""
    while len(cols) > ncolumns and np.isnan(cols[-1]).all():
        cols.pop()
    if len(cols) != ncolumns or any(np.isnan(c).any() for c in cols):
        return None
    return cols


def _locate_bad_line(data: bytes, ncolumns: int, expected: int, path, first_line: int):
    """Slow path, only on error: find the first malformed data line and say what is wrong."""
    lines = data.decode("latin-1").split("\n")
    n = 0
    for k, line in enumerate(lines):
        text = line.strip()
        if not text:
            continue
        parts = text.split()
        lineno = first_line + k
        if len(parts) != ncolumns:
            if n == expected:
                raise FormatError(path, f"more data lines than XCells x YCells = {expected}", line=lineno)
            raise FormatError(path, f"has {len(parts)} fields, expected {ncolumns}"
                              + ("; the file looks truncated" if k >= len(lines) - 2 else ""), line=lineno)
        check_numbers(parts, path, lineno)
        n += 1
    if n < expected:
        raise FormatError(path, f"truncated: {n} data lines, but XCells x YCells = {expected}",
                          line=first_line + len(lines) - 1)
    raise FormatError(path, f"{n} data lines, but XCells x YCells = {expected}")


_DEFAULT_HEADER = [
    ("Prj", "infinityebsd"), ("Author", "infinityebsd"), ("JobMode", "Grid"),
]
_DEFAULT_ACQ = [("AcqE1", "0"), ("AcqE2", "0"), ("AcqE3", "0")]
_EULER_LINE = ("Euler angles refer to Sample Coordinate system (CS0)!\tMag\t100\tCoverage\t100\tDevice\t0"
               "\tKV\t20\tTiltAngle\t70\tTiltAxis\t0")
_OUT_COLUMNS = ("Phase", "X", "Y", "Bands", "Error", "Euler1", "Euler2", "Euler3", "MAD", "BC", "BS")


def _phase_line(p: Phase) -> str:
    lat = ";".join(f"{v:.3f}" for v in p.lattice)
    ang = ";".join(f"{v:.3f}" for v in p.angles)
    fields = [lat, ang, p.name, str(p.laue_group), str(p.space_group), *p.extra]
    return "\t".join(fields)


def ctf_header(m: EBSDMap) -> str:
    """The header text (up to and including the column-name line) that :func:`write_ctf` writes."""
    rows, cols = m.shape
    keep = {k: v for k, v in m.header.items() if not k.startswith("_")}
    lines = ["Channel Text File"]
    for k, default in _DEFAULT_HEADER:
        lines.append(f"{k}\t{keep.get(k, default)}")
    lines += [f"XCells\t{cols}", f"YCells\t{rows}", f"XStep\t{m.step[1]:.4f}", f"YStep\t{m.step[0]:.4f}"]
    for k, default in _DEFAULT_ACQ:
        lines.append(f"{k}\t{keep.get(k, default)}")
    euler_key = next((k for k in keep if k.startswith("Euler angles refer to")), None)
    lines.append(f"{euler_key}\t{keep[euler_key]}" if euler_key else _EULER_LINE)
    lines.append(f"Phases\t{len(m.phases)}")
    lines += [_phase_line(p) for p in m.phases]
    lines.append("\t".join(_OUT_COLUMNS))
    return "\r\n".join(lines) + "\r\n"


def write_ctf(m: EBSDMap, path, chunk_rows: int = 20000) -> None:
    """Write ``m`` as an Oxford CTF file (angles in degrees, 4 decimals), atomically."""
    rows, cols = m.shape
    n = rows * cols
    r, c = np.divmod(np.arange(n), cols)
    indexed = m.phase_id.ravel() > 0

    def chan(name, default_indexed, default_other):
        if name in m.channels:
            return m.channels[name].ravel().astype(np.float64)
        return np.where(indexed, default_indexed, default_other).astype(np.float64)

    eul = np.rad2deg(m.euler.reshape(n, 3))
    eul = np.where(np.isfinite(eul), eul, 0.0)
    table = np.column_stack([
        m.phase_id.ravel(), c * m.step[1], r * m.step[0], chan("Bands", 10, 0), chan("Error", 0, 3),
        eul, chan("MAD", 0.5, 0), chan("BC", 200, 0), chan("BS", 200, 0),
    ])
    row_fmt = "%d\t%.4f\t%.4f\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t%d\r\n"

    def chunks():
        yield ctf_header(m).encode("ascii", "replace")
        for a in range(0, n, chunk_rows):
            block = table[a : a + chunk_rows]
            yield ((row_fmt * len(block)) % tuple(block.ravel().tolist())).encode("ascii")

    atomic_write_bytes(path, chunks())

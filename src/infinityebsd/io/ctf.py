"""Oxford Instruments Channel Text File (.ctf) reader and writer.

Angles in the file are Bunge degrees; in memory they are radians. No reference-frame conversion is
applied in either direction, so a round trip never rotates a map. Cells are placed by their X/Y
positions, not by line order. See ``shared/docs/ctf-format.md`` for the layout.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError
from ._grid import atomic_write_bytes, place_cells
from .ebsdmap import EBSDMap, Phase

REQUIRED_KEYS = ("XCells", "YCells", "XStep", "YStep")
REQUIRED_COLUMNS = ("Phase", "X", "Y", "Euler1", "Euler2", "Euler3")
MAX_CELLS = 400_000_000


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
        raw = fh.read()
    # The header is short; find it without decoding the (large) data block.
    head_end = raw.find(b"\nPhase\tX\tY")
    if head_end < 0:
        head_text = raw[:65536].decode("latin-1")
        _parse_header(head_text.replace("\r\n", "\n").split("\n"), path)  # raises the precise error
        raise FormatError(path, "no column header line found")
    nl = raw.find(b"\n", head_end + 1)
    nl = len(raw) if nl < 0 else nl
    head_lines = raw[: nl + 1].decode("latin-1").replace("\r\n", "\n").rstrip("\n").split("\n")
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

    data = raw[nl + 1 :]
    ncolumns = len(columns)
    expected = ncols * nrows
    cols = _parse_table(data, ncolumns, comma)
    if cols is None or len(cols[0]) != expected:
        _locate_bad_line(data.replace(b",", b".") if comma else data, ncolumns, expected, path, first_data_line)
    cols = dict(zip(columns, cols))

    flat = place_cells(cols["X"], cols["Y"], xstep, ystep, ncols, nrows, path,
                       line_of=lambda i: first_data_line + i)
    phase = cols["Phase"].astype(np.int32)
    if phase.min() < 0 or phase.max() > len(phases):
        bad = int(np.flatnonzero((phase < 0) | (phase > len(phases)))[0])
        raise FormatError(path, f"phase {phase[bad]} has no phase line (file declares {len(phases)})",
                          line=first_data_line + bad, field="Phase")

    in_order = bool((np.diff(flat) == 1).all())  # the usual case: lines already in raster order

    def grid(values, dtype=np.float64):  # file order into (rows, cols) by position
        if in_order:
            return np.asarray(values, dtype=dtype).reshape(nrows, ncols)
        out = np.empty(expected, dtype=dtype)
        out[flat] = values
        return out.reshape(nrows, ncols)

    euler = np.empty((expected, 3))
    for k, c in enumerate(("Euler1", "Euler2", "Euler3")):
        if in_order:
            euler[:, k] = cols[c]
        else:
            euler[flat, k] = cols[c]
    np.deg2rad(euler, out=euler)
    channels = {c: grid(v) for c, v in cols.items() if c not in REQUIRED_COLUMNS}
    euler = euler.reshape(nrows, ncols, 3)
    phase = grid(phase, np.int32)
    header["_columns"] = "\t".join(columns)
    return EBSDMap(euler=euler, phase_id=phase.reshape(nrows, ncols), step=(ystep, xstep),
                   phases=phases, header=header, channels=channels, source=path)


def _parse_table(data: bytes, ncolumns: int, comma: bool):
    """The data block as a list of ``ncolumns`` float64 column arrays, or None when it is not a clean
    table (the caller then finds and names the bad line).

    pandas' C tokenizer is the fast path (several times numpy's text parser); without pandas, numpy.
    """
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        import io

        try:
            df = pd.read_csv(io.BytesIO(data), sep="\t", header=None, dtype=np.float64, engine="c",
                             decimal="," if comma else ".", skip_blank_lines=True)
        except pd.errors.EmptyDataError:
            return [np.empty(0)] * ncolumns
        except (ValueError, pd.errors.ParserError):
            return None
        cols = [df[c].to_numpy() for c in df.columns]
        while len(cols) > ncolumns and np.isnan(cols[-1]).all():  # trailing tabs
            cols.pop()
        if len(cols) != ncolumns or any(np.isnan(c).any() for c in cols):
            return None
        return cols
    if comma:
        data = data.replace(b",", b".")
    try:
        flat = np.fromstring(data, dtype=np.float64, sep=" ")  # noqa: NPY201
    except ValueError:
        return None
    if flat.size % ncolumns:
        return None
    return list(flat.reshape(-1, ncolumns).T)


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
        for p in parts:
            try:
                float(p)
            except ValueError:
                raise FormatError(path, f"'{p}' is not a number", line=lineno) from None
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

"""Damaged copies of every file in shared/data/real, fed to every command that reads a map.

Each file is truncated at several points, has bits flipped (seeded), and has its header mangled
(values zeroed, made negative, NaN, huge or not numbers; lines deleted or doubled; for .h5 the header
datasets rewritten with h5py). Every command must then either succeed or exit with status 2 and one
line on stderr, never a traceback. Text formats run in process through click's runner (fast); the
.h5 cases run in a child process, because a damaged HDF5 file could crash libhdf5 itself; a few cases
of each kind also run through the installed console script.
"""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from infinityebsd.cli import main

from conftest import REAL, console_script, real

TEXT_KEYS = re.compile(r"^(#\s*)?(XCells|YCells|XStep|YStep|Phases|NCOLS_ODD|NCOLS_EVEN|NROWS|XSTEP|YSTEP|GRID|"
                       r"Phase|MaterialName|Symmetry|LatticeConstants|JobMode)\b", re.I)
BACKSTOP = "please report this reader bug"  # the wording of cli.params.read_map_checked's last resort
VALUES = ["0", "-3", "nan", "1e300", "x", "", "99999999", "2.5"]


def _all_files():
    if not REAL.is_dir():
        return ["<none>"]  # real() below skips (or fails under CI) with the folder's name
    return sorted(str(p.relative_to(REAL)) for p in REAL.rglob("*") if p.is_file())


def _header_end(data: bytes, ext: str) -> int:
    """Byte offset of the first data line of a .ctf/.ang file (the whole file if none is found)."""
    pos = 0
    for line in data.splitlines(keepends=True):
        s = line.strip()
        if ext == ".ang" and s and not s.startswith(b"#"):
            return pos
        pos += len(line)
        if ext == ".ctf" and s.lower().startswith(b"phase\tx\ty"):
            return pos
    return len(data)


def _flip(data: bytes, n: int, seed: int, stop: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    stop = len(b) if stop is None else max(1, min(stop, len(b)))
    for i in rng.integers(0, stop, n):
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def text_variants(data: bytes, ext: str):
    """(name, bytes) of damaged copies of a text file."""
    h = _header_end(data, ext)
    for name, cut in (("empty", 0), ("1-byte", 1), ("mid-header", h // 2), ("header-only", h),
                      ("half-data", h + (len(data) - h) // 2), ("last-byte-cut", len(data) - 1)):
        yield f"truncated-{name}", data[:cut]
    yield "flip-1", _flip(data, 1, 1)
    yield "flip-16-header", _flip(data, 16, 2, stop=h)
    yield "flip-64", _flip(data, 64, 3)
    lines = data.splitlines(keepends=True)
    head_n = len(data[:h].splitlines())
    keyed = [i for i in range(head_n) if TEXT_KEYS.match(lines[i].decode("latin-1").strip())]
    if ext == ".ctf":  # the phase description lines carry no key but matter most
        keyed += [i for i in range(head_n) if lines[i].count(b"\t") >= 3 and b";" in lines[i]]
        keyed += [head_n - 1]  # the column titles
    for k, i in enumerate(keyed):
        line = lines[i].decode("latin-1")
        v = VALUES[k % len(VALUES)]
        if re.search(r"\d", line):
            new = re.sub(r"-?\d+(\.\d+)?", v, line, count=1)
        else:
            new = re.sub(r"(\S+\s*[:\t ]\s*).*", lambda m: m.group(1) + v, line.rstrip("\r\n"), count=1) + "\n"
        yield f"header-line{i}-{v or 'blank'}", b"".join(lines[:i] + [new.encode("latin-1")] + lines[i + 1:])
        yield f"header-line{i}-deleted", b"".join(lines[:i] + lines[i + 1:])
    if keyed:
        i = keyed[0]
        yield f"header-line{i}-doubled", b"".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])


H5_MANGLES = [  # (name, dataset path under Scan_1/EBSD, new value or None to delete)
    ("ncols-0", "Header/nColumns", np.array([0], ">i4")),
    ("ncols-negative", "Header/nColumns", np.array([-5], ">i4")),
    ("ncols-huge", "Header/nColumns", np.array([2_000_000_000], ">i4")),
    ("ncols-text", "Header/nColumns", np.array([b"abc"])),
    ("nrows-deleted", "Header/nRows", None),
    ("stepx-0", "Header/Step X", np.array([0.0], ">f4")),
    ("stepy-nan", "Header/Step Y", np.array([np.nan], ">f4")),
    ("stepx-text", "Header/Step X", np.array([b"1,5"])),
    ("grid-hex", "Header/Grid Type", np.array([b"HexGrid"])),
    ("grid-deleted", "Header/Grid Type", None),
    ("symmetry-99", "Header/Phase/1/Symmetry", np.array([99], ">i4")),
    ("symmetry-text", "Header/Phase/1/Symmetry", np.array([b"cubic"])),
    ("phase-deleted", "Header/Phase", None),
    ("material-empty", "Header/Phase/1/MaterialName", np.array([b""])),
    ("phi1-deleted", "Data/Phi1", None),
    ("phi1-short", "Data/Phi1", np.zeros(10, "f4")),
    ("x-scrambled", "Data/X Position", None),  # filled in below: positions off the grid
    ("phase-ids-99", "Data/Phase", None),  # filled in below: ids with no phase
    ("ci-text", "Data/CI", np.array([b"x"] * 4)),
    ("data-deleted", "Data", None),
]


def h5_variants(data: bytes, folder: Path):
    """(name, path) of damaged copies of an EDAX .h5 file."""
    import h5py

    for name, cut in (("empty", 0), ("1-byte", 1), ("header-only", 4096), ("half", len(data) // 2),
                      ("last-byte-cut", len(data) - 1)):
        yield f"truncated-{name}", data[:cut]
    yield "flip-1", _flip(data, 1, 1)
    yield "flip-16", _flip(data, 16, 2)
    yield "flip-64-start", _flip(data, 64, 3, stop=8192)
    for name, key, value in H5_MANGLES:
        p = folder / f"src-{name}.h5"
        p.write_bytes(data)
        with h5py.File(p, "r+") as f:
            scan = f["Scan_1/EBSD"]
            if name == "x-scrambled":
                x = scan[key][()]
                value = x + np.random.default_rng(0).uniform(0, 0.5, x.shape).astype(x.dtype)
            elif name == "phase-ids-99":
                value = np.full(scan[key].shape, 99, scan[key].dtype)
            del scan[key]
            if value is not None:
                scan[key] = value
        yield f"h5-{name}", p.read_bytes()


def variants(rel: str, folder: Path):
    p = real(rel)
    data = p.read_bytes()
    ext = p.suffix.lower()
    if ext == ".h5":
        return list(h5_variants(data, folder))
    return list(text_variants(data, ext))


def commands(path: str, out: Path, k: int):
    """The command lines run on the k-th damaged file, once `info` has read it. metrics and clean both
    clean the map first, so they take turns; plot (the slowest, ~0.4 s) runs on every third file.
    extend and generate --like read the map (generate also measures it) before they load a model; a
    model folder that does not exist stops them there, at a one-line error, before any generation."""
    yield ["metrics", path, "--json", str(out / "m.json")] if k % 2 == 0 else ["clean", path, "-o", str(out / "c.ctf")]
    if k % 3 == 0:
        yield ["plot", path, "-o", str(out / "p.png")]
    nomodel = str(out / "no-model")
    if k % 4 == 1:
        yield ["extend", path, "--size", "512x512", "--model", nomodel, "--force", "-o", str(out / "e.ctf")]
    if k % 4 == 3:
        yield ["generate", "--like", path, "--size", "512x512", "--model", nomodel, "--force", "-o", str(out / "g.ctf")]


def verdict(code: int, stderr: str, exc=None) -> str | None:
    """None if the outcome is acceptable: success, or status 2 with one 'error:' line."""
    if code == 0:
        return None
    if code == 2 and (exc is None or isinstance(exc, SystemExit)):
        lines = stderr.strip().splitlines()
        if len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr:
            return None
    what = f"{type(exc).__name__}: {exc}" if exc is not None and not isinstance(exc, SystemExit) else stderr[-300:]
    return f"exit {code}: {what}"


CHILD = r"""
import json, sys
from click.testing import CliRunner
from infinityebsd.cli import main
runner = CliRunner()
for line in sys.stdin:
    args = json.loads(line)
    print(json.dumps({"args": args, "started": True}), flush=True)
    r = runner.invoke(main, args)
    exc = r.exception
    exc = None if exc is None or isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
    print(json.dumps({"args": args, "code": r.exit_code, "stderr": r.stderr, "exc": exc}), flush=True)
"""


def _run_child(cases, timeout):
    """Run command lines in one child process (isolating libhdf5); {tuple(args): (code, stderr, exc)}."""
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD], input="".join(json.dumps(a) + "\n" for a in cases),
                          capture_output=True, text=True, timeout=timeout, env=env)
    done, last = {}, None
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("started"):
            last = rec["args"]
        else:
            done[tuple(rec["args"])] = (rec["code"], rec["stderr"], rec["exc"])
    assert proc.returncode == 0, f"child died (status {proc.returncode}) on {last}: {proc.stderr[-500:]}"
    return done


@pytest.mark.parametrize("rel", _all_files())
def test_damaged_files_fail_in_one_line_or_work(rel, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cases = variants(rel, tmp_path)
    ext = Path(rel).suffix.lower()
    out = tmp_path / "out"
    out.mkdir()
    paths = []
    for name, data in cases:
        p = tmp_path / f"{name}{ext}"
        p.write_bytes(data)
        paths.append(str(p))
    problems, gaps, tried = [], [], 0
    if ext == ".h5":
        infos = _run_child([["info", p] for p in paths], timeout=120)
        later = []
        for k, p in enumerate(paths):
            code, err, exc = infos[("info", p)]
            if code == 0:
                later += list(commands(p, out, k))
        results = {**infos, **_run_child(later, timeout=120)}
        for args, (code, err, exc) in results.items():
            tried += 1
            bad = verdict(code, err, RuntimeError(exc) if exc else None)
            if BACKSTOP in err:
                gaps.append(err.strip()[-160:])
            if bad:
                problems.append(f"{' '.join(args)}: {bad}")
    else:
        runner = CliRunner()
        for k, p in enumerate(paths):
            r = runner.invoke(main, ["info", p])
            tried += 1
            bad = verdict(r.exit_code, r.stderr, r.exception)
            if BACKSTOP in r.stderr:
                gaps.append(r.stderr.strip()[-160:])
            if bad:
                problems.append(f"info {p}: {bad}")
            if r.exit_code != 0:
                continue
            for args in commands(p, out, k):
                r = runner.invoke(main, args)
                tried += 1
                bad = verdict(r.exit_code, r.stderr, r.exception)
                if bad:
                    problems.append(f"{' '.join(args)}: {bad}")
    print(f"{rel}: {len(cases)} damaged copies, {tried} command runs")
    if gaps:  # one line and status 2, but through the command line's backstop: worth closing in the reader
        warnings.warn(f"{rel}: {len(gaps)} damaged copies reached the reader backstop, e.g. {gaps[0]}")
    assert not problems, f"{len(problems)} of {tried} runs failed badly:\n" + "\n".join(problems[:15])
    assert len(cases) >= 8


def test_damaged_files_through_the_console_script(tmp_path):
    """A few cases end to end, through the installed `infinityebsd` entry point."""
    cli = console_script()
    cases = []
    for rel in ("ebsdlib_parser_edgecases/Test_US_1.ctf", "schulz_u720_superalloy/ebsd_3-1_Fig1.ctf"):
        p = real(rel)
        ext = p.suffix
        for name, data in list(text_variants(p.read_bytes(), ext.lower()))[1::9]:
            f = tmp_path / f"{p.stem}-{name}{ext}"
            f.write_bytes(data)
            cases.append(f)
    assert len(cases) >= 5
    for f in cases:
        r = subprocess.run([cli, "metrics", str(f)], capture_output=True, text=True, timeout=120)
        assert verdict(r.returncode, r.stderr) is None, f"{f.name}: {r.returncode} {r.stderr[-500:]}"

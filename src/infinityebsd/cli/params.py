"""Values the commands share: map sizes, output paths, and the cubic-phase check.

Output paths follow one set of rules (the README's "Output files" says the same):

* Every path a command will write is checked while the command line is parsed, before any work: its
  extension must be one the command can write (the one-line error lists them), and it must lie in a
  folder that exists or can be created. Missing folders are created.
* A file you name (``-o``, ``--json``, ``--plot``) is replaced if it exists, and the command says so.
* Side files that a command writes next to a named one (``extend``/``generate``: ``OUT.png``,
  ``OUT.plan.json``, ``OUT.metrics.json``; with ``--plan``, ``OUT.plan.png``) never replace an existing
  file unless ``--force``: you did not name them, so they must not clobber, say, an earlier
  ``plot OUT.ctf -o OUT.png``.
"""

from __future__ import annotations

import os

import click
import numpy as np

from ..errors import InputError, SymmetryError
from ..io import read_map

# What matplotlib writes with its default backend and Pillow (a matplotlib dependency); a test saves one
# figure in each so the list cannot promise a format that fails.
IMAGE_EXTS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff")
OUTPUT_KINDS = {
    "ctf": ((".ctf",), "a CTF map"),
    "image": (IMAGE_EXTS, "a picture"),
    "json": ((".json",), "JSON"),
}


def _option_name(param) -> str:
    if param is None:
        return "output"
    opts = getattr(param, "opts", None) or [param.name]
    return min(opts, key=len) if opts[0].startswith("-") else param.human_readable_name


def check_writable(path: str, what: str = "output") -> None:
    """Refuse, before any work, a path that cannot be written: an existing folder, a path under a
    file, or a folder without write permission. Folders that do not exist yet are fine (the writers
    create them)."""
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise InputError(f"{what} {path}: is a folder; give a file name")
    parent = os.path.dirname(full)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InputError(f"{what} {path}: {parent} is a file, so no folder can be made there")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: no permission to write in {parent}")


class OutputFile(click.ParamType):
    """A file a command writes, checked at parse time (extension, writable place)."""

    name = "file"

    def __init__(self, kind: str):
        self.kind = kind
        self.exts, self.what = OUTPUT_KINDS[kind]

    def convert(self, value, param, ctx):
        value = os.fspath(value)
        opt = _option_name(param)
        ext = os.path.splitext(value)[1].lower()
        if ext not in self.exts:
            cmd = f"'{ctx.info_name}'" if ctx is not None and ctx.info_name else "this command"
            have = f"'{ext}' files" if ext else "a file without an extension"
            raise InputError(f"{opt} {value}: cannot write {have} here; {cmd} writes {self.what}: "
                             f"use {', '.join(self.exts)}")
        check_writable(value, opt)
        return value


class OutputFolder(click.ParamType):
    """A folder a command writes into (created if missing), checked at parse time."""

    name = "folder"

    def convert(self, value, param, ctx):
        value = os.fspath(value)
        opt = _option_name(param)
        full = os.path.abspath(value)
        if os.path.exists(full) and not os.path.isdir(full):
            raise InputError(f"{opt} {value}: is a file, not a folder")
        check_writable(os.path.join(full, "x"), opt)
        return value


def side_files(output: str, suffixes) -> list[str]:
    """``OUT.ctf`` → ``[OUT<suffix>, ...]``, the files written beside it."""
    stem = os.path.splitext(output)[0]
    return [stem + s for s in suffixes]


def claim_side_files(output: str, paths, force: bool) -> None:
    """Refuse to start when a side file of ``output`` would replace an existing file, unless ``force``."""
    taken = [p for p in paths if os.path.exists(p)]
    if taken and not force:
        names = ", ".join(os.path.basename(p) for p in paths)
        raise InputError(f"{taken[0]} exists, and -o {output} also writes {names}; pass --force to "
                         f"replace {'them' if len(taken) > 1 else 'it'}, or choose another -o")
    for p in paths:
        check_writable(p, "side output")


def existing(*paths) -> set[str]:
    """Those of ``paths`` that exist now (call before the work, to say later which were replaced)."""
    return {p for p in paths if p and os.path.exists(p)}


def wrote(path: str, before: set[str], prefix: str = "") -> None:
    """Say ``wrote PATH``, and that it replaced a file if ``PATH`` was in ``before``."""
    click.echo(f"{prefix}wrote {path}" + (" (replaced the existing file)" if path in before else ""))


def parse_size(text: str, option: str = "--size", minimum: int = 1) -> tuple[int, int]:
    """``"512x768"`` → (512, 768) as (rows, cols). ``x``, ``X``, ``×`` or ``*`` separate the two; one
    number gives a square. Both sides at least ``minimum``; at most 10^9 cells in all."""
    parts = str(text).strip().lower().replace("×", "x").replace("*", "x").split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2:
        raise InputError(f"{option} '{text}' must read ROWSxCOLS (or one number for a square), e.g. 512x512")
    r, c = vals
    if min(r, c) < minimum:
        raise InputError(f"{option} '{text}': both sides must be at least {minimum} cells")
    if r * c > 1_000_000_000:
        raise InputError(f"{option} {r}x{c} is over 10^9 cells; generate it in parts")
    return r, c


def check_cubic(m, path) -> None:
    """Refuse, with what is supported, a map none of whose indexed phases is cubic m-3m (e.g. a
    Zircaloy scan): asking for ``--phase`` there would be advice the user cannot follow."""
    present = [int(k) for k in np.unique(m.phase_id) if 0 < k <= len(m.phases)]
    phases = [m.phases[k - 1] for k in present]
    if phases and not any(p.is_cubic for p in phases):
        desc = ", ".join(f"'{p.name}' ({p.symmetry})" for p in phases)
        raise SymmetryError(f"{path}: the map has no cubic phase ({desc}); grain analysis, plots and "
                            "generation support cubic m-3m only ('infinityebsd info' reads any symmetry)")


def read_map_checked(path, cubic: bool = True):
    """:func:`~infinityebsd.io.read_map`, then :func:`check_cubic` unless ``cubic`` is False.

    The readers turn what they know to be malformed into a one-line :class:`InputError`; anything
    else they raise on a damaged file (a text value where HDF5 should hold a number, say) is still a
    problem with that file, so it becomes one line too, naming the exception so that the reader's gap
    can be reported and closed.
    """
    try:
        m = read_map(path)
    except (InputError, FileNotFoundError, PermissionError, IsADirectoryError, MemoryError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError) as exc:
        ext = os.path.splitext(os.fspath(path))[1]
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise InputError(f"{path}: cannot be read as a {ext} map ({type(exc).__name__}: {detail}); if the "
                         "file is sound, please report this reader bug") from None
    if cubic:
        check_cubic(m, path)
    return m

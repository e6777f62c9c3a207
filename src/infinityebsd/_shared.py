"""Helpers every layer may import (like :mod:`infinityebsd.errors`, this module imports nothing
of the package): writing a file so that a reader never sees it half written.

It lives here rather than in ``io/`` because writing a file whole is not about EBSD formats, and
``data``, ``models``, ``train`` and ``evaluate`` need it as much as the CTF writer does.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from contextlib import contextmanager


@functools.cache
def _umask() -> int:
    # os.umask can only be read by setting it; do it once, not on every write from several threads.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` for the caller to write; on a clean exit rename it onto
    ``path``, otherwise delete it and leave any existing ``path`` untouched.

    The temporary file is in the same folder (a rename across file systems would not be atomic),
    hidden (a leading dot, so globs such as ``map_*.ctf`` skip it) and keeps the extension of ``path``
    (so writers that choose the format by extension, like matplotlib, still work).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    root, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{root}-", suffix=ext, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_write(path, mode: str = "w", **open_kwargs):
    """``open(path, mode)`` that only replaces ``path`` when the ``with`` block ends without an error
    (see :func:`atomic_path`). ``mode`` is ``"w"`` or ``"wb"``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole file; mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh


def atomic_write_bytes(path, chunks) -> None:
    """Write an iterable of byte strings to ``path`` whole (see :func:`atomic_path`)."""
    with atomic_write(path, "wb") as fh:
        for c in chunks:
            fh.write(c)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` whole (see :func:`atomic_path`)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


@contextmanager
def atomic_dir(path):
    """Yield a temporary folder beside ``path`` for the caller to fill; on a clean exit swap it in for
    ``path`` (an existing folder is moved aside first and removed only once the new one is in place),
    otherwise delete it and leave ``path`` untouched."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(path)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent)
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".old-{name}-", dir=parent)
            os.replace(path, os.path.join(old, name))
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

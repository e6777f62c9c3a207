"""The resumable state of a generation job: memory-mapped ``.npy`` arrays and ``state.json`` in a folder.

The arrays are written in place as the job runs; ``state.json`` (written atomically after them) says
how far it got, so a killed job resumes from its last saved wave.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .._shared import atomic_write_text
from ..errors import InputError


class Work:
    """A job folder whose arrays (named in ``ARRAYS``) are attributes of the same names."""

    ARRAYS: tuple[str, ...] = ()

    def __init__(self, folder):
        self.folder = Path(folder)

    def exists(self) -> bool:
        return (self.folder / "state.json").exists()

    def create(self, state: dict, **arrays):
        """A new job (an old folder is replaced): ``name=(dtype, shape)`` for each of ``ARRAYS``."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        for name in self.ARRAYS:
            dtype, shape = arrays[name]
            setattr(self, name, np.lib.format.open_memmap(self.folder / f"{name}.npy", "w+", dtype, tuple(shape)))
        self.state = state

    def open(self, key: str):
        """The saved job, if it was started with the same options and input (``state['key']``)."""
        self.state = json.loads((self.folder / "state.json").read_text())
        if self.state.get("key") != key:
            raise InputError(f"{self.folder}: the saved job was started with other options or input; run "
                             "without --resume to start again")
        for name in self.ARRAYS:
            setattr(self, name, np.load(self.folder / f"{name}.npy", mmap_mode="r+"))

    def save(self):
        for name in self.ARRAYS:
            getattr(self, name).flush()
        atomic_write_text(self.folder / "state.json", json.dumps(self.state))

    def end_wave(self, wave: int, first: int, stop_after_waves: int | None, n_waves: int) -> bool:
        """Record wave ``wave`` (0-based) as done and save; True when this run should stop here, i.e.
        ``stop_after_waves`` waves were run since wave ``first`` and waves remain (resumption tests)."""
        self.state["waves_done"] = wave + 1
        self.save()
        return stop_after_waves is not None and wave + 1 - first >= stop_after_waves and wave + 1 < n_waves

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

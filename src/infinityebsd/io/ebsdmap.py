"""The one map type that flows through the whole package.

Conventions
-----------
* ``euler`` holds Bunge ZXZ angles (φ1, Φ, φ2) in **radians**, shape ``(rows, cols, 3)``. The rotation
  ``g = Rz(φ1)·Rx(Φ)·Rz(φ2)`` takes crystal coordinates to sample coordinates; crystal symmetry acts
  on the right (``g·s``), so (φ1, Φ, φ2 + 90°) is the same cubic orientation and (φ1 + 90°, Φ, φ2) is not.
* Shape is ``(rows, cols) = (Y cells, X cells)``; row 0 is the first Y in the file, column 0 the first X.
* ``phase_id`` is 0 for non-indexed cells and ``k >= 1`` for ``phases[k - 1]``; ``indexed`` is
  ``phase_id > 0``. Angles of non-indexed cells are meaningless and are kept only for writing back.
* ``step`` is ``(ystep, xstep)`` in micrometres.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError, SymmetryError

# CTF Laue group numbers (Oxford convention) and their Hermann-Mauguin symbols.
LAUE_SYMBOLS = {
    1: "-1", 2: "2/m", 3: "mmm", 4: "4/m", 5: "4/mmm", 6: "-3",
    7: "-3m", 8: "6/m", 9: "6/mmm", 10: "m-3", 11: "m-3m",
}
SYMBOL_TO_LAUE = {v: k for k, v in LAUE_SYMBOLS.items()}


@dataclass
class Phase:
    """One crystallographic phase as a CTF phase line describes it."""

    name: str
    laue_group: int = 11
    space_group: int = 0
    lattice: tuple[float, float, float] = (1.0, 1.0, 1.0)
    angles: tuple[float, float, float] = (90.0, 90.0, 90.0)
    extra: tuple[str, ...] = ()

    @property
    def symmetry(self) -> str:
        """Hermann-Mauguin symbol of the Laue group, e.g. ``'m-3m'``; ``'unknown'`` if not known."""
        return LAUE_SYMBOLS.get(self.laue_group, "unknown")

    @property
    def is_cubic(self) -> bool:
        """True for the cubic high Laue group m-3m, the only one the generative pipeline supports."""
        return self.laue_group == 11


@dataclass
class EBSDMap:
    """A square-grid EBSD orientation map.

    Attributes
    ----------
    euler : float64 array (rows, cols, 3)
        Bunge Euler angles in radians.
    phase_id : int32 array (rows, cols)
        0 = not indexed, k = ``phases[k-1]``.
    step : (ystep, xstep)
        Cell size in micrometres.
    phases : list of Phase
    header : dict
        Header fields of the source file, kept so a written file carries them on.
    channels : dict of name -> array (rows, cols)
        Other per-cell columns (MAD, BC, IQ, CI, ...), kept for writing back.
    source : str
        Where the map came from (a path, or a description).
    """

    euler: np.ndarray
    phase_id: np.ndarray
    step: tuple[float, float] = (1.0, 1.0)
    phases: list[Phase] = field(default_factory=lambda: [Phase("Nickel", 11, 225, (3.6, 3.6, 3.6))])
    header: dict = field(default_factory=dict)
    channels: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        self.euler = np.asarray(self.euler, dtype=np.float64)
        self.phase_id = np.asarray(self.phase_id, dtype=np.int32)
        if self.euler.ndim != 3 or self.euler.shape[2] != 3:
            raise ValueError(f"euler must have shape (rows, cols, 3), got {self.euler.shape}")
        if self.phase_id.shape != self.euler.shape[:2]:
            raise ValueError("phase_id must have the map's (rows, cols) shape")
        self.step = (float(self.step[0]), float(self.step[1]))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_euler(cls, euler, indexed=None, step=(1.0, 1.0), phase: Phase | None = None, source=""):
        """A single-phase map from an angle array (radians); ``indexed`` defaults to all cells."""
        euler = np.asarray(euler, dtype=np.float64)
        if indexed is None:
            indexed = np.ones(euler.shape[:2], dtype=bool)
        phase = phase or Phase("Nickel", 11, 225, (3.6, 3.6, 3.6))
        return cls(euler=euler, phase_id=np.where(indexed, 1, 0), step=step, phases=[phase], source=source)

    # -- properties ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.euler.shape[:2]

    @property
    def indexed(self) -> np.ndarray:
        return self.phase_id > 0

    @property
    def indexed_fraction(self) -> float:
        return float(self.indexed.mean()) if self.phase_id.size else 0.0

    def copy(self, **changes) -> "EBSDMap":
        """A deep copy, with any attribute replaced by keyword."""
        base = dict(
            euler=self.euler.copy(), phase_id=self.phase_id.copy(), step=self.step,
            phases=[replace(p) for p in self.phases], header=dict(self.header),
            channels={k: v.copy() for k, v in self.channels.items()}, source=self.source,
        )
        base.update(changes)
        return EBSDMap(**base)

    def crop(self, row0: int, col0: int, rows: int, cols: int) -> "EBSDMap":
        """The sub-map ``[row0:row0+rows, col0:col0+cols]``."""
        sl = (slice(row0, row0 + rows), slice(col0, col0 + cols))
        return self.copy(
            euler=self.euler[sl].copy(), phase_id=self.phase_id[sl].copy(),
            channels={k: v[sl].copy() for k, v in self.channels.items()},
        )

    def phase_by_name(self, name: str) -> int:
        """The 1-based id of the phase called ``name`` (case-insensitive)."""
        for k, p in enumerate(self.phases, start=1):
            if p.name.lower() == name.lower():
                return k
        names = ", ".join(p.name for p in self.phases) or "none"
        raise InputError(f"{self.source or 'map'}: no phase named '{name}'; phases are: {names}")

    def select_phase(self, name: str | None = None) -> "EBSDMap":
        """A single-phase, cubic map, ready for grain analysis.

        With one phase present (cells of other phases absent), that phase is kept. With several,
        ``name`` picks one; cells of the other phases become non-indexed. Raises :class:`InputError`
        when the choice is ambiguous and :class:`SymmetryError` when the phase is not cubic m-3m (first,
        naming every phase, when no indexed phase of the map is cubic).
        """
        present = sorted(int(k) for k in np.unique(self.phase_id) if k > 0)
        if not present:
            raise InputError(f"{self.source or 'map'}: no indexed cells; nothing to analyse")
        known = [self.phases[k - 1] for k in present if k <= len(self.phases)]
        cubic = [p.name for p in known if p.is_cubic]
        if known and not cubic:  # checked first: advising --phase would send the user to a phase that fails too
            desc = ", ".join(f"'{p.name}' ({p.symmetry})" for p in known)
            raise SymmetryError(f"{self.source or 'map'}: the map has no cubic phase ({desc}); grain analysis, "
                                "plots and generation support cubic m-3m only ('infinityebsd info' reads any "
                                "symmetry)")
        if name is not None:
            k = self.phase_by_name(name)
        elif len(present) == 1:
            k = present[0]
        else:
            names = ", ".join(f"'{self.phases[i - 1].name}'" for i in present)
            raise InputError(
                f"{self.source or 'map'}: has several phases ({names}); this command needs one: "
                f"choose with --phase NAME"
            )
        if k > len(self.phases):
            raise InputError(f"{self.source or 'map'}: phase id {k} has no phase line in the header")
        phase = self.phases[k - 1]
        cubic_names = f" ({', '.join(repr(c) for c in cubic)})" if cubic else ""
        _check_cubic([phase], self.source, f"only cubic m-3m is supported here: choose a cubic phase with --phase "
                     f"NAME{cubic_names}")
        pid = np.where(self.phase_id == k, 1, 0).astype(np.int32)
        return self.copy(phase_id=pid, phases=[replace(phase)])

    def check_cubic(self, what: str) -> None:
        """Raise :class:`SymmetryError` naming the first phase that is not cubic m-3m; ``what`` names the
        operation that needs cubic symmetry (e.g. ``"grain reconstruction"``, ``"the IPF key"``)."""
        _check_cubic(self.phases, self.source, f"{what} here supports cubic m-3m only")

    def require_cubic(self) -> "EBSDMap":
        """This map if it holds exactly one cubic phase, else a clear error (see :meth:`select_phase`)."""
        return self.select_phase(None)


def _check_cubic(phases, source, advice: str) -> None:
    bad = next((p for p in phases if not p.is_cubic), None)
    if bad is not None:
        raise SymmetryError(f"{source or 'map'}: phase '{bad.name}' has symmetry {bad.symmetry}; {advice}")

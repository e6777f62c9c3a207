"""infinityebsd: large, statistically faithful EBSD orientation maps.

The public entry points for scripts are :func:`read_map` and :func:`write_ctf`; the sub-packages
``io`` → ``crystal`` → ``grains`` → ``metrics`` → ``data`` → ``models``/``train`` → ``pipeline`` →
``evaluate`` → ``cli`` each import only those before them.
"""

from .errors import FormatError, InputError, SymmetryError
from .io import EBSDMap, Phase, read_map, write_ctf

__version__ = "0.1.0"
__all__ = ["EBSDMap", "Phase", "read_map", "write_ctf", "InputError", "FormatError", "SymmetryError"]

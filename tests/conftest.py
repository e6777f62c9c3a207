import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("INFINITYEBSD_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


def real(rel: str) -> Path:
    """Path of a file in shared/data/real; the suite needs it (CI has it), so a missing file fails."""
    p = REAL / rel
    assert p.exists(), f"test data {p} missing: run the tests beside ../shared/data/real"
    return p


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def block_labels(rows, cols, h, w):
    """Labels of a tiling of h×w rectangular grains."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (r // h) * ((cols + w - 1) // w) + c // w

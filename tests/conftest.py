import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("INFINITYEBSD_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
# Set by .ci/run: there a missing data folder is a failure, so CI can never pass without those tests.
REQUIRE_REAL = os.environ.get("INFINITYEBSD_REQUIRE_REAL_DATA", "") not in ("", "0")


def real(rel: str) -> Path:
    """Path of a file in shared/data/real. That folder is not shipped: in a user's clone without it the
    test is skipped, naming the folder; with INFINITYEBSD_REQUIRE_REAL_DATA=1 (CI) it fails instead."""
    p = REAL / rel
    if not p.exists():
        why = (f"test data {p} missing: these tests read the real maps in {REAL} "
               f"(set INFINITYEBSD_REAL_DATA to their folder)")
        if REQUIRE_REAL:
            pytest.fail(why + "; INFINITYEBSD_REQUIRE_REAL_DATA is set, so they are required", pytrace=False)
        pytest.skip(why)
    return p


def console_script() -> str:
    """The installed `infinityebsd` entry point of the environment running the tests."""
    exe = shutil.which("infinityebsd", path=str(Path(sys.executable).parent))
    assert exe, f"no infinityebsd console script beside {sys.executable}; install the package (pip install -e .)"
    return exe


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def block_labels(rows, cols, h, w):
    """Labels of a tiling of h×w rectangular grains."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (r // h) * ((cols + w - 1) // w) + c // w


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained test-sized latent model: fast, and enough to exercise the code around a model.
    (tests/test_morphology.py defines its own, a trained tiny morphology model.)"""
    import torch

    from infinityebsd.models.ldm import (
        build_metric_encoder, build_scheduler, build_unet, build_vae, load_config, save_model,
    )

    torch.manual_seed(0)
    cfg = load_config("tiny")
    folder = tmp_path_factory.mktemp("model")
    save_model(folder, vae=build_vae(cfg), unet=build_unet(cfg), metric_encoder=build_metric_encoder(cfg),
               scheduler=build_scheduler(cfg), info={"patch": cfg["patch"], "representation": "euler",
                                                    "latent_scaling_factor": 1.0})
    return folder

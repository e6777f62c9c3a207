"""The command line: user errors are one line with a non-zero exit; outputs are real files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from infinityebsd import read_map, write_ctf
from infinityebsd.crystal import quat_to_euler, random_quat

from conftest import REPO, block_labels, real

EXAMPLE = REPO / "src" / "infinityebsd" / "examples" / "example_256.ctf"


def run(*args):
    return subprocess.run([sys.executable, "-m", "infinityebsd", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("rel", [
    "ebsdlab_copper/EBSD.ang", "ebsdlib_parser_edgecases/Corrupted_XCells.ctf",
    "ebsdlib_parser_edgecases/ShortFile.ang", "ebsdlib_parser_edgecases/ZeroXYCells.ctf",
])
def test_bad_files_fail_in_one_line(rel):
    r = run("info", real(rel))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr


def test_multiphase_needs_phase_then_works(tmp_path):
    p = real("orix_sdss_dualphase/sdss_ferrite_austenite.ang")
    r = run("clean", p, "-o", tmp_path / "a.ctf")
    assert r.returncode == 2 and "--phase" in r.stderr and "Traceback" not in r.stderr
    r = run("clean", p, "--phase", "austenite/austenite", "-o", tmp_path / "a.ctf")
    assert r.returncode == 0, r.stderr
    assert read_map(tmp_path / "a.ctf").indexed.all()


def test_non_cubic_map_is_refused(tmp_path):
    r = run("metrics", real("ebsdlib_parser_edgecases/Test_US_1.ctf"))
    assert r.returncode == 2 and "m-3m" in r.stderr and "Traceback" not in r.stderr


def test_missing_file():
    r = run("info", "does-not-exist.ctf")
    assert r.returncode == 2 and "does-not-exist.ctf" in r.stderr and "Traceback" not in r.stderr


def test_every_command_has_help_with_an_example():
    for cmd in ("info", "clean", "metrics", "plot"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "Example" in r.stdout and "infinityebsd " + cmd in r.stdout


def test_metrics_json_schema_and_values(tmp_path, rng):
    labels = block_labels(96, 96, 32, 32)
    q = random_quat(9, rng)
    from infinityebsd import EBSDMap

    m = EBSDMap.from_euler(quat_to_euler(q[labels]))
    write_ctf(m, tmp_path / "m.ctf")
    r = run("metrics", tmp_path / "m.ctf", "--json", tmp_path / "m.json", "--plot", tmp_path / "m.png",
            "--no-twins")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["shape"] == [96, 96] and doc["step"] == [1.0, 1.0]
    # random orientations can be Σ3 or <10° apart only by bad luck; this seed keeps all nine
    assert doc["n_grains"] == 9
    g = doc["grains"]
    assert set(g) >= {"area", "size", "perimeter", "inertia_ratio", "coordination", "euler", "border"}
    assert g["area"] == [1024] * 9 and g["perimeter"] == [128] * 9
    assert sorted(g["coordination"]) == [2, 2, 2, 2, 3, 3, 3, 3, 4]
    assert g["border"].count(False) == 1
    b = doc["boundaries"]
    assert len(b["pairs"]) == 12 and b["length"] == [32] * 12
    assert set(doc["distributions"]) >= {"size", "perimeter", "inertia_ratio", "coordination",
                                         "disorientation", "phi1", "Phi", "phi2"}
    for d in doc["distributions"].values():
        assert len(d["edges"]) == len(d["density"]) + 1
    assert (tmp_path / "m.png").stat().st_size > 10_000


def test_clean_and_plot_the_bundled_example(tmp_path):
    r = run("clean", EXAMPLE, "-o", tmp_path / "c.ctf")
    assert r.returncode == 0, r.stderr
    raw, cm = read_map(EXAMPLE), read_map(tmp_path / "c.ctf")
    assert cm.shape == raw.shape and cm.indexed.all() and not raw.indexed.all()
    r = run("plot", tmp_path / "c.ctf", "-o", tmp_path / "c.png")
    assert r.returncode == 0, r.stderr
    from matplotlib.image import imread

    img = imread(tmp_path / "c.png")
    assert img.shape[0] > 300 and img[..., :3].std() > 0.1  # a real, colourful picture

"""The command line: user errors are one line with a non-zero exit; outputs are real files."""

import json
import subprocess
import sys

import click
import numpy as np
import pytest

from infinityebsd import read_map, write_ctf
from infinityebsd.crystal import quat_to_euler, random_quat
from infinityebsd.errors import InputError

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


def help_examples(name):
    """The example command lines in ``infinityebsd NAME --help`` (the blocks after "Example:" or
    "Examples:"), as argument lists after the program name."""
    import shlex

    from click.testing import CliRunner

    from infinityebsd.cli import main

    r = CliRunner().invoke(main, [name, "--help"])
    assert r.exit_code == 0, r.output
    lines = r.output.split("Example")[1:]  # "Example:" or "Examples:" and what follows
    examples = []
    for block in lines:
        for line in block.splitlines()[1:]:
            words = shlex.split(line, comments=True)  # a "# note" after an example is no argument
            if not words:
                break  # a blank line ends the block
            if "infinityebsd" in words:
                examples.append(words[words.index("infinityebsd") + 1:])
    return examples


def parse_example(args):
    """Parse one example (files it names made first, empty) with click as the command line would,
    without running it: an unknown command or option, a bad choice or number, a missing required
    option raise."""
    from pathlib import Path

    from infinityebsd.cli import main

    for word in args[1:]:
        if word.startswith("-"):
            continue
        if word.endswith("/"):
            Path(word).mkdir(parents=True, exist_ok=True)
        elif Path(word).suffix:  # a shell would expand real_maps/*.ctf; a file of that name stands in
            Path(word).parent.mkdir(parents=True, exist_ok=True)
            Path(word).touch()
    name, *rest = args
    with main.commands[name].make_context(name, rest) as ctx:
        return name, ctx.params


def test_every_command_has_help_examples_that_parse(tmp_path, monkeypatch):
    from infinityebsd.cli import main

    monkeypatch.chdir(tmp_path)  # the examples' files are made here
    for name in main.commands:
        examples = help_examples(name)
        assert examples, f"'{name} --help' shows no example"
        for args in examples:
            assert parse_example(args)[0] == name, args  # the example runs the command it documents
    # the parser really checks: an unknown option, a bad choice and a missing required option fail
    for bad in (["plot", "a.ctf", "-o", "a.png", "--nope"], ["synth", "-o", "a.ctf", "--method", "magic"],
                ["extend", "small.ctf", "-o", "big.ctf"], ["generate", "--size", "64", "-o", "a.txt"]):
        with pytest.raises((click.UsageError, InputError)):
            parse_example(bad)


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

    from infinityebsd.crystal import euler_to_quat
    from infinityebsd.crystal.ipf import ipf_colors

    img = imread(tmp_path / "c.png")[..., :3]
    # the cleaned map holds one orientation per grain: its five largest grains are its five most
    # frequent orientations; the picture, larger than the map, shows each in its IPF-Z colour over
    # at least as many pixels as the grain has cells
    eulers, counts = np.unique(cm.euler.reshape(-1, 3), axis=0, return_counts=True)
    largest = np.argsort(counts)[::-1][:5]
    colours = ipf_colors(euler_to_quat(eulers[largest]), (0, 0, 1))
    for colour, n in zip(colours, counts[largest]):
        shown = (np.abs(img - colour) <= 1.5 / 255).all(axis=-1).sum()
        assert shown >= n, (colour, n, shown)

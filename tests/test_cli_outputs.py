"""Output paths through the installed console script: checked before any work, folders created,
side files never clobbering, and the output step following the target."""

import json
import subprocess

import numpy as np
import pytest

import infinityebsd as ie
from infinityebsd.cli.params import IMAGE_EXTS

from conftest import REPO, console_script, real

EXAMPLE = REPO / "src" / "infinityebsd" / "examples" / "example_256.ctf"


def run(*args, cwd=None):
    return subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**__import__("os").environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})


def one_line_error(r):
    lines = r.stderr.strip().splitlines()
    return r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, wanted", [
    (["plot", "{missing}", "-o", "{tmp}/out.txt"], ".png"),
    (["metrics", "{missing}", "--plot", "{tmp}/m.txt"], ".png"),
    (["metrics", "{missing}", "--json", "{tmp}/m.png"], ".json"),
    (["clean", "{missing}", "-o", "{tmp}/clean.png"], ".ctf"),
    (["clean", "{missing}", "-o", "{tmp}/noext"], ".ctf"),
    (["extend", "{missing}", "--size", "64x64", "-o", "{tmp}/big.png"], ".ctf"),
    (["generate", "--like", "{missing}", "--size", "64x64", "-o", "{tmp}/new.txt"], ".ctf"),
    (["synth", "-o", "{tmp}/s.png"], ".ctf"),
])
def test_unsupported_output_extension_is_refused_before_any_work(tmp_path, args, wanted):
    # the input does not exist: the output is checked first, so the error is about the output
    missing = tmp_path / "no-such-input.ctf"
    args = [a.format(missing=missing, tmp=tmp_path) for a in args]
    r = run(*args)
    assert one_line_error(r), r.stderr
    assert wanted in r.stderr and "no-such-input" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a renamed file


def test_every_listed_picture_format_really_writes(tmp_path):
    """The extensions the error lists are ones matplotlib can write here."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    for ext in IMAGE_EXTS:
        fig.savefig(tmp_path / f"f{ext}")
        assert (tmp_path / f"f{ext}").stat().st_size > 100


def test_clean_writes_the_ctf_it_was_asked_for(tmp_path):
    r = run("clean", EXAMPLE, "-o", tmp_path / "c.CTF")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["c.CTF"]


def test_missing_folders_are_created_by_every_command(tmp_path, tiny_model):
    outs = {
        "plot": (["plot", EXAMPLE, "-o", tmp_path / "a/b/ipf.png"], tmp_path / "a/b/ipf.png"),
        "clean": (["clean", EXAMPLE, "-o", tmp_path / "c/d/c.ctf"], tmp_path / "c/d/c.ctf"),
        "metrics": (["metrics", EXAMPLE, "--json", tmp_path / "e/m.json", "--plot", tmp_path / "f/m.png"],
                    tmp_path / "f/m.png"),
        "extend --plan": (["extend", EXAMPLE, "--size", "300x300", "--plan", "--model", tiny_model,
                           "-o", tmp_path / "g/h/big.ctf"], tmp_path / "g/h/big.plan.png"),
    }
    for name, (args, made) in outs.items():
        r = run(*args)
        assert r.returncode == 0, (name, r.stderr)
        assert made.is_file(), name
    assert (tmp_path / "e/m.json").is_file()


def test_an_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    for args in (["plot", EXAMPLE, "-o", tmp_path / "afile/sub/x.png"],
                 ["metrics", EXAMPLE, "--json", tmp_path / "afile/m.json"],
                 ["clean", EXAMPLE, "-o", tmp_path / "afile/c.ctf"],
                 ["evaluate", EXAMPLE, "--target", EXAMPLE, "--report", tmp_path / "afile"]):
        r = run(*args)
        assert one_line_error(r), (args, r.stderr)
        assert "afile" in r.stderr


def test_no_cubic_phase_says_so_not_choose_a_phase(tmp_path):
    zirc = real("ebsdlib_parser_edgecases/Test_US_1.ctf")
    for args in (["metrics", zirc], ["plot", zirc, "-o", tmp_path / "z.png"], ["clean", zirc, "-o", tmp_path / "z.ctf"],
                 ["generate", "--like", zirc, "--size", "64x64", "-o", tmp_path / "z.ctf"]):
        r = run(*args)
        assert one_line_error(r), (args, r.stderr)
        assert "no cubic phase" in r.stderr and "6/mmm" in r.stderr and "m-3m" in r.stderr
        assert "--phase" not in r.stderr
    assert run("info", zirc).returncode == 0  # reading any symmetry is supported


def test_a_multiphase_map_with_a_cubic_phase_still_points_to_phase(tmp_path):
    r = run("metrics", real("orix_sdss_dualphase/sdss_ferrite_austenite.ang"))
    assert one_line_error(r) and "--phase" in r.stderr


def _header_step(path):
    head = dict(line.split("\t")[:2] for line in path.read_text().splitlines()[:12] if "\t" in line)
    return float(head["YStep"]), float(head["XStep"])


def test_side_files_never_clobber_and_the_step_follows_the_input(tmp_path, tiny_model):
    m = ie.read_map(EXAMPLE).crop(0, 0, 40, 40)
    m.step = (2.5, 2.5)
    ie.write_ctf(m, tmp_path / "in.ctf")
    mine = tmp_path / "big.png"
    mine.write_bytes(b"a picture the user made earlier")
    args = ["extend", tmp_path / "in.ctf", "--size", "48x56", "--steps", "1", "--model", tiny_model,
            "-o", tmp_path / "big.ctf"]
    r = run(*args)
    assert one_line_error(r), r.stderr
    assert "big.png" in r.stderr and "--force" in r.stderr
    assert mine.read_bytes() == b"a picture the user made earlier" and not (tmp_path / "big.ctf").exists()

    r = run(*args, "--force")
    assert r.returncode == 0, r.stderr
    assert mine.read_bytes()[:4] == b"\x89PNG"  # replaced, as --force asked
    out = tmp_path / "big.ctf"
    assert _header_step(out) == (2.5, 2.5) and ie.read_map(out).shape == (48, 56)
    assert json.loads((tmp_path / "big.metrics.json").read_text())["step"] == [2.5, 2.5]
    for side in ("big.ctf", "big.png", "big.plan.json", "big.metrics.json"):
        assert f"wrote {tmp_path / side}" in r.stdout

    # the user names big.png: that file is theirs to replace, and the command says it did
    r = run("plot", out, "-o", mine)
    assert r.returncode == 0, r.stderr
    assert "replaced" in r.stdout


def _fake_generation(monkeypatch):
    """Stand-ins for the model and the window loop, so the test sees only what the command line does
    with their result (an untrained model gives noise, which the post-processing rightly refuses)."""
    from infinityebsd.cli import generate as gen
    from infinityebsd.crystal import quat_to_euler, random_quat
    from infinityebsd.pipeline import extend as ext
    from infinityebsd.pipeline.planner import make_plan

    from conftest import block_labels

    class Pipe:
        patch = 32

    def fake_extend(pipe, input_map, size, **kw):
        labels = block_labels(size[0], size[1], 8, 8)
        q = random_quat(int(labels.max()) + 1, np.random.default_rng(0))
        m = ie.EBSDMap.from_euler(quat_to_euler(q[labels]))  # a bare map's 1 µm step
        return ext.Result(map=m, plan=make_plan(size, 32), scale=1.0, input_box=None)

    monkeypatch.setattr(gen, "load_pipeline", lambda model_dir, device, precision="auto": Pipe())
    monkeypatch.setattr(ext, "extend", fake_extend)


def test_generate_writes_the_target_step(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from infinityebsd.cli import main

    _fake_generation(monkeypatch)
    um = tmp_path / "um.json"
    um.write_text(json.dumps({"units": "um", "step": 1.5, "metrics": {"size": {"values": [15.0, 30.0, 22.5]}}}))
    ref = ie.read_map(EXAMPLE).crop(0, 0, 64, 64)
    ref.step = (2.0, 2.0)
    ie.write_ctf(ref, tmp_path / "ref.ctf")
    doc = tmp_path / "doc.json"  # what `metrics --json` writes, with its [y, x] step
    assert CliRunner().invoke(main, ["metrics", str(tmp_path / "ref.ctf"), "--json", str(doc)]).exit_code == 0
    for name, target, want in (("um", ["--metrics", um], (1.5, 1.5)),
                               ("like", ["--like", tmp_path / "ref.ctf"], (2.0, 2.0)),
                               ("doc", ["--metrics", doc], (2.0, 2.0))):
        out = tmp_path / f"{name}.ctf"
        r = CliRunner().invoke(main, ["generate", *map(str, target), "--size", "64x64", "-o", str(out)])
        assert r.exit_code == 0, (name, r.output, r.exception)
        assert _header_step(out) == want, name
        assert ie.read_map(out).step == want
        assert json.loads((tmp_path / f"{name}.metrics.json").read_text())["step"] == list(want)


def test_metrics_json_target_keeps_its_step(tmp_path):
    from infinityebsd.cli.generate import target_step
    from infinityebsd.errors import InputError

    cases = {'{"metrics": {}, "step": [2.0, 3.0]}': (2.0, 3.0), '{"units": "um", "step": 1.5}': (1.5, 1.5),
             '{"metrics": {}}': (1.0, 1.0)}
    for text, want in cases.items():
        (tmp_path / "t.json").write_text(text)
        assert target_step(tmp_path / "t.json") == want
    (tmp_path / "t.json").write_text('{"step": "1.5"}')
    with pytest.raises(InputError, match="step"):
        target_step(tmp_path / "t.json")


def test_parse_size_one_rule_for_every_command(tmp_path):
    from infinityebsd.cli import generate, params, synth
    from infinityebsd.errors import InputError

    assert generate.parse_size is params.parse_size and synth.parse_size is params.parse_size
    for text, want in {"512x768": (512, 768), "512X768": (512, 768), "512×768": (512, 768),
                       "512*768": (512, 768), " 64 ": (64, 64), "1x1": (1, 1)}.items():
        assert params.parse_size(text) == want
    for bad in ("", "x", "12x", "axb", "1x2x3", "0x5", "-4x4", "100000x100000"):
        with pytest.raises(InputError):
            params.parse_size(bad)
    with pytest.raises(InputError, match="at least 8"):
        params.parse_size("4x64", minimum=8)
    # through the commands: the same text means the same size
    r = run("synth", "-o", tmp_path / "x.ctf", "--size", "4x4")
    assert one_line_error(r) and "at least 8" in r.stderr
    assert np.array_equal(params.parse_size("96"), (96, 96))


def test_window_option_sets_the_plan_and_is_refused_where_there_is_none(tmp_path):
    import re

    def windows(*extra):
        r = run("extend", EXAMPLE, "--size", "1024", "--plan", "-o", tmp_path / "p.ctf", "--force", *extra)
        assert r.returncode == 0, r.stderr
        return int(re.search(r"(\d+) windows in", r.stdout).group(1))

    # the shipped model's 128-cell windows overlap by 24 cells; 64-cell ones at the same overlap in
    # cells (0.375) need about four times as many windows to cover the same canvas
    default, small = windows(), windows("--window", "64", "--overlap", "0.375")
    assert small > 3 * default
    r = run("extend", EXAMPLE, "--size", "300", "--method", "growth", "--window", "64", "-o", tmp_path / "g.ctf")
    assert one_line_error(r) and "--window" in r.stderr

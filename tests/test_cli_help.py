"""Help texts, the README's promises about the command line, the real-data skip and the warning filter."""

import os
import re
import subprocess
import sys
import textwrap
import warnings

import click

from infinityebsd.cli import main

from conftest import REPO, console_script

README = (REPO / "README.md").read_text()


def help_of(*cmd):
    r = subprocess.run([console_script(), *cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_main_help_shows_no_markup():
    out = help_of()
    assert "``" not in out and "infinityebsd COMMAND --help" in out


def test_every_option_of_every_command_has_help_and_no_markup():
    ctx = click.Context(main)
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert (p.help or "").strip(), f"{name} {p.opts[0]} has no help text"
        text = cmd.get_help(click.Context(cmd, info_name=name, parent=ctx))
        assert "``" not in text, name


def test_example_lines_have_no_runs_of_spaces():
    """An example is one command per line, as typed: no backslash joins that leave gaps."""
    for name in ("extend", "generate", "train", "synth", "clean"):
        for line in help_of(name).splitlines():
            s = line.strip()
            if s.startswith(("infinityebsd ", "accelerate ", "torchrun ")):
                assert not re.search(r"\S {3,}\S", s.split("#")[0].rstrip()), f"{name}: {line!r}"


def test_train_config_help_names_every_shipped_config():
    shipped = sorted(p.stem for p in (REPO / "src" / "infinityebsd" / "configs").glob("*.json"))
    assert "compact" in shipped
    flat = " ".join(help_of("train").split())
    for c in shipped:
        assert c in flat, c


def test_generation_help_lists_side_files_and_force():
    for cmd in ("extend", "generate"):
        out = help_of(cmd)
        for side in ("OUT.png", "OUT.plan.json", "OUT.metrics.json", "OUT.plan.png", "--force"):
            assert side in out, (cmd, side)


def test_readme_names_every_generation_option_and_the_side_files():
    for name in ("extend", "generate"):
        for p in main.commands[name].params:
            if isinstance(p, click.Option) and p.name != "help":
                for opt in p.secondary_opts:  # --no-refine as well as --refine
                    assert opt in README, f"README lacks {name} {opt}"
                assert any(re.search(re.escape(o) + r"\b", README) for o in p.opts), f"README lacks {name} {p.opts}"
    for side in ("OUT.png", "OUT.plan.json", "OUT.metrics.json", "OUT.plan.png", "--force"):
        assert side in README
    assert "are created" in README  # the missing-folder rule, stated once for every command


def test_readme_says_how_to_reach_the_command_right_under_the_two_commands():
    first_block_end = README.index("```", README.index("bash scripts/test.sh"))
    after = README[first_block_end:first_block_end + 300]
    assert "source .venv/bin/activate" in after and ".venv/bin/infinityebsd" in after


def test_readme_gives_the_measured_demo_time_split():
    assert "few minutes" not in README
    assert re.search(r"set-up\*\*[^.]*\d+ min", README) and re.search(r"generation\*\*[^.]*\d+ s", README)


def test_missing_real_data_skips_naming_the_folder_and_ci_makes_it_fail(tmp_path):
    (tmp_path / "test_needs_data.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from conftest import real

        def test_reads_a_real_map():
            real("some/map.ctf")
    """))
    absent = tmp_path / "no-data-here"
    env = {**os.environ, "INFINITYEBSD_REAL_DATA": str(absent)}
    env.pop("INFINITYEBSD_REQUIRE_REAL_DATA", None)
    args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "1 skipped" in r.stdout and str(absent) in r.stdout, r.stdout
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**env, "INFINITYEBSD_REQUIRE_REAL_DATA": "1"})
    assert r.returncode == 1 and "1 failed" in r.stdout and str(absent) in r.stdout, r.stdout
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^export INFINITYEBSD_REQUIRE_REAL_DATA=1$", ci, re.M)
    assert ci.index("INFINITYEBSD_REQUIRE_REAL_DATA") < ci.index("scripts/test.sh")


def test_pytest_config_filters_only_the_dpm_numpy2_warning(pytestconfig):
    from _pytest.config import parse_warning_filter

    message = ("__array__ implementation doesn't accept a copy keyword, so passing copy=False failed. "
               "__array__ must implement 'dtype' and 'copy' keyword arguments.")

    def shown(module, text=message, category=DeprecationWarning):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            for f in pytestconfig.getini("filterwarnings"):
                warnings.filterwarnings(*parse_warning_filter(f, escape=False))
            warnings.warn_explicit(text, category, "x.py", 1, module=module)
        return len(rec)

    assert shown("diffusers.schedulers.scheduling_dpmsolver_multistep") == 0
    assert shown("infinityebsd.pipeline.inpaint") == 1  # the same message from our code still shows
    assert shown("diffusers.schedulers.scheduling_dpmsolver_multistep", text="something else") == 1
    # and the scheduler itself, as the pipeline uses it, leaves nothing behind under this configuration
    from diffusers import DPMSolverMultistepScheduler

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for f in pytestconfig.getini("filterwarnings"):
            warnings.filterwarnings(*parse_warning_filter(f, escape=False))
        DPMSolverMultistepScheduler(num_train_timesteps=1000).set_timesteps(20)
    assert not [w for w in rec if "copy keyword" in str(w.message)]

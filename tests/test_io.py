"""Readers and writers: round trips through orix and DefDAP, real files, and bad input."""

import os
from pathlib import Path

import numpy as np
import pytest

from infinityebsd import EBSDMap, FormatError, InputError, Phase, read_map, write_ctf
from infinityebsd.io.ctf import ctf_header

from conftest import real


def _random_map(rng, rows=37, cols=53, unindexed=0.1):
    euler = np.stack([rng.uniform(0, 2 * np.pi, (rows, cols)), rng.uniform(0, np.pi, (rows, cols)),
                      rng.uniform(0, 2 * np.pi, (rows, cols))], axis=-1)
    pid = (rng.random((rows, cols)) > unindexed).astype(np.int32)
    return EBSDMap(euler=euler, phase_id=pid, step=(0.5, 0.25),
                   phases=[Phase("Nickel", 11, 225, (3.524, 3.524, 3.524))])


def test_ctf_round_trip_ours_orix_defdap(tmp_path, rng):
    m = _random_map(rng)
    p = tmp_path / "m.ctf"
    write_ctf(m, p)
    back = read_map(p)
    assert back.shape == m.shape and back.step == m.step
    ok = m.indexed
    np.testing.assert_array_equal(back.phase_id, m.phase_id)
    np.testing.assert_allclose(np.rad2deg(back.euler[ok]), np.rad2deg(m.euler[ok]), atol=1e-4)
    assert back.phases[0].name == "Nickel" and back.phases[0].laue_group == 11
    assert back.phases[0].space_group == 225 and back.phases[0].lattice == (3.524, 3.524, 3.524)

    from orix import io as oio

    xm = oio.load(p)
    assert xm.shape == m.shape
    assert xm.phases[1].name == "Nickel"
    # orix keeps the file's angles (radians) per point in file order: X fastest
    np.testing.assert_allclose(np.rad2deg(xm.rotations.to_euler()[ok.ravel()]),
                               np.rad2deg(m.euler.reshape(-1, 3)[ok.ravel()]), atol=2e-4)
    np.testing.assert_array_equal(xm.phase_id.reshape(m.shape) > 0, ok)

    from defdap.file_readers import EBSDDataLoader

    loader = EBSDDataLoader.get_loader("oxfordtext", p)
    loader.load(p)
    assert loader.loaded_metadata["shape"] == m.shape
    ph = loader.loaded_metadata["phases"][0]
    assert ph.name == "Nickel" and ph.laue_group == 11
    dd = np.rad2deg(np.asarray(loader.loaded_data.euler_angle, dtype=np.float64)).transpose(1, 2, 0)
    np.testing.assert_allclose(dd[ok], np.rad2deg(m.euler[ok]), atol=1e-4)


def test_cells_placed_by_position_not_line_order(tmp_path, rng):
    m = _random_map(rng, 12, 17, unindexed=0)
    p = tmp_path / "a.ctf"
    write_ctf(m, p)
    lines = p.read_text().splitlines()
    head = len(ctf_header(m).splitlines())
    data = lines[head:]
    order = rng.permutation(len(data))
    shuffled = tmp_path / "b.ctf"
    shuffled.write_text("\n".join(lines[:head] + [data[i] for i in order]) + "\n")
    back = read_map(shuffled)
    np.testing.assert_allclose(back.euler, read_map(p).euler)


def test_comma_decimal_marks_read_like_points():
    eu = read_map(real("ebsdlib_parser_edgecases/Test_European_1.ctf"))
    us = read_map(real("ebsdlib_parser_edgecases/Test_US_1.ctf"))
    assert eu.shape == us.shape == (5, 40)
    assert eu.step == us.step == (0.5, 0.5)
    np.testing.assert_allclose(eu.euler, us.euler)
    np.testing.assert_array_equal(eu.phase_id, us.phase_id)
    assert eu.phases[0].symmetry == "6/mmm" and eu.phases[0].lattice[2] == pytest.approx(5.148)


@pytest.mark.parametrize("rel, words", [
    ("ebsdlib_parser_edgecases/Corrupted_XCells.ctf", ["XCells"]),
    ("ebsdlib_parser_edgecases/ZeroXYCells.ctf", ["XCells"]),
    ("ebsdlib_parser_edgecases/ShortFile.ang", ["truncated", "line"]),
    ("ebsdlib_parser_edgecases/HexHeader.ang", ["hexagonal"]),
    ("ebsdlib_parser_edgecases/GridMissing.ang", ["GRID", "missing"]),
    ("ebsdlab_copper/EBSD.ang", ["hexagonal"]),
])
def test_bad_real_files_give_one_line_errors(rel, words):
    p = real(rel)
    with pytest.raises(FormatError) as exc:
        read_map(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg
    for w in words:
        assert w in msg


def _write_variant(tmp_path, rng, edit):
    m = _random_map(rng, 6, 7, unindexed=0)
    p = tmp_path / "ok.ctf"
    write_ctf(m, p)
    lines = p.read_text().splitlines()
    lines = edit(lines)
    q = tmp_path / "bad.ctf"
    q.write_text("\n".join(lines) + "\n")
    return q


@pytest.mark.parametrize("edit, words", [
    (lambda L: L[:-5], ["truncated"]),
    (lambda L: L[:-1] + [L[-1].rsplit("\t", 3)[0]], ["fields", "line 57"]),
    (lambda L: [l.replace("XCells\t7", "XCells\tseven") for l in L], ["XCells", "seven"]),
    (lambda L: [l for l in L if not l.startswith("YStep")], ["YStep", "missing"]),
    (lambda L: L, []),
    (lambda L: L[:25] + ["1\t0.5000\t0.0000\t10\t0\t12.0\tfoo\t3.0\t0.5\t200\t200"] + L[26:], ["foo", "line 26"]),
    (lambda L: L[:16] + [L[16].replace("\t0.2500\t", "\t0.1300\t", 1)] + L[17:], ["grid", "line 17"]),
    (lambda L: ["Channel Text Fil"] + L[1:], ["not a CTF"]),
], ids=["truncated", "short-line", "non-numeric-header", "missing-key", "unchanged", "non-numeric-field",
        "off-grid", "not-ctf"])
def test_malformed_ctf(tmp_path, rng, edit, words):
    p = _write_variant(tmp_path, rng, edit)
    if not words:  # control: the unchanged file reads
        assert read_map(p).shape == (6, 7)
        return
    with pytest.raises(FormatError) as exc:
        read_map(p)
    for w in words:
        assert w in str(exc.value)


def test_ang_matches_orix():
    p = real("kanapy_316L_am/ebsd_316L_500x500.ang")
    m = read_map(p)
    assert m.shape == (169, 169) and m.step == pytest.approx((2.961, 2.961))
    assert m.phases[0].is_cubic
    from orix import io as oio

    xm = oio.load(p)
    e = xm.rotations.to_euler()
    # orix keeps file order (X fastest); place them by their x, y like we do
    col = np.rint(xm.x / 2.961).astype(int)
    row = np.rint(xm.y / 2.961).astype(int)
    ours = m.euler[row, col]
    ok = m.indexed[row, col]
    from infinityebsd.crystal import disorientation_angle, euler_to_quat

    # orix may normalise angles differently; compare the rotations they describe
    d = disorientation_angle(euler_to_quat(ours[ok]), euler_to_quat(e[ok]))
    assert np.rad2deg(d).max() < 1e-3


def test_multiphase_maps_read_and_need_a_phase_choice():
    for rel in ("orix_sdss_dualphase/sdss_ferrite_austenite.ang", "schulz_u720_superalloy/ebsd_3-1_Fig1.ctf"):
        m = read_map(real(rel))
        assert len(m.phases) >= 2
        present = set(np.unique(m.phase_id)) - {0}
        assert len(present) >= 2
        with pytest.raises(InputError, match="--phase"):
            m.select_phase(None)
        one = m.select_phase(m.phases[0].name)
        assert set(np.unique(one.phase_id)) <= {0, 1}
        assert one.indexed.sum() == (m.phase_id == 1).sum()
    u = read_map(real("schulz_u720_superalloy/ebsd_3-1_Fig1.ctf"))
    assert 0.2 < 1 - u.indexed_fraction < 0.26  # the README's 23 % non-indexed


def test_edax_h5():
    m = read_map(real("dream3d_edax_ni_h5/EdaxAngOnly.h5"))
    assert m.shape == (151, 186) and m.step == (1.5, 1.5)
    assert m.phases[0].name == "Nickel" and m.phases[0].is_cubic
    assert m.indexed_fraction > 0.9
    # neighbouring cells mostly belong to the same grain: small disorientations dominate
    from infinityebsd.crystal import disorientation_angle, euler_to_quat

    q = euler_to_quat(m.euler)
    d = np.rad2deg(disorientation_angle(q[:, :-1], q[:, 1:]))
    assert np.median(d) < 2.0


@pytest.mark.parametrize("key, value, found", [
    ("Header/nColumns", np.array([b"abc"]), "'abc', not a whole number"),
    ("Header/nRows", np.array([b"151 rows"]), "'151 rows', not a whole number"),
    ("Header/nColumns", np.array([186.5]), "186.5, not a whole number"),
    ("Header/Step X", np.array([b"1,5"]), "'1,5', not a finite number"),
    ("Header/Step Y", np.array([b"x"]), "'x', not a finite number"),
    ("Header/Step Y", np.zeros(0, ">f4"), "nothing, not a finite number"),
    ("Header/Phase/1/Symmetry", np.array([b"cubic"]), "'cubic', not a whole number"),
    ("Header/Phase/1/Lattice Constant a", np.array([b"3,56"]), "'3,56', not a finite number"),
    ("Data/CI", np.array([b"x"] * 4), "text ('x' first), not numbers"),
    ("Data/X Position", np.full(151 * 186, b"0.0"), "text ('0.0' first), not numbers"),
    ("Data/Phi1", "group", "is a group, not numbers"),
    ("Header/nRows", "group", "is a group, not a whole number"),
], ids=["ncols-text", "nrows-text", "ncols-fraction", "stepx-comma", "stepy-text", "stepy-empty", "symmetry-text",
        "lattice-text", "ci-text", "x-text", "phi1-group", "nrows-group"])
def test_damaged_edax_h5_field_is_a_format_error(tmp_path, key, value, found):
    # A copy of the real OIM file with one dataset rewritten, as a damaged file would hold it: the reader
    # must say which file and field, what it found and what to do, in one line (never a ValueError).
    import h5py

    p = tmp_path / "damaged.h5"
    p.write_bytes(real("dream3d_edax_ni_h5/EdaxAngOnly.h5").read_bytes())
    with h5py.File(p, "r+") as f:
        scan = f["Scan_1/EBSD"]
        del scan[key]
        if isinstance(value, str):
            scan.create_group(key)
        else:
            scan[key] = value
    with pytest.raises(FormatError) as exc:
        read_map(p)
    msg = str(exc.value)
    field = key.rsplit("/", 1)[1]
    assert "\n" not in msg
    assert msg.startswith(f"{p}, field '{field}': 'Scan_1/EBSD/{key}' ")
    assert found in msg
    assert msg.endswith("the file is damaged: export the scan again from OIM Analysis (or as .ang)")
    assert exc.value.field == field


def test_edax_h5_control_copy_reads(tmp_path):
    # The copy step of the test above, without damage, reads like the original.
    p = tmp_path / "copy.h5"
    p.write_bytes(real("dream3d_edax_ni_h5/EdaxAngOnly.h5").read_bytes())
    assert read_map(p).shape == (151, 186)


def test_non_cubic_phase_is_refused_where_cubic_is_needed():
    from infinityebsd.errors import SymmetryError

    p = real("ebsdlib_parser_edgecases/Test_US_1.ctf")  # a Zircaloy-4 scan: one hexagonal phase
    m = read_map(p)
    for name in (None, "Zirc-alloy4"):  # naming the phase cannot help, so the advice must not ask for it
        with pytest.raises(SymmetryError) as exc:
            m.select_phase(name)
        msg = str(exc.value)
        assert msg == (f"{p}: the map has no cubic phase ('Zirc-alloy4' (6/mmm)); grain analysis, plots and "
                       "generation support cubic m-3m only ('infinityebsd info' reads any symmetry)")
        assert "--phase" not in msg


def test_non_cubic_phase_named_when_a_cubic_one_exists():
    # Two indexed phases, one hexagonal, one cubic: picking the hexagonal one points at the cubic one.
    from infinityebsd.errors import SymmetryError

    pid = np.array([[1, 1, 2], [2, 0, 1]], np.int32)
    m = EBSDMap(euler=np.zeros((2, 3, 3)), phase_id=pid, source="two.ctf",
                phases=[Phase("Zr", 9, 194, (3.2, 3.2, 5.1), (90, 90, 120)), Phase("Ni", 11, 225, (3.5,) * 3)])
    with pytest.raises(SymmetryError) as exc:
        m.select_phase("Zr")
    assert str(exc.value) == ("two.ctf: phase 'Zr' has symmetry 6/mmm; only cubic m-3m is supported here: choose a "
                              "cubic phase with --phase NAME ('Ni')")
    assert m.select_phase("Ni").phase_id.tolist() == [[0, 0, 1], [1, 0, 0]]


def test_atomic_write_leaves_no_partial_file(tmp_path, rng, monkeypatch):
    m = _random_map(rng, 5, 5)
    p = tmp_path / "x.ctf"
    write_ctf(m, p)
    before = p.read_bytes()
    m.euler[:] = np.nan  # formatting still works (written as 0) ...
    import infinityebsd.io.ctf as ctf

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ctf, "ctf_header", boom)
    with pytest.raises(RuntimeError):
        write_ctf(m, p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["x.ctf"]


@pytest.mark.parametrize("kind", ["text", "bytes", "path", "dir"])
def test_shared_atomic_writers_leave_old_file_and_no_temp_on_failure(tmp_path, kind):
    # The one write primitive every layer uses: a failure in the middle keeps the old content and
    # leaves nothing behind; a success replaces the content with the usual permissions.
    from infinityebsd._shared import atomic_dir, atomic_path, atomic_write, atomic_write_bytes

    target = tmp_path / ("d" if kind == "dir" else "f.json")
    if kind == "dir":
        target.mkdir()
        (target / "a").write_text("old")
    else:
        target.write_text("old")

    def write(fail):
        if kind == "text":
            with atomic_write(target) as fh:
                fh.write("new")
                if fail:
                    raise RuntimeError("disk full")
        elif kind == "bytes":
            def chunks():
                yield b"ne"
                if fail:
                    raise RuntimeError("disk full")
                yield b"w"
            atomic_write_bytes(target, chunks())
        elif kind == "path":
            with atomic_path(target) as tmp:
                assert Path(tmp).parent == tmp_path and tmp.endswith(".json")  # same folder, same type
                Path(tmp).write_text("new")
                if fail:
                    raise RuntimeError("disk full")
        else:
            with atomic_dir(target) as tmp:
                (Path(tmp) / "a").write_text("new")
                if fail:
                    raise RuntimeError("disk full")

    read = (lambda: (target / "a").read_text()) if kind == "dir" else target.read_text
    with pytest.raises(RuntimeError, match="disk full"):
        write(fail=True)
    assert read() == "old"
    assert sorted(f.name for f in tmp_path.iterdir()) == [target.name]
    write(fail=False)
    assert read() == "new"
    assert sorted(f.name for f in tmp_path.iterdir()) == [target.name]
    if kind != "dir":
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_old_import_path_of_atomic_write_bytes_still_works():
    from infinityebsd._shared import atomic_write_bytes
    from infinityebsd.io._grid import atomic_write_bytes as old

    assert old is atomic_write_bytes


def test_tsl_cells_phase_ids_by_hand():
    # The one rule .ang and OIM .h5 share: CI -1 or angles all 4π mark a point not indexed.
    from infinityebsd.io.ang import tsl_cells

    e = np.array([[0.1, 0.2, 0.3], [4 * np.pi] * 3, [0.4, 0.5, 0.6], [0.7, 0.8, 0.9], [1.0, 1.1, 1.2]])
    ci = np.array([0.5, 0.9, -1.0, 0.2, 0.3])
    col = np.array([0, 1, 2, 2, 3])
    pid, euler = tsl_cells(e, ci, col, 1)
    assert pid.tolist() == [1, 0, 0, 1, 1]  # one phase: the column is ignored
    np.testing.assert_array_equal(euler[[1, 2]], 0.0)
    np.testing.assert_array_equal(euler[[0, 3, 4]], e[[0, 3, 4]])
    pid, _ = tsl_cells(e, ci, col, 2)
    assert pid.tolist() == [0, 0, 0, 2, 0]  # two phases: a column value outside 1..2 is not indexed

"""Atomic writes: the target is the old file or the new one, never a torso."""

import os

import pytest

from mfdeep.atomic import atomic_write


def test_text_bytes_and_writer_functions_all_land_whole(tmp_path):
    atomic_write(tmp_path / "a.txt", "ünïcode\n")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    atomic_write(tmp_path / "c.bin", lambda fh: fh.write(b"xyz"))
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "ünïcode\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.bin").read_bytes() == b"xyz"


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    atomic_write(target, "old")

    def half_then_fail(fh):
        fh.write(b"ne")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_the_file_gets_the_umask_mode_not_mkstemps_private_one(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "m", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o640

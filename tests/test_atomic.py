"""Atomic single-file writes (vjepa2_ac.atomic)."""

import os

import pytest

from vjepa2_ac.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_write_replaces_the_file_with_normal_permissions_and_no_leftovers(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "one")
    atomic_write_bytes(path, b"two")
    assert path.read_text() == "two"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_crash_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "model.png"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(path, suffix=".png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".model.png.")
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.png"]

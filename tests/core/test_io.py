"""tessera.io: outputs appear whole or not at all, with the permissions of ordinary files."""

from __future__ import annotations

import os
import stat

import pytest

from tessera.io import atomic_dir, atomic_path, write_csv, write_json


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_whole(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("f")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_write_csv_keeps_the_columns_in_order_with_lf_endings(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, [{"b": 2, "a": "x,y", "extra": 0}, {"a": 1}], ["a", "b"])
    assert path.read_bytes() == b'a,b\n"x,y",2\n1,\n'

"""Atomic writes: all or nothing, with ordinary file permissions."""

import os
import stat

import pytest

from exaug.atomic import atomic_path, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["result.json"]


def test_written_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_a_figure_is_saved_as_a_png_and_closed(tmp_path):
    from exaug.figures import pyplot, save_png

    figure, axes = pyplot().subplots()
    axes.plot([0, 1], [1, 0])
    save_png(figure, tmp_path / "figures" / "figure.png")
    assert (tmp_path / "figures" / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not pyplot().fignum_exists(figure.number)
    assert [path.name for path in (tmp_path / "figures").iterdir()] == ["figure.png"]  # no temporary left

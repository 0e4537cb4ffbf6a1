"""A full disk or a refused write in the run store's atomic writes: one StorageError (a UserError) naming the final
path, never the temporary one, and nothing left behind; caches that write through them say the same."""
from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from storage_faults import Faults, leftovers

from core.data.thumbnails import thumbnail
from core.errors import UserError
from core.store import run_store
from core.store.safe_write import StorageError


@pytest.fixture
def faults(monkeypatch) -> Faults:
    return Faults(monkeypatch)


@pytest.mark.parametrize("write", [
    lambda path: run_store.write_json(path, {"a": 1}),
    lambda path: run_store.write_array(path, np.zeros(3)),
    lambda path: _fill_dir(path)])
def test_every_atomic_write_on_a_full_disk_is_a_storage_error_naming_the_final_path(tmp_path, faults, write):
    target = tmp_path / "sub" / "thing"
    faults.fill_at(lambda path: path == target)
    with pytest.raises(StorageError) as raised:
        write(target)
    message = str(raised.value)
    assert isinstance(raised.value, UserError) and "\n" not in message
    assert message.startswith(f"no space left writing {target} (") and ".tmp" not in message
    assert not target.exists() and not leftovers(tmp_path)


def _fill_dir(path: Path) -> None:
    with run_store.atomic_dir(path) as tmp:
        (tmp / "a.json").write_text("{}")


def test_other_os_errors_are_not_dressed_up_as_storage_errors(tmp_path, faults):
    faults.fill_at(lambda path: True, errno.EIO)
    with pytest.raises(OSError) as raised:
        run_store.write_json(tmp_path / "x.json", {})
    assert not isinstance(raised.value, StorageError) and raised.value.errno == errno.EIO


def test_a_runs_folder_we_may_not_write_refuses_the_lock_with_one_line(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(run_store.os, "open", refused)
    with pytest.raises(StorageError, match=rf"^cannot write {tmp_path / '.lock'} \(permission denied\): make "
                                           rf"{tmp_path} writable"), run_store.run_lock(tmp_path):
        pass


def test_a_thumbnail_cache_on_a_full_disk_says_so_and_is_made_once_there_is_space(tmp_path, faults):
    from PIL import Image
    image = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(image)
    faults.fill_at(lambda path: path.suffix == ".png")
    with pytest.raises(StorageError, match=rf"^no space left writing {tmp_path / 'cache' / 'thumbnails'}/"):
        thumbnail(image, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.png")) and not leftovers(tmp_path / "cache")
    faults.free()
    assert thumbnail(image, cache_dir=tmp_path / "cache").is_file()

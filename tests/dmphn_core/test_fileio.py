import json
import math

import numpy as np
import pytest

from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import atomic_path, strict_json, write_text_atomic


def strict_loads(text: str):
    """json.loads that refuses the NaN / Infinity tokens Python's json writes by default."""

    def reject(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "a.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".json" and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_failure_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DMPHNError, match="does not exist"):
        write_text_atomic(tmp_path / "nope" / "a.txt", "x")


def test_unwritable_folder_is_a_clear_error(tmp_path, monkeypatch):
    # chmod does not stop root (CI runs as root), so ask the check itself
    monkeypatch.setattr("dmphn_core.fileio.os.access", lambda path, mode: False)
    with pytest.raises(DMPHNError, match="not writable"):
        write_text_atomic(tmp_path / "a.txt", "x")
    assert not list(tmp_path.iterdir())


def test_written_files_get_normal_permissions_not_mkstemps_0600(tmp_path):
    import os

    write_text_atomic(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_strict_json_writes_null_for_non_finite_numbers():
    value = {"psnr_db": math.inf, "rows": [{"x": -math.inf}, (np.float32(0.5), math.nan)], "n": np.int64(3)}
    with pytest.raises(ValueError):
        strict_loads(json.dumps({"psnr_db": math.inf}))  # the parser really is strict
    parsed = strict_loads(strict_json(value))
    assert parsed == {"psnr_db": None, "rows": [{"x": None}, [0.5, None]], "n": 3}

"""--save-outputs / --load-outputs: safe round trip, and every mismatch is an error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.saved_outputs import MANIFEST, check_inputs, load_outputs, save_outputs
from dmphn_core.errors import DMPHNError


def _entry(value: float = 0.5) -> dict:
    x = np.full((1, 3, 4, 4), 0.25, np.float32)
    return {"runner": "ov-cpu-int8", "runtime": "ov", "precision": "int8", "input": "photo", "input_array": x,
            "output": np.full((1, 3, 4, 4), value, np.float32)}


def test_round_trip(tmp_path):
    save_outputs(tmp_path, [_entry()], {"cpu": "test"})
    manifest, loaded = load_outputs(tmp_path)
    assert manifest["machine"] == {"cpu": "test"}
    (record, array), = loaded
    assert record["runner"] == "ov-cpu-int8" and float(array[0, 0, 0, 0]) == 0.5
    assert check_inputs([record], lambda _: [("photo", _entry()["input_array"])])


def test_tampered_file_and_pickles_are_refused(tmp_path):
    save_outputs(tmp_path, [_entry()], {})
    np.save(tmp_path / "000.npy", np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(DMPHNError, match="sha256"):
        load_outputs(tmp_path)
    np.save(tmp_path / "000.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    import hashlib

    manifest["entries"][0]["sha256"] = hashlib.sha256((tmp_path / "000.npy").read_bytes()).hexdigest()
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DMPHNError, match="not a plain .npy"):
        load_outputs(tmp_path)


def test_missing_manifest_bad_names_and_other_inputs(tmp_path):
    with pytest.raises(DMPHNError, match="no manifest.json"):
        load_outputs(tmp_path)
    save_outputs(tmp_path, [_entry()], {})
    record = load_outputs(tmp_path)[1][0][0]
    with pytest.raises(DMPHNError, match="differs"):
        check_inputs([record], lambda _: [("photo", np.zeros((1, 3, 4, 4), np.float32))])
    with pytest.raises(DMPHNError, match="not among"):
        check_inputs([record], lambda _: [("other", np.zeros((1, 3, 4, 4), np.float32))])
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["entries"][0]["file"] = "../000.npy"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DMPHNError, match="plain file name"):
        load_outputs(tmp_path)

"""``dmphn-parity --save-outputs DIR`` / ``--load-outputs DIR``: compare outputs made elsewhere.

A GPU host (or any other machine) saves each runner's output per input; later, on this machine,
the saved outputs are compared with this machine's fp32 reference on the *same* inputs. Safe by
construction: arrays are plain ``.npy`` files (read with ``allow_pickle=False``), the manifest is
strict JSON, and every array file and every input is checked against its sha256 before use, so
a swapped file or a different input is an error, not a wrong number.

Layout of DIR: ``manifest.json`` and one ``NNN.npy`` (float32, (B, 3, H, W)) per entry.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import file_sha256, strict_json, write_bytes_atomic, write_text_atomic

MANIFEST = "manifest.json"
FORMAT = "dmphn-parity-outputs/1"


def array_sha256(array: np.ndarray) -> str:
    """sha256 of a float32 C-order array's bytes (inputs are identified by it)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def save_outputs(folder: Path, entries: Sequence[dict[str, Any]], machine: dict[str, Any]) -> Path:
    """Write ``entries`` (each ``{runner, runtime, device, precision, input, input_array, output}``
    plus any JSON-able fields) under ``folder``; the manifest is written last, so a folder with a
    manifest is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for number, entry in enumerate(entries):
        output = np.ascontiguousarray(entry["output"], dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, output, allow_pickle=False)
        name = f"{number:03d}.npy"
        write_bytes_atomic(folder / name, buffer.getvalue())
        record = {key: value for key, value in entry.items() if key not in ("input_array", "output")}
        records.append({**record, "file": name, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                        "shape": list(output.shape), "input_sha256": array_sha256(entry["input_array"])})
    manifest = folder / MANIFEST
    write_text_atomic(manifest, strict_json({"format": FORMAT, "machine": machine, "entries": records}, indent=1))
    return manifest


def load_outputs(folder: Path) -> tuple[dict[str, Any], list[tuple[dict[str, Any], np.ndarray]]]:
    """``(manifest, [(record, output array)])`` from a folder written by :func:`save_outputs`, every
    file checked against its hash first."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise DMPHNError(f"--load-outputs {folder}: no {MANIFEST} (write one with dmphn-parity --save-outputs)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise DMPHNError(f"--load-outputs {folder}: {MANIFEST} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("entries"), list):
        raise DMPHNError(f"--load-outputs {folder}: {MANIFEST} is not a {FORMAT} manifest")
    loaded = []
    for record in manifest["entries"]:
        name = str(record.get("file", ""))
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise DMPHNError(f"--load-outputs {folder}: entry file {name!r} is missing or not a plain file name")
        if file_sha256(path) != record.get("sha256"):
            raise DMPHNError(f"--load-outputs {folder}: {name} does not match its sha256 in {MANIFEST}")
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DMPHNError(f"--load-outputs {folder}: {name} is not a plain .npy array ({exc})") from None
        if list(array.shape) != record.get("shape") or array.dtype != np.float32:
            raise DMPHNError(f"--load-outputs {folder}: {name} is {array.dtype} {array.shape}, not float32 {record.get('shape')}")
        loaded.append((record, array))
    return manifest, loaded


def check_inputs(
    records: Sequence[dict[str, Any]], inputs_for: Callable[[dict[str, Any]], Sequence[tuple[str, np.ndarray]]]
) -> list[np.ndarray]:
    """The input each record was made from, regenerated or read here by ``inputs_for(record)`` and
    matched by label and hash; a missing or different input is an error."""
    found = []
    for record in records:
        candidates = dict(inputs_for(record))
        x = candidates.get(record.get("input"))
        if x is None:
            raise DMPHNError(f"input {record.get('input')!r} of the saved {record.get('runner')} output is not "
                             f"among this run's inputs ({', '.join(candidates) or 'none'})")
        if array_sha256(x) != record.get("input_sha256"):
            raise DMPHNError(f"input {record.get('input')!r} here differs from the one the saved "
                             f"{record.get('runner')} output was made from (sha256 mismatch)")
        found.append(x)
    return found

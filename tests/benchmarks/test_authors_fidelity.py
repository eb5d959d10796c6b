"""python -m benchmarks.authors_fidelity on a stand-in reference folder (random authors-format weights, 64x128)."""

import json

import cv2
import numpy as np
import torch

from benchmarks.authors_fidelity import main
from dmphn_core.checkpoint import import_authors_checkpoint
from dmphn_core.imageio import image_to_tensor, tensor_to_image
from dmphn_core.samples import sample_photo
from tests.dmphn_core.test_checkpoint import _write_authors_folder


def test_fidelity_report_on_outputs_saved_the_authors_way(tmp_path):
    # ~5 s: a 1-2-4 model in their file layout; "published" = its own output truncated as their script saves
    weights = tmp_path / "checkpoints" / "DMPHN_1_2_4"
    weights.mkdir(parents=True)
    _write_authors_folder(weights, 3)
    model = import_authors_checkpoint(weights).build_model()
    (tmp_path / "test_samples").mkdir()
    published = tmp_path / "test_results" / "DMPHN_1_2_4_test_res"
    published.mkdir(parents=True)
    frame = (sample_photo(64, 128, "coffee.png") * 255 + 0.5).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "test_samples" / "000001.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with torch.inference_mode():
        output = tensor_to_image(model(image_to_tensor(frame.astype(np.float32) / 255)))
    truncated = np.clip(output * np.float32(255), 0, 255).astype(np.uint8)
    cv2.imwrite(str(published / "000001.png"), cv2.cvtColor(truncated, cv2.COLOR_RGB2BGR))

    json_path, md_path = tmp_path / "f.json", tmp_path / "f.md"
    main(["--reference", str(tmp_path), "--variant", "1-2-4", "--json", str(json_path), "--markdown", str(md_path)])
    (row,) = json.loads(json_path.read_text())
    assert (row["variant"], row["frame"], row["height"], row["width"]) == ("1-2-4", "000001.png", 64, 128)
    assert row["identical_truncated"] == 1.0 and row["max_abs_truncated_lsb"] == 0
    assert 0.3 < row["mean_signed_lsb"] < 0.7 and row["psnr_db"] > 50
    assert "| DMPHN-1-2-4 | 000001.png |" in md_path.read_text() and row["weights"] == f"per-level files in {weights}"

"""The shipped demo checkpoint keeps what docs/training.md and its results note claim for it."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.synth import app as synth_app
from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.data.gopro import find_pairs
from dmphn_core.evaluate import evaluate_pairs
from runtimes.resolve import resolve_runner

RESULTS = Path(__file__).parents[2] / "benchmarks" / "results" / "demo-checkpoint"
HELD_OUT_REPORT = RESULTS / "eval_heldout.json"


def test_demo_checkpoint_is_small_safe_and_records_its_training():
    assert DEMO_CHECKPOINT.stat().st_size <= 30 * 2**20
    checkpoint = load_checkpoint(DEMO_CHECKPOINT)  # weights_only: a shipped file cannot run code
    assert checkpoint.resume is None  # no optimizer state in the shipped file
    training = checkpoint.training
    assert training["origin"].startswith("weights from ")  # stage 2 of scripts/train_demo.sh: from stage 1's best
    assert training["settings"]["loss"] == "psnr" and training["validation"]["split"] == "val"
    assert training["step"] > 0 and training["seconds"] > 0 and training["command"]
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint.state_dict.values())


def test_readme_tells_the_story_of_the_shipped_record():
    """The recipe and the checkpoint's own record must not disagree unexplained: the results note
    (benchmarks/results/demo-checkpoint/README.md) tells how they differ."""
    readme = " ".join((RESULTS / "README.md").read_text().split())  # line breaks as spaces
    training = load_checkpoint(DEMO_CHECKPOINT).training
    settings = training["settings"]
    # the run's real folders, as recorded, are named in the README
    init_path = training["origin"].removeprefix("weights from ")
    for recorded in (settings["data"], settings["out"], init_path, f"--init {init_path}"):
        assert recorded in readme, f"README does not mention the record's {recorded!r}"
    # every recorded command's flags are shown (the README drops the venv path)
    first = training["commands"][0].split("dmphn-train", 1)[1].split(" --levels")[0].strip()
    assert f"dmphn-train {first}" in readme
    count = len(training["commands"])
    assert f"holds the {['zero', 'one', 'two', 'three'][count]} commands on that path" in readme
    # and the settings' start value is explained, not left beside a contradicting origin
    assert f'"start": "{settings["start"]}"' in readme and f'"origin": "{training["origin"][:12]}' in readme


@pytest.fixture(scope="module")
def held_out_pairs(tmp_path_factory):
    """The test split of the demo data (docs/training.md), regenerated (same command, same seed: same pairs)."""
    root = tmp_path_factory.mktemp("demo_data")
    result = CliRunner().invoke(synth_app, [str(root), "--split", "test", "--test-pairs-per-photo", "3",
                                            "--size", "256x256", "--max-shift", "24"])
    assert result.exit_code == 0, result.output
    return find_pairs(root, "test")


def test_committed_held_out_report_matches_the_shipped_checkpoint(held_out_pairs):
    """docs/training.md quotes eval_heldout.json: it must still be what the shipped file scores."""
    report = json.loads(HELD_OUT_REPORT.read_text())
    result = evaluate_pairs(resolve_runner(None, device="cpu"), held_out_pairs)
    assert result["summary"]["images"] == report["summary"]["images"] == 12
    for key in ("psnr_blurred", "psnr_deblurred", "gain_db", "ssim_deblurred"):
        assert result["summary"][key] == pytest.approx(report["summary"][key], abs=1e-3), key

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.evaluate import app
from dmphn_core.data.gopro import find_pairs
from dmphn_core.imageio import read_image
from dmphn_core.metrics import psnr
from tests.dmphn_core.test_evaluate import make_dataset

cli = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("gopro"))


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_eval_writes_json_and_markdown(dataset, tmp_path, make_checkpoint):
    json_path, md_path = tmp_path / "eval.json", tmp_path / "eval.md"
    result = cli.invoke(app, [str(dataset), "--model", str(make_checkpoint(1)), "--device", "cpu", "--limit", "3",
                              "--json", str(json_path), "--markdown", str(md_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    summary, images = report["summary"], report["images"]
    assert summary["images"] == len(images) == 3
    assert summary["dataset"] == {"root": str(dataset), "split": "test", "blur_kind": "blur_gamma"}
    assert summary["gain_db"] == pytest.approx(sum(i["gain_db"] for i in images) / 3)
    first = find_pairs(dataset, "test")[0]
    assert images[0]["psnr_blurred"] == pytest.approx(psnr(read_image(first.blurred), read_image(first.sharp)))
    assert "mean of 3" in result.stdout and f"{summary['gain_db']:+.2f} dB" in result.stdout
    rows = [line for line in md_path.read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3 + 1


def test_eval_blur_kind_changes_the_input(dataset, make_checkpoint, tmp_path):
    reports = {}
    for kind in ("blur", "blur_gamma"):
        path = tmp_path / f"{kind}.json"
        result = cli.invoke(app, [str(dataset), "--model", str(make_checkpoint(1)), "--limit", "1", "--blur-kind", kind,
                                  "--json", str(path)])
        assert result.exit_code == 0, result.output
        reports[kind] = json.loads(path.read_text())["summary"]
    assert reports["blur"]["psnr_blurred"] != reports["blur_gamma"]["psnr_blurred"]


def test_broken_dataset_is_one_line(dataset, tmp_path, make_checkpoint):
    model = str(make_checkpoint(1))
    assert "no 'val' split" in _one_line_error(cli.invoke(app, [str(dataset), "--split", "val", "--model", model]))
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    pair = find_pairs(broken, "test")[0]
    pair.sharp.unlink()
    assert "unpaired" in _one_line_error(cli.invoke(app, [str(broken), "--model", model]))
    pair.sharp.write_bytes(b"not a png")
    assert "cannot decode image" in _one_line_error(cli.invoke(app, [str(broken), "--model", model]))


def test_bad_options_fail_before_evaluating(dataset, tmp_path, make_checkpoint):
    model = str(make_checkpoint(1))
    assert "does not exist" in _one_line_error(
        cli.invoke(app, [str(dataset), "--model", model, "--json", str(tmp_path / "missing" / "r.json")])
    )
    assert "--limit" in _one_line_error(cli.invoke(app, [str(dataset), "--model", model, "--limit", "0"]))
    assert "model not found" in _one_line_error(cli.invoke(app, [str(dataset), "--model", str(tmp_path / "x.pt")]))
    assert "unknown blur kind" in _one_line_error(cli.invoke(app, [str(dataset), "--blur-kind", "motion"]))

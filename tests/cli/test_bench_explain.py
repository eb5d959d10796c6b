"""dmphn-bench --profile, dmphn-parity --layers and --save-outputs / --load-outputs end to end on 32x64."""

import json

import pytest
from typer.testing import CliRunner

from cli.bench import bench_app, parity_app

cli = CliRunner()
COMMON = ["--device", "cpu", "--shape", "32x64", "--threads", "1"]


def _strict(path):
    def reject(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from dmphn_core.checkpoint import save_checkpoint
    from tests.conftest import random_model

    path = tmp_path_factory.mktemp("explain") / "m.pt"
    save_checkpoint(path, random_model("1-2", seed=5), training={"note": "random weights for tests"})
    return path


def test_bench_profile_attaches_a_table_per_row(checkpoint, tmp_path):
    json_path, md_path = tmp_path / "b.json", tmp_path / "b.md"
    result = cli.invoke(bench_app, ["-c", str(checkpoint), "--runtime", "torch,ort", *COMMON, "--warmup", "0",
                                    "--iters", "1", "--peak-tflops", "1", "--profile", "--profile-top", "3",
                                    "--workdir", str(tmp_path / "w"), "--json", str(json_path),
                                    "--markdown", str(md_path)])
    assert result.exit_code == 0, result.output
    rows = _strict(json_path)
    assert {r["runtime"] for r in rows} == {"torch", "ort"}
    assert all(len(r["profile"]["top"]) == 3 and r["profile"]["by_kernel"] for r in rows)
    assert "## Profiles" in md_path.read_text() and "onnxruntime profiler" in md_path.read_text()


def test_parity_layers_reports_points(checkpoint, tmp_path):
    json_path = tmp_path / "l.json"
    result = cli.invoke(parity_app, ["-c", str(checkpoint), "--runtime", "ort", *COMMON, "--layers",
                                     "--workdir", str(tmp_path / "w"), "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    rows = _strict(json_path)
    assert rows and all(r["status"] == "ok" and r["first_under"] is None for r in rows)
    assert {p["kind"] for p in rows[0]["points"]} == {"conv", "features", "residual"}


def test_saved_outputs_compare_later(checkpoint, tmp_path):
    saved = tmp_path / "saved"
    made = cli.invoke(parity_app, ["-c", str(checkpoint), "--runtime", "ort", *COMMON, "--save-outputs", str(saved),
                                   "--workdir", str(tmp_path / "w")])
    assert made.exit_code == 0, made.output
    json_path = tmp_path / "loaded.json"
    loaded = cli.invoke(parity_app, ["-c", str(checkpoint), "--device", "cpu", "--load-outputs", str(saved),
                                     "--json", str(json_path)])
    assert loaded.exit_code == 0, loaded.output
    rows = _strict(json_path)
    assert rows and all(r["runner"] == "ort-cpu-fp32 (saved)" and r["status"] == "pass" for r in rows)


def test_explain_options_that_do_not_mix_are_one_line_errors(checkpoint, tmp_path):
    result = cli.invoke(parity_app, ["-c", str(checkpoint), "--runtime", "ort", *COMMON, "--layers",
                                     "--save-outputs", str(tmp_path / "s")])
    assert result.exit_code == 2 and result.stderr.startswith("error: --layers")
    result = cli.invoke(parity_app, ["-c", str(checkpoint), *COMMON, "--load-outputs", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no manifest.json" in result.stderr and "Traceback" not in result.output

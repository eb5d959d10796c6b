"""dmphn-loadtest --concurrency / --search against the real bundled tritonserver (slow tier), and their bad options."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.loadtest import app
from tests.triton_support import requires_triton, write_python_repository

cli = CliRunner()


@requires_triton
@pytest.mark.slow  # starts tritonserver and reloads the model per grid point: the slow tier
def test_sweep_and_search_against_a_real_server(tmp_path):
    repository = write_python_repository(tmp_path / "repo", seed=3)
    report, plot, best = tmp_path / "search.json", tmp_path / "sweep.png", tmp_path / "best.pbtxt"
    result = cli.invoke(app, [
        str(repository), "--protocol", "grpc", "--concurrency", "1,2", "--requests", "4", "--search",
        "--instances", "1,2", "--preferred-batch", "0", "--queue-delay-us", "100",
        "--json", str(report), "--plot", str(plot), "--best-config", str(best),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert [(r["instances"], r["concurrency"], r["status"]) for r in data["rows"]] == [
        (1, 1, "ok"), (1, 2, "ok"), (2, 1, "ok"), (2, 2, "ok")]
    assert all(r["parity"]["mismatches"] == 0 for r in data["rows"])
    assert data["best"]["images_per_s"] == max(r["images_per_s"] for r in data["rows"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert best.read_text().startswith("# best of the search") and "instance_group" in best.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--concurrency", "0"], "--concurrency"),
    (["--search"], "give --concurrency"),
    (["--concurrency", "1", "--search", "--preferred-batch", "64"], "max_batch_size"),
])
def test_sweep_options_are_one_line_errors(tmp_path, args, message):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    repository = write_python_repository(tmp_path / "repo")
    result = cli.invoke(app, [str(repository), "--no-start", "--http", "127.0.0.1:1", "--grpc", "127.0.0.1:1", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1

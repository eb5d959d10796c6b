"""python -m cli.profile_forms writes its markdown table."""

from typer.testing import CliRunner

from cli.profile_forms import app

cli = CliRunner()


def test_profile_cli_writes_markdown(tmp_path):
    out = tmp_path / "profile.md"
    result = cli.invoke(app, ["--shape", "64x128", "--threads", "1", "--passes", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "## static-shape" in text and "## per-patch" in text and "GFLOP/s" in text


def test_profile_cli_rejects_a_shape_the_model_cannot_take():
    result = cli.invoke(app, ["--shape", "60x128"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "multiple of" in result.output
    assert "Traceback" not in result.output

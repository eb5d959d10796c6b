"""The convolution profile of the static-shape and per-patch forms, on a tiny shape."""

from typer.testing import CliRunner

from benchmarks.profile_forms import profile_forms

cli = CliRunner()
RESIDUAL_CONVS_PER_CODER = 12  # six residual blocks of two 3x3 convs in each encoder and decoder


def test_profile_counts_every_residual_conv_of_both_forms():
    results = profile_forms(64, 128, passes=2)
    calls = {form: sum(row.calls for row in rows) for form, (rows, _) in results.items()}
    # static: one batched call per coder and level; per-patch: one call per patch
    # (levels 4..1 encode 8, 4, 2, 1 patches and decode 4, 2, 1, 1)
    assert calls["static-shape"] == RESIDUAL_CONVS_PER_CODER * 2 * 4
    assert calls["per-patch"] == RESIDUAL_CONVS_PER_CODER * (8 + 4 + 4 + 2 + 2 + 1 + 1 + 1)
    for rows, total_ms in results.values():
        assert all(row.gflops > 0 for row in rows)
        assert 0 < sum(row.total_ms for row in rows) <= total_ms

"""Precision names, dtypes and tolerances have one home."""

import pytest
import torch

from dmphn_core.errors import DMPHNError
from dmphn_core.precision import PRECISION_TABLE, PRECISIONS, check_precision, tolerance_for, torch_dtype


def test_every_precision_has_a_dtype_rule_and_a_tolerance():
    assert PRECISIONS[0] == "fp32"
    for name, precision in PRECISION_TABLE.items():
        assert precision.name == name
        assert precision.tolerance.max_abs is not None or precision.tolerance.min_psnr_db is not None
    assert torch_dtype("bf16") == torch.bfloat16 and torch_dtype("tf32") == torch.float32


def test_tolerance_overrides_replace_only_what_is_given():
    assert tolerance_for("fp32").max_abs == 1e-4
    assert tolerance_for("fp32", max_abs=1e-3).max_abs == 1e-3
    bf16 = tolerance_for("bf16", min_psnr_db=50.0)
    assert bf16.min_psnr_db == 50.0 and bf16.max_abs is None


def test_unknown_or_unsupported_precisions_are_named():
    with pytest.raises(DMPHNError, match="unknown or unsupported precision 'int4'; use one of fp32"):
        check_precision("int4")
    with pytest.raises(DMPHNError, match="use one of fp32, fp16"):
        check_precision("bf16", ("fp32", "fp16"))
    assert check_precision("fp16", ("fp32", "fp16")) == "fp16"

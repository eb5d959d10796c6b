"""The registry is built from the runner classes: every key, format, device and precision they declare."""

import pytest

from dmphn_core.artifact import FORMATS
from dmphn_core.errors import DMPHNError
from dmphn_core.precision import PRECISIONS
from runtimes import runner_class, runner_classes, runtime_for_format, runtime_names
from runtimes.base import DEVICES


def test_every_runner_declares_a_consistent_vocabulary():
    for key, cls in runner_classes().items():
        assert cls.runtime == key
        assert cls.artifact_format in FORMATS or (cls.artifact_format is None and cls.needs_service), key
        assert set(cls.devices) <= set(DEVICES) and cls.devices, key
        assert set(cls.precisions) <= set(PRECISIONS) and cls.precisions, key
        assert cls.default_device in ("auto", *cls.devices), key


def test_each_artifact_format_has_exactly_one_default_runtime():
    for fmt in {cls.artifact_format for cls in runner_classes().values()}:
        defaults = [k for k, c in runner_classes().items() if c.artifact_format == fmt and c.default_for_format]
        assert len(defaults) == 1, (fmt, defaults)
    assert runtime_for_format("checkpoint") == "torch"
    assert runtime_for_format("onnx") == "ort" and runtime_for_format("tensorrt") == "trt"
    with pytest.raises(DMPHNError, match="no runtime here runs"):
        runtime_for_format("tflite")


def test_report_order_puts_the_eager_forms_first():
    assert runtime_names()[:2] == ("torch", "torch-ref")


def test_declared_precisions_answer_unavailable_reason():
    ts = runner_class("torchscript")
    assert ts.unavailable_reason("cpu", "fp32") is None
    reason = ts.unavailable_reason("cpu", "bf16")
    assert "offers fp32, not bf16" in reason and "float32" in reason
    assert "CUDA GPUs only" in runner_class("trt").unavailable_reason("cpu", "fp32")

"""Triton client runner without a server: availability, unreachable server, bad options (served tests:
tests/runtimes/test_triton_server.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dmphn_core.errors import DMPHNError
from runtimes.triton import TritonRequestError, TritonRunner
from runtimes.triton_server import free_port

pytest.importorskip("tritonclient.http", reason="tritonclient[http,grpc] not installed (dev extra)")
pytest.importorskip("tritonclient.grpc", reason="tritonclient[http,grpc] not installed (dev extra)")


def test_availability():
    assert TritonRunner.unavailable_reason("cpu", "fp32") is None
    assert "server decides" in TritonRunner.unavailable_reason("cuda", "fp32")
    assert "sends fp32" in TritonRunner.unavailable_reason("cpu", "fp16")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unreachable_server_is_one_clear_error(protocol):
    runner = TritonRunner(f"127.0.0.1:{free_port()}", protocol=protocol, timeout_s=5)
    with pytest.raises(TritonRequestError, match=f"cannot reach Triton at 127.0.0.1:\\d+ \\({protocol}\\)"):
        runner.activate()
    assert not runner.is_active and runner.client is None


def test_bad_protocol_and_inactive_send():
    with pytest.raises(DMPHNError, match="unknown Triton protocol"):
        TritonRunner(protocol="websocket")
    with pytest.raises(DMPHNError, match="not active"):
        TritonRunner().send(np.zeros((1, 3, 4, 4), np.float32))

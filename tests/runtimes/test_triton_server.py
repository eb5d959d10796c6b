"""The bundled tritonserver on loopback: start, load, 4x concurrent clients, malformed requests, kill + restart.

The served tests start a real server (about 10-30 s each on 2 shared cores), so they are in the
slow tier (`-m "not slow"` leaves them out, CI runs them); all traffic goes to 127.0.0.1 and
every server is stopped by a finalizer, also when a test fails.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from benchmarks.loadtest import LoadSettings, run_loadtest
from dmphn_core.errors import RuntimeUnavailable
from runtimes.compare import tolerance_for
from runtimes.onnxruntime import OnnxRuntimeRunner
from runtimes.triton import TritonRequestError, TritonRunner
from runtimes.triton_server import (
    ServerError,
    TritonDistribution,
    TritonServer,
    check_python_stub,
    explain_failure,
    find_distribution,
    free_port,
    port_is_free,
)
from tests.triton_support import MAX_BATCH, SERVE_HW, requires_triton, write_python_repository

H, W = SERVE_HW


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_python_repository(tmp_path_factory.mktemp("triton_repo"))


@pytest.fixture(scope="module")
def server(repository):
    server = TritonServer(repository, http_port=free_port(), grpc_port=free_port())
    try:
        server.start(timeout_s=180)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local_runner(repository):
    with OnnxRuntimeRunner(repository / "dmphn" / "1" / "model.onnx") as runner:
        yield runner


# -- without a server ------------------------------------------------------------------

def test_missing_binary_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DMPHN_TRITONSERVER_DIR", str(tmp_path))
    with pytest.raises(RuntimeUnavailable, match="tritonserver binary not found.*nvidia-pytriton"):
        find_distribution()


def _fake_distribution(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tritonserver").write_text("#!/bin/sh\n")
    (root / "bin" / "tritonserver").chmod(stat.S_IRWXU)
    (root / "backends" / "python").mkdir(parents=True)
    (root / "backends" / "python" / "libtriton_python.so").write_bytes(b"")
    (root / "python_backend_stubs" / "3.0").mkdir(parents=True)
    return TritonDistribution(root, root / "external_libs")


def test_missing_python_stub_is_one_clear_error(tmp_path):
    dist = _fake_distribution(tmp_path)
    assert find_distribution(tmp_path) == dist
    with pytest.raises(RuntimeUnavailable, match=r"no stub for Python 3\.\d+ \(this build has: 3\.0\)"):
        check_python_stub(dist)


def test_taken_port_is_refused_before_starting(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\n')
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert not port_is_free(taken)
        server = TritonServer(tmp_path, http_port=free_port(), grpc_port=taken)
        with pytest.raises(ServerError, match=f"port taken: 127.0.0.1:{taken} \\(grpc\\)"):
            server.start()
        assert server.process is None  # nothing was launched


def test_repository_must_hold_a_model(tmp_path):
    with pytest.raises(ServerError, match="model repository not found"):
        TritonServer(tmp_path / "nowhere").start()
    with pytest.raises(ServerError, match="holds no model"):
        TritonServer(tmp_path).start()


def test_explain_failure_reads_the_log():
    log = ('E1125 model_lifecycle.cc:642] "failed to load \'dmphn\' version 1: Internal: DMPHNError: ONNX model '
           'not found: /r/dmphn/1/model.onnx\\n\\nAt:\\n"\nerror: creating server: Internal - failed to load all models')
    assert explain_failure(log) == ("the repository did not load: dmphn: Internal: DMPHNError: ONNX model not found: "
                                    "/r/dmphn/1/model.onnx")
    assert "port taken: 127.0.0.1:8001" in explain_failure("E main.cc] \"failed to start GRPC service: Unavailable - "
                                                           "Socket '127.0.0.1:8001' already in use \"")
    assert explain_failure("error: something else\n") == "error: something else"


# -- a real server ---------------------------------------------------------------------

@requires_triton
@pytest.mark.slow
def test_four_clients_200_requests_match_the_local_runner(server, local_runner):
    for protocol, requests in (("http", 200), ("grpc", 100)):
        summary, records = run_loadtest(
            lambda protocol=protocol: TritonRunner(server.endpoints()[protocol], protocol=protocol, timeout_s=30),
            LoadSettings(clients=4, requests=requests), H, W, reference=local_runner, tolerance=tolerance_for("fp32"),
        )
        assert [r.ticket for r in records] == list(range(requests))  # every request accounted for, once
        assert summary["errors"] == 0, summary["error_kinds"]
        assert summary["ok"] == requests and len({r.client for r in records}) == 4
        assert summary["parity"]["checked"] == requests and summary["parity"]["mismatches"] == 0
        assert summary["parity"]["max_abs"] <= 1e-4
        assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"]
        assert summary["status"] == "ok"


@requires_triton
@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_malformed_requests_get_errors_and_the_server_stays_up(server, local_runner, protocol):
    good = np.random.default_rng(1).random((2, 3, H, W), dtype=np.float32)
    nan = good.copy()
    nan[0, 1, 2, 3] = np.nan
    cases = {
        "wrong shape": (np.zeros((1, 3, H // 2, W), np.float32), "unexpected shape"),
        "wrong channels": (np.zeros((1, 1, H, W), np.float32), "unexpected shape"),
        "wrong dtype": (np.zeros((1, 3, H, W), np.float64), "data-type is 'FP64'"),
        "NaN": (nan, "NaN or Inf"),
        "oversize batch": (np.zeros((MAX_BATCH + 1, 3, H, W), np.float32), f"batch-size must be <= {MAX_BATCH}"),
    }
    with TritonRunner(server.endpoints()[protocol], protocol=protocol) as runner:
        assert runner.input_shape == (None, 3, H, W) and runner.model_config.levels == 1
        for label, (array, message) in cases.items():
            with pytest.raises(TritonRequestError, match=message):
                runner.send(array)
            assert server.is_running() and server.ready(), f"server went down after the {label} request"
        np.testing.assert_allclose(runner.infer(good), local_runner.infer(good), atol=1e-4, rtol=0)


@requires_triton
@pytest.mark.slow
def test_larger_images_are_tiled_to_the_served_frame_size(server, local_runner):
    from dmphn_core.inference import deblur_image

    image = np.random.default_rng(3).random((H + 20, W + 40, 3), dtype=np.float32)
    with TritonRunner(server.endpoints()["grpc"], protocol="grpc") as runner:
        served = deblur_image(runner, image)
    assert served.shape == image.shape
    # the same tiles through the local runner of the same static-H/W artifact
    np.testing.assert_allclose(served, deblur_image(local_runner, image), atol=1e-4, rtol=0)


@requires_triton
@pytest.mark.slow
def test_kill_mid_load_reports_failures_and_restart_serves_again(repository, local_runner):
    server = TritonServer(repository, http_port=free_port(), grpc_port=free_port())
    try:
        server.start(timeout_s=180)
        url = server.endpoints()["http"]
        answered = threading.Event()
        original_infer = TritonRunner.infer

        def counting_infer(self, x):
            y = original_infer(self, x)
            answered.set()
            return y

        def kill_once_answering(tickets):
            answered.wait(60)
            server.kill()  # SIGKILL: a crash, not a shutdown

        TritonRunner.infer = counting_infer
        try:
            summary, records = run_loadtest(lambda: TritonRunner(url, timeout_s=10), LoadSettings(clients=4, requests=60),
                                            H, W, reference=local_runner, on_start=kill_once_answering)
        finally:
            TritonRunner.infer = original_infer
        assert [r.ticket for r in records] == list(range(60))  # none silently lost
        assert summary["ok"] >= 1 and summary["errors"] >= 1 and summary["ok"] + summary["errors"] == 60
        assert summary["parity"]["mismatches"] == 0  # no half-written answer passed as a result
        assert all(r.error for r in records if not r.ok)
        assert summary["status"] == "fail"
        assert not server.is_running()

        server.start(timeout_s=180)  # same ports again
        assert server.endpoints()["http"] == url
        x = np.random.default_rng(2).random((1, 3, H, W), dtype=np.float32)
        with TritonRunner(url) as runner:
            np.testing.assert_allclose(runner.infer(x), local_runner.infer(x), atol=1e-4, rtol=0)
    finally:
        server.stop()
    assert not server.is_running()
    assert not list(Path("/dev/shm").glob(server.shm_prefix + "*"))  # no shared memory left behind


@requires_triton
@pytest.mark.slow
def test_repository_that_does_not_load_is_one_error(tmp_path, repository):
    import shutil

    broken = tmp_path / "repo"
    shutil.copytree(repository, broken)
    os.remove(broken / "dmphn" / "1" / "model.onnx")
    server = TritonServer(broken, http_port=free_port(), grpc_port=free_port())
    try:
        with pytest.raises(ServerError, match="did not load: dmphn: .*ONNX model not found"):
            server.start(timeout_s=180)
    finally:
        server.stop()
    assert not server.is_running()

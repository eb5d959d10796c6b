"""dmphn-serve and dmphn-loadtest end to end: a real server in a child process, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.loadtest import app as loadtest_app
from cli.serve import app as serve_app
from runtimes.triton_server import free_port, port_is_free
from tests.triton_support import SERVE_HW, requires_triton, write_python_repository

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def _wait_for(sink: queue.Queue, text: str, timeout_s: float) -> list[str]:
    seen = []
    while True:
        line = sink.get(timeout=timeout_s)
        if line is None:
            raise AssertionError(f"dmphn-serve ended before printing {text!r}: {''.join(seen)}")
        seen.append(line)
        if text in line:
            return seen


def _start_serve(repository: Path, http_port: int, grpc_port: int) -> tuple[subprocess.Popen, queue.Queue, threading.Thread]:
    """dmphn-serve in a child process, its output lines arriving in the queue (None at the end)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    serve = subprocess.Popen(
        [sys.executable, "-m", "cli.serve", str(repository), "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(serve.stdout, output), daemon=True)
    reader.start()
    return serve, output, reader


@requires_triton
@pytest.mark.slow  # starts tritonserver (10-30 s on 2 cores): the slow tier
def test_serve_until_sigterm_and_load_test_it(tmp_path):
    repository = write_python_repository(tmp_path / "repo", seed=5)
    http_port, grpc_port = free_port(), free_port()
    serve, output, reader = _start_serve(repository, http_port, grpc_port)
    try:
        printed = "".join(_wait_for(output, "ready:", 240))
        assert f"http     127.0.0.1:{http_port}" in printed and f"grpc     127.0.0.1:{grpc_port}" in printed

        report, table = tmp_path / "load.json", tmp_path / "load.md"
        result = cli.invoke(loadtest_app, [
            str(repository), "--no-start", "--http", f"127.0.0.1:{http_port}", "--grpc", f"127.0.0.1:{grpc_port}",
            "--clients", "2", "--requests", "20", "--json", str(report), "--markdown", str(table),
        ])
        assert result.exit_code == 0, result.output
        rows = json.loads(report.read_text())  # strict JSON: json.loads would accept NaN, so check the text too
        assert "NaN" not in report.read_text() and "Infinity" not in report.read_text()
        assert [(r["protocol"], r["sent"], r["ok"], r["errors"], r["status"]) for r in rows] == [
            ("http", 20, 20, 0, "ok"), ("grpc", 20, 20, 0, "ok")]
        assert all(r["parity"]["mismatches"] == 0 and r["height"] == SERVE_HW[0] for r in rows)
        assert "| http | 2 | 1 |" in table.read_text()

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0
        printed = "".join(_wait_for(output, "stopped", 10))
        assert "SIGTERM: stopping tritonserver" in printed
        assert port_is_free(http_port) and port_is_free(grpc_port)
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(60)
        reader.join(10)  # the pipe has ended with the process
        serve.stdout.close()  # else: "ResourceWarning: unclosed file <_io.TextIOWrapper ...>" at garbage collection


def test_serve_errors_are_one_line(tmp_path):
    result = cli.invoke(serve_app, [str(tmp_path / "missing")])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: model repository not found: {tmp_path / 'missing'}"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\n')
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        result = cli.invoke(serve_app, [str(tmp_path), "--http-port", str(taken), "--grpc-port", str(free_port())])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: port taken: 127.0.0.1:{taken} (http) is in use; pick another with --http-port"


def test_loadtest_errors_are_one_line(tmp_path):
    result = cli.invoke(loadtest_app, [str(tmp_path), "--protocol", "udp"])
    assert result.exit_code == 2 and "unknown protocol" in result.stderr
    result = cli.invoke(loadtest_app, [str(tmp_path), "--no-start", "--http", "127.0.0.1:1"])
    assert result.exit_code == 2 and "no model 'dmphn'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _post(port: int, path: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def _leftovers(owner: int) -> list[str]:
    """Processes, /dev/shm regions and temporary folders that carry ``owner``'s PID (runtimes.triton_reaper)."""
    import tempfile

    from runtimes.triton_reaper import _own_processes

    marker = f"dmphn{owner}_"
    found = [f"process {pid}: {command[:80]}" for pid, command in _own_processes() if marker in command]
    found += [str(p) for p in Path("/dev/shm").glob(marker + "*")]
    found += [str(p) for p in Path(tempfile.gettempdir()).glob(f"dmphn-triton-{owner}-*")]
    return found


@requires_triton
@pytest.mark.slow  # starts tritonserver (10-30 s on 2 cores): the slow tier
def _grpc_refuses_impossible_shapes(grpc_port: int, good) -> None:
    """The gRPC port is Triton's own (not behind the HTTP gate): Triton checks a raw gRPC input's
    declared shape and byte size against the model before it allocates, so the same impossible
    requests come back INVALID_ARGUMENT and a good one still runs."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    def request(shape, raw: bytes):
        message = service_pb2.ModelInferRequest(model_name="dmphn")
        tensor = message.inputs.add()
        tensor.name, tensor.datatype = "blurred", "FP32"
        tensor.shape.extend(shape)
        message.raw_input_contents.append(raw)
        return message

    h, w = SERVE_HW
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for shape, raw in [([4, 3, 65536, 65536], b"\0" * 4), ([1, 3, 2**40, 2**40], b"\0" * 4),
                           ([2**62, 3, h, w], b"\0" * 4), ([1, 3, h, w, 1], b"\0" * 4), ([1, 3, h, w], b"\0" * 2**20)]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(request(shape, raw), timeout=60)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (shape, refused.value.details())
        reply = stub.ModelInfer(request(list(good.shape), good.tobytes()), timeout=120)
        assert list(reply.outputs[0].shape) == list(good.shape)


def test_impossible_requests_are_refused_and_kill_9_leaves_nothing(tmp_path):
    """Issue #27 items 2 and 6: declared shapes/sizes that cannot be the model's get a 4xx (HTTP) or
    INVALID_ARGUMENT (gRPC) and the server stays up; then a kill -9 of dmphn-serve leaves no tritonserver, stub, shm region or folder."""
    import time

    import numpy as np
    import tritonclient.http as httpclient

    repository = write_python_repository(tmp_path / "repo", seed=5)
    http_port, grpc_port = free_port(), free_port()
    serve, output, _ = _start_serve(repository, http_port, grpc_port)
    try:
        _wait_for(output, "ready:", 240)
        infer = "/v2/models/dmphn/infer"
        h, w = SERVE_HW
        request = lambda shape, **extra: json.dumps(
            {"inputs": [{"name": "blurred", "shape": shape, "datatype": "FP32", **extra}]}).encode()
        bad = [
            request([4, 3, 65536, 65536], data=[0.0]),  # what ended the server before
            request([1, 3, 2**40, 2**40], data=[0.0]),
            request([2**62, 3, h, w], data=[0.0]),
            request([1, 3, h, w, 1], data=[0.0]),
            request([1, -3, h, w], data=[0.0]),
            request([1, 3.5, h, w], data=[0.0]),
            request([1, 3, h, w], parameters={"binary_data_size": 2**40}),
            json.dumps({"inputs": [{"name": "other", "shape": [1], "datatype": "FP32", "data": [0]}]}).encode(),
            b"{not json",
        ]
        for body in bad:
            headers = {"Inference-Header-Content-Length": str(len(body))} if b"binary_data_size" in body else {}
            status, reply = _post(http_port, infer, body, headers)
            assert 400 <= status < 500 and b"error" in reply, (body, status, reply)
        status, _ = _post(http_port, infer, b"x", {"Content-Length": str(2**50)})
        assert status == 413
        client = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
        assert client.is_server_ready()
        x = np.random.default_rng(0).random((2, 3, h, w), dtype=np.float32)
        inputs = [httpclient.InferInput("blurred", list(x.shape), "FP32")]
        inputs[0].set_data_from_numpy(x, binary_data=True)
        assert client.infer("dmphn", inputs).as_numpy("deblurred").shape == x.shape
        client.close()
        assert serve.poll() is None
        _grpc_refuses_impossible_shapes(grpc_port, x)
        assert serve.poll() is None

        owner = serve.pid
        assert any(line.startswith("process") for line in _leftovers(owner))  # the server and its stub run
        serve.kill()
        serve.wait(30)
        deadline = time.monotonic() + 30
        while _leftovers(owner) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _leftovers(owner) == []
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(60)
        serve.stdout.close()

"""A loopback HTTP front for tritonserver that refuses impossible inference requests before Triton sees them.

Why: the tritonserver of nvidia-pytriton 0.7.0 allocates the buffer a KServe v2 JSON request
*declares* (``"shape": [4, 3, 65536, 65536]``) before it checks the shape against the model's
config or the data sent, so a 100-byte request ends it with ``std::bad_alloc``. Its
``--http-max-input-size`` bounds the bytes on the wire, not the declared shape; releases after
February 2026 check the declared size before allocating (triton-inference-server/server#8676),
but the bundled build does not, and a server we start must not die of one request.

:class:`InferenceGate` listens on the public HTTP port and forwards to tritonserver on a private
loopback port. Before forwarding an ``…/infer`` request it reads only what it must (the
Content-Length and the JSON header) and answers ``4xx`` with a KServe-style ``{"error": …}`` when:

* the body is over ``max_body_bytes`` (413) or has no Content-Length (411);
* the header is not a JSON object with an ``inputs`` list (400);
* an input is unknown to the model, of another datatype, or its shape is not the model's:
  wrong rank, a batch over ``max_batch_size``, a fixed dimension that differs, a negative or
  non-integer dimension, or more than ``max_input_bytes`` in all (400);
* a binary input's ``binary_data_size`` is not its shape's size, or the binary parts do not
  add up to the body (400).

Everything else (health, metadata, statistics) is forwarded unchanged. gRPC is not proxied.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Bytes per element of each KServe v2 datatype (BYTES has no fixed size: refused by the size check).
DATATYPE_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2, "UINT32": 4,
                  "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}
#: A JSON request spells each 4-byte float in up to ~20 characters: its body may be this many times the binary size.
JSON_BYTES_PER_ELEMENT = 6
_INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
#: Headers that belong to one connection, not to the request or reply being relayed (the gate answered
#: any "Expect: 100-continue" itself).
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "expect"}


class RequestRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ModelInputs:
    """What one served model accepts: ``{input name: (datatype, dims)}`` (-1: any size) and its max batch (0: none)."""

    inputs: dict[str, tuple[str, tuple[int, ...]]]
    max_batch_size: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelInputs":
        """From Triton's ``GET /v2/models/<name>/config`` JSON."""
        inputs = {item["name"]: (item["data_type"].removeprefix("TYPE_"), tuple(int(d) for d in item["dims"]))
                  for item in config.get("input", [])}
        return cls(inputs, int(config.get("max_batch_size", 0)))

    def max_input_bytes(self, max_pixels: int) -> int:
        """The most input bytes one request can need: a full batch, each input's any-size (-1)
        dimensions together at most ``max_pixels`` elements (the H x W of an image)."""
        total = 0
        for datatype, dims in self.inputs.values():
            fixed = math.prod(d for d in dims if d != -1)
            total += max(1, self.max_batch_size) * fixed * (max_pixels if -1 in dims else 1) * DATATYPE_BYTES.get(datatype, 1)
        return total


def check_request(header: Any, binary_bytes: int, model: ModelInputs, max_pixels: int) -> None:
    """Raise RequestRefused(400) unless every declared input can be ``model``'s, within its
    :meth:`ModelInputs.max_input_bytes` in all."""
    max_input_bytes = model.max_input_bytes(max_pixels)
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise RequestRefused(400, "the request needs an 'inputs' list")
    total = declared_binary = 0
    for item in header["inputs"]:
        if not isinstance(item, dict) or item.get("name") not in model.inputs:
            name = item.get("name") if isinstance(item, dict) else item
            raise RequestRefused(400, f"unknown input {name!r}; this model takes {', '.join(model.inputs)}")
        name = item["name"]
        datatype, dims = model.inputs[name]
        if item.get("datatype") != datatype:
            raise RequestRefused(400, f"input {name!r} is {datatype}, not {item.get('datatype')!r}")
        shape = _check_shape(name, item.get("shape"), dims, model.max_batch_size)
        size = math.prod(shape) * DATATYPE_BYTES.get(datatype, 1)
        total += size
        if total > max_input_bytes:
            raise RequestRefused(400, f"input {name!r} of shape {shape} makes the request over the server's "
                                      f"limit of {max_input_bytes:,} input bytes")
        binary = (item.get("parameters") or {}).get("binary_data_size")
        if binary is not None:
            if binary != size:
                raise RequestRefused(400, f"input {name!r}: binary_data_size {binary} is not the {size} bytes of shape {shape}")
            declared_binary += binary
    if declared_binary != binary_bytes:
        raise RequestRefused(400, f"the binary inputs declare {declared_binary} bytes but {binary_bytes} follow the header")


def _check_shape(name: str, shape: Any, dims: tuple[int, ...], max_batch: int) -> list[int]:
    expected = ((-1,) if max_batch > 0 else ()) + dims
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestRefused(400, f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if len(shape) != len(expected):
        raise RequestRefused(400, f"input {name!r}: shape {shape} has {len(shape)} dimensions, the model's {len(expected)}")
    if max_batch > 0 and not 1 <= shape[0] <= max_batch:
        raise RequestRefused(400, f"input {name!r}: batch {shape[0]} is not within 1..{max_batch}")
    for got, want in zip(shape[1:] if max_batch > 0 else shape, dims):
        if want != -1 and got != want:
            raise RequestRefused(400, f"input {name!r}: shape {shape} does not fit the model's {list(expected)}")
    return shape


class InferenceGate:
    """``HOST:port`` -> tritonserver on ``HOST:upstream_port``, refusing impossible ``…/infer`` requests (module doc).

    ``models``: ``{name: ModelInputs}``; ``max_pixels``: the most elements the any-size
    dimensions of an input may declare together (H x W); the largest body read at all is
    :data:`JSON_BYTES_PER_ELEMENT` times the largest request any model can take, plus 1 MiB.
    """

    def __init__(self, host: str, port: int, upstream_port: int, models: dict[str, ModelInputs], *,
                 max_pixels: int) -> None:
        self.upstream = (host, upstream_port)
        self.models, self.max_pixels = models, max_pixels
        largest = max((model.max_input_bytes(max_pixels) for model in models.values()), default=0)
        self.max_body_bytes = JSON_BYTES_PER_ELEMENT * largest + (1 << 20)
        self.refused = 0
        gate = self

        class Handler(_GateHandler):
            pass

        Handler.gate = gate
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="dmphn-gate", daemon=True)

    @classmethod
    def in_front_of(cls, host: str, port: int, upstream_port: int, *, max_pixels: int) -> "InferenceGate":
        """A gate on ``host:port`` for every model the ready tritonserver on ``upstream_port`` serves."""
        def get(method: str, path: str) -> Any:
            connection = http.client.HTTPConnection(host, upstream_port, timeout=30)
            try:
                connection.request(method, path, body=b"{}" if method == "POST" else None)
                return json.loads(connection.getresponse().read())
            finally:
                connection.close()

        names = [item["name"] for item in get("POST", "/v2/repository/index") if item.get("state") == "READY"]
        models = {name: ModelInputs.from_config(get("GET", f"/v2/models/{name}/config")) for name in names}
        return cls(host, port, upstream_port, models, max_pixels=max_pixels)

    def start(self) -> "InferenceGate":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def screen(self, path: str, body: bytes, header_length: str | None) -> None:
        """Raise RequestRefused when the ``…/infer`` request of ``body`` cannot be served."""
        match = _INFER_PATH.match(path.split("?", 1)[0])
        if match is None:
            return
        model = self.models.get(match.group(1))
        if model is None:
            return  # Triton answers 400/404 for a model it does not serve, without allocating
        try:
            length = int(header_length) if header_length is not None else len(body)
            if not 0 < length <= len(body):
                raise ValueError
            header = json.loads(body[:length])
        except (ValueError, UnicodeDecodeError):
            raise RequestRefused(400, "the request header is not valid JSON (or Inference-Header-Content-Length is wrong)") from None
        check_request(header, len(body) - length, model, self.max_pixels)


class _GateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tritonclient expects
    gate: InferenceGate

    def do_GET(self) -> None:
        self._relay(b"")

    def do_POST(self) -> None:
        try:
            body = self._read_body()
            self.gate.screen(self.path, body, self.headers.get("Inference-Header-Content-Length"))
        except RequestRefused as refused:
            self.gate.refused += 1
            self._reply(refused.status, json.dumps({"error": str(refused)}).encode(), close=refused.status in (411, 413))
            return
        self._relay(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestRefused(411, "send the request with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestRefused(400, "Content-Length is not a number") from None
        if length < 0 or length > self.gate.max_body_bytes:
            raise RequestRefused(413, f"request body of {length:,} bytes is over the server's limit of "
                                      f"{self.gate.max_body_bytes:,}")
        return self.rfile.read(length)

    def _relay(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = getattr(self, "_upstream", None) or http.client.HTTPConnection(*self.gate.upstream, timeout=600)
        self._upstream = connection
        try:
            connection.request(self.command, self.path, body=body or None, headers=headers)
            reply = connection.getresponse()
            data = reply.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._upstream = None
            self._reply(502, json.dumps({"error": "tritonserver did not answer"}).encode(), close=True)
            return
        self.send_response(reply.status, reply.reason)
        for key, value in reply.getheaders():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reply(self, status: int, data: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:  # the unread body of a refused request would be read as the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def finish(self) -> None:
        super().finish()
        if getattr(self, "_upstream", None) is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


__all__ = ["DATATYPE_BYTES", "InferenceGate", "ModelInputs", "RequestRefused", "check_request"]

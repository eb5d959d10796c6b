"""Client runner: each ``infer`` is one request to a Triton Inference Server (KServe v2, HTTP or gRPC).

The server does the work (``dmphn-serve REPO`` on this machine, or any Triton); this runner
only sends ``(B, 3, H, W)`` float32 and returns the reply, so it fits every tool that takes a
runner (parity, benchmarks, ``Deblurrer``: the model's fixed H/W is the runner's
``input_shape``, so larger images are tiled to it)::

    with TritonRunner("127.0.0.1:8000", protocol="http") as runner:
        y = runner.infer(x)

A request the server refuses, or one that cannot reach it, raises :class:`TritonRequestError`
with the server's one-line reason. :meth:`TritonRunner.send` posts an array as it is (any
dtype or shape) to see what the server says about it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHNConfig

from .base import Runner

PROTOCOLS = ("http", "grpc")
#: numpy dtype -> KServe v2 datatype, for :meth:`TritonRunner.send`.
DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.float16): "FP16",
             np.dtype(np.uint8): "UINT8", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64"}


class TritonRequestError(DMPHNError):
    """The server refused a request, or could not be reached."""


def client_module(protocol: str):
    """``tritonclient.http`` or ``tritonclient.grpc``; RuntimeUnavailable when not installed."""
    if protocol not in PROTOCOLS:
        raise DMPHNError(f"unknown Triton protocol {protocol!r}; use http or grpc")
    try:
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
    except ImportError as exc:
        raise RuntimeUnavailable(f"the Triton client needs tritonclient[{protocol}] (pip install "
                                 f"'tritonclient[http,grpc]'): {exc}") from None
    return module


def _first_line(exc: BaseException) -> str:
    text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return (str(text).strip().splitlines() or [type(exc).__name__])[0]


class TritonRunner(Runner):
    """Sends each batch to ``model_name`` at ``url`` (``host:port``: the HTTP or the gRPC port)."""

    runtime = "triton"
    devices = ("cpu",)
    needs_service = "a running Triton server (dmphn-serve); load-test it with dmphn-loadtest"

    def __init__(
        self,
        url: str = "127.0.0.1:8000",
        *,
        protocol: str = "http",
        model_name: str = "dmphn",
        timeout_s: float = 60.0,
        device: str = "cpu",
        precision: str = "fp32",
        name: str | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise DMPHNError(f"unknown Triton protocol {protocol!r}; use http or grpc")
        super().__init__(device=device, precision=precision, name=name or f"triton[{protocol}]-{model_name}")
        self.url, self.protocol, self.model_name, self.timeout_s = url, protocol, model_name, timeout_s
        self.client = None
        self.max_batch: int | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        if device != "cpu":
            return "the Triton client sends host arrays; the server decides where the model runs (use device cpu)"
        if precision != "fp32":
            return f"the Triton client sends fp32; the served model decides its precision, not {precision}"
        try:
            client_module("http"), client_module("grpc")
        except RuntimeUnavailable as exc:
            return str(exc)
        return None

    # -- lifecycle -------------------------------------------------------------------
    def _activate(self) -> None:
        module = client_module(self.protocol)
        try:
            if self.protocol == "http":
                self.client = module.InferenceServerClient(self.url, connection_timeout=self.timeout_s,
                                                           network_timeout=self.timeout_s)
            else:
                self.client = module.InferenceServerClient(self.url)
            ready = self.client.is_model_ready(self.model_name)
        except Exception as exc:  # noqa: BLE001 - connection errors come as many types (socket, gevent, grpc)
            self._close()
            raise TritonRequestError(f"cannot reach Triton at {self.url} ({self.protocol}): {_first_line(exc)}") from None
        if not ready:
            self._close()
            raise TritonRequestError(f"Triton at {self.url} has no ready model {self.model_name!r}")
        config = self._model_config()
        dims = next((list(t["dims"]) for t in config.get("input", []) if t.get("name") == INPUT_NAME), None)
        if dims is None:
            self._close()
            raise TritonRequestError(f"model {self.model_name!r} at {self.url} has no input {INPUT_NAME!r}")
        self.max_batch = int(config.get("max_batch_size", 0)) or None
        self.input_shape = (None, *(int(d) if int(d) > 0 else None for d in dims))
        raw = config.get("parameters", {}).get("dmphn_config", {}).get("string_value")
        self.model_config = DMPHNConfig.from_dict(json.loads(raw)) if raw else None

    def _model_config(self) -> dict[str, Any]:
        if self.protocol == "http":
            return self.client.get_model_config(self.model_name)
        return self.client.get_model_config(self.model_name, as_json=True)["config"]

    def _close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
                pass
        self.client = None

    def _deactivate(self) -> None:
        self._close()

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            raise DMPHNError(f"{self.name}: batch {x.shape[0]} is over the model's max_batch_size {self.max_batch}")

    # -- inference -------------------------------------------------------------------
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.send(x.detach().contiguous().numpy()))

    def send(self, array: np.ndarray, datatype: str | None = None) -> np.ndarray:
        """One request with ``array`` as it is (no checks here: the server judges); returns the output."""
        if self.client is None:
            raise DMPHNError(f"runner {self.name} is not active; use it in a `with` block or call activate()")
        module = client_module(self.protocol)
        datatype = datatype or DATATYPES.get(array.dtype)
        if datatype is None:
            raise DMPHNError(f"cannot send dtype {array.dtype}; use one of {', '.join(map(str, DATATYPES))}")
        request = module.InferInput(INPUT_NAME, list(array.shape), datatype)
        request.set_data_from_numpy(array)
        outputs = [module.InferRequestedOutput(OUTPUT_NAME)]
        try:
            if self.protocol == "http":
                result = self.client.infer(self.model_name, [request], outputs=outputs)
            else:
                result = self.client.infer(self.model_name, [request], outputs=outputs,
                                           client_timeout=self.timeout_s)
            output = result.as_numpy(OUTPUT_NAME)
        except Exception as exc:  # noqa: BLE001 - server errors, resets, timeouts: all mean "no answer"
            raise TritonRequestError(f"{self.name}: {_first_line(exc)}") from None
        if output is None or output.shape[0] != array.shape[0]:
            shape = None if output is None else output.shape
            raise TritonRequestError(f"{self.name}: malformed reply (output shape {shape} for input {array.shape})")
        # the HTTP client returns a read-only view of its receive buffer; callers get their own array
        return output if output.flags.writeable else output.copy()

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        try:
            version = metadata.version("tritonclient")
        except metadata.PackageNotFoundError:
            version = None
        return {**super().describe(), "url": self.url, "protocol": self.protocol, "model_name": self.model_name,
                "tritonclient": version}

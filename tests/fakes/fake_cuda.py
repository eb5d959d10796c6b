"""CPU stand-ins for the runner's CUDA seam (``TensorRTRunner.cuda_api``, a :class:`runtimes.tensorrt.TorchCuda`) and for
:class:`runtimes.cuda_graph.CudaGraphCache`, logging into the fake TensorRT's ``state.log``.

Streams are names with a handle (0 is the legacy default stream); "waiting", "using" and
"recording" are log entries, so tests can check their order around ``execute_async_v3``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


class FakeStream:
    def __init__(self, log: list, name: str, handle: int) -> None:
        self.log, self.name, self.handle = log, name, handle

    def wait_stream(self, stream: FakeStream) -> None:
        self.log.append(("wait_stream", self.name, stream.name))

    def __repr__(self) -> str:
        return f"FakeStream({self.name})"


class FakeCuda:
    def __init__(self, log: list, compute_capability: str = "9.0", device_name: str = "Fake GPU") -> None:
        self.log = log
        self.compute_capability_value = compute_capability
        self.device_name_value = device_name
        self.default = FakeStream(log, "default", 0)
        self.current = self.default
        self.created: list[FakeStream] = []

    def new_stream(self) -> FakeStream:
        stream = FakeStream(self.log, f"stream{len(self.created) + 1}", 0x7000 + len(self.created) + 1)
        self.created.append(stream)
        return stream

    def current_stream(self) -> FakeStream:
        return self.current

    @contextmanager
    def use(self, stream: FakeStream):
        previous, self.current = self.current, stream
        self.log.append(("use", stream.name))
        try:
            yield
        finally:
            self.current = previous
            self.log.append(("leave", stream.name))

    def handle(self, stream: FakeStream) -> int:
        return stream.handle

    def record(self, tensor: torch.Tensor, stream: FakeStream) -> None:
        self.log.append(("record_stream", tensor.data_ptr(), stream.name))

    def compute_capability(self) -> str:
        return self.compute_capability_value

    def device_name(self) -> str:
        return self.device_name_value


def fake_graph_cache(state):
    """A ``CudaGraphCache`` look-alike over the fake TensorRT ``state``: per input shape, one
    warm-up call, one "capture" (launches recorded, not run), then replays of the launches."""

    class FakeGraphCache:
        def __init__(self, fn, name: str) -> None:
            self.fn, self.name = fn, name
            self._graphs: dict[tuple[int, ...], tuple[list, torch.Tensor, torch.Tensor]] = {}

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            key = tuple(x.shape)
            if key not in self._graphs:
                static_in = x.clone()
                self.fn(static_in)  # warm-up outside the capture
                state.capture = launches = []
                try:
                    static_out = self.fn(static_in)
                finally:
                    state.capture = None
                self._graphs[key] = (launches, static_in, static_out)
            launches, static_in, static_out = self._graphs[key]
            static_in.copy_(x)
            for launch in launches:
                launch()
            return static_out.clone()

        def clear(self) -> None:
            self._graphs.clear()

    return FakeGraphCache

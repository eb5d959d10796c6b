"""Replay a fixed-shape GPU computation as a CUDA graph (one capture per input shape).

Launch gaps dominate small-kernel networks at batch 1; a graph replays every kernel of a
call with one launch. Used by the TensorRT and torch.compile runners.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dmphn_core.errors import DMPHNError


class CudaGraphCache:
    """``cache(x)`` runs ``fn`` through a graph captured for ``x.shape`` the first time.

    ``fn`` must be capturable: fixed shapes, no host synchronisation, no CPU tensors. Its
    output buffer lives in the graph's private pool, so each call returns a copy. A graph
    keeps the addresses ``fn`` used during its capture, so state ``fn`` binds per shape must
    not be re-bound by the capture of another shape: the TensorRT runner gives each shape
    its own execution context for that reason.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        self.fn = fn
        self.name = name
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            # Warm-up outside the capture: libraries finish lazy, shape-dependent setup here.
            self.fn(static_in)
        side.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                static_out = self.fn(static_in)
        except RuntimeError as exc:
            raise DMPHNError(f"{self.name}: CUDA graph capture failed: {str(exc).splitlines()[0]}") from None
        torch.cuda.current_stream().wait_stream(side)
        return graph, static_in, static_out

    def clear(self) -> None:
        self._graphs.clear()

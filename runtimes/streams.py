"""Several inputs in flight on a pool of workers, outputs in input order (throughput mode).

Used by runners whose runtime offers no asynchronous queue of its own but releases the GIL
while it computes (ONNX Runtime: one session per worker thread, each with its own thread pool).
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def default_streams(cores: int | None = None) -> int:
    """Parallel executions for throughput mode: a quarter of the cores, at least 2 (1 on one core).

    The same rule of thumb as OpenVINO's THROUGHPUT hint on big CPUs (about 4 threads a stream),
    but never 1 where two cores could overlap two frames.
    """
    cores = cores or os.cpu_count() or 1
    return 1 if cores == 1 else max(2, cores // 4)


def run_in_order(inputs: Iterable[np.ndarray], workers: list[Callable[[np.ndarray], np.ndarray]],
                 in_flight: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``worker(x)`` for each input, in input order; each worker runs one call at a time.

    At most ``in_flight`` inputs (default: twice the workers, so none idles while the oldest
    finishes) are read ahead of the output being yielded. Closing the generator early waits for
    the calls already started.
    """
    if not workers:
        raise ValueError("run_in_order needs at least one worker")
    idle: queue.SimpleQueue = queue.SimpleQueue()
    for worker in workers:
        idle.put(worker)

    def call(x: np.ndarray) -> np.ndarray:
        worker = idle.get()
        try:
            return worker(x)
        finally:
            idle.put(worker)

    limit = in_flight or 2 * len(workers)
    with ThreadPoolExecutor(len(workers), thread_name_prefix="dmphn-stream") as pool:
        pending: deque = deque()
        for x in inputs:
            pending.append(pool.submit(call, x))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

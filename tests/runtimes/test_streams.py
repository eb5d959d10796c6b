"""run_in_order: outputs in input order, calls overlap on the workers, bounded read-ahead."""

from __future__ import annotations

import threading
import time

import numpy as np

from runtimes.streams import default_streams, run_in_order


def test_outputs_in_input_order_while_calls_overlap():
    delay = 0.05
    running, peak = [0], [0]
    lock = threading.Lock()

    def slow_negate(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(delay * (1 + x[0] % 2))  # odd inputs take longer: they finish out of order
        with lock:
            running[0] -= 1
        return -x

    inputs = [np.array([i]) for i in range(8)]
    begin = time.perf_counter()
    outputs = list(run_in_order(inputs, [slow_negate, slow_negate]))
    wall = time.perf_counter() - begin
    assert [int(y[0]) for y in outputs] == [-i for i in range(8)]
    assert peak[0] == 2  # both workers busy at once
    assert wall < 0.8 * sum(delay * (1 + i % 2) for i in range(8))  # one after another would take the sum


def test_reads_ahead_at_most_in_flight_inputs():
    pulled = []

    def feed():
        for i in range(10):
            pulled.append(i)
            yield np.array([i])

    stream = run_in_order(feed(), [lambda x: x], in_flight=3)
    next(stream)
    assert len(pulled) <= 3
    stream.close()


def test_default_streams():
    assert default_streams(1) == 1 and default_streams(2) == 2 and default_streams(16) == 4

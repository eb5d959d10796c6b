"""The HTTP gate's checks on declared shapes and sizes, without a server (issue #27 item 2; the
served test is tests/cli/test_serve.py::test_impossible_requests_are_refused_and_kill_9_leaves_nothing)."""

from __future__ import annotations

import pytest

from runtimes.triton_gate import ModelInputs, RequestRefused, check_request

FIXED = ModelInputs({"blurred": ("FP32", (3, 32, 64))}, max_batch_size=4)
ANY_SIZE = ModelInputs({"blurred": ("FP32", (3, -1, -1))}, max_batch_size=2)


def _header(shape, **extra):
    return {"inputs": [{"name": "blurred", "datatype": "FP32", "shape": shape, **extra}]}


@pytest.mark.parametrize("model, shape", [(FIXED, [4, 3, 32, 64]), (FIXED, [1, 3, 32, 64]), (ANY_SIZE, [2, 3, 1000, 1000])])
def test_requests_the_model_can_take_pass(model, shape):
    check_request(_header(shape), 0, model, max_pixels=10**6)


@pytest.mark.parametrize("model, shape, why", [
    (FIXED, [4, 3, 65536, 65536], "does not fit"),
    (FIXED, [5, 3, 32, 64], "batch 5"),
    (FIXED, [0, 3, 32, 64], "batch 0"),
    (FIXED, [1, 3, 32], "dimensions"),
    (FIXED, [1, 3, 32, -64], "non-negative"),
    (FIXED, "1,3,32,64", "non-negative"),
    (FIXED, [True, 3, 32, 64], "non-negative"),
    (ANY_SIZE, [2, 3, 1001, 1000], "limit of"),
    (ANY_SIZE, [1, 3, 2**40, 2**40], "limit of"),
])
def test_impossible_shapes_are_refused(model, shape, why):
    with pytest.raises(RequestRefused, match=why):
        check_request(_header(shape), 0, model, max_pixels=10**6)


def test_binary_sizes_must_match_the_shape_and_the_body():
    size = 1 * 3 * 32 * 64 * 4
    check_request(_header([1, 3, 32, 64], parameters={"binary_data_size": size}), size, FIXED, max_pixels=1)
    with pytest.raises(RequestRefused, match="binary_data_size"):
        check_request(_header([1, 3, 32, 64], parameters={"binary_data_size": 2**40}), size, FIXED, max_pixels=1)
    with pytest.raises(RequestRefused, match="follow the header"):
        check_request(_header([1, 3, 32, 64], parameters={"binary_data_size": size}), 10, FIXED, max_pixels=1)


@pytest.mark.parametrize("header", [[], {}, {"inputs": []}, {"inputs": [{"name": "x"}]},
                                    {"inputs": [{"name": "blurred", "datatype": "BYTES", "shape": [1, 3, 32, 64]}]}])
def test_malformed_headers_are_refused(header):
    with pytest.raises(RequestRefused):
        check_request(header, 0, FIXED, max_pixels=1)

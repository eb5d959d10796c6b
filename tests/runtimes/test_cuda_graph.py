import pytest
import torch

from runtimes.cuda_graph import CudaGraphCache

pytestmark = pytest.mark.gpu


def test_replay_matches_direct_calls_and_copies_out():
    weight = torch.randn(3, 3, 3, 3, device="cuda")
    fn = lambda x: torch.nn.functional.conv2d(x, weight, padding=1)
    cache = CudaGraphCache(fn, "conv")
    x1, x2 = torch.randn(1, 3, 8, 8, device="cuda"), torch.randn(1, 3, 8, 8, device="cuda")
    y1 = cache(x1)
    y2 = cache(x2)
    torch.testing.assert_close(y1, fn(x1))
    torch.testing.assert_close(y2, fn(x2))
    assert not torch.equal(y1, y2)  # the first output was not overwritten by the second replay
    cache(torch.randn(2, 3, 8, 8, device="cuda"))
    assert len(cache._graphs) == 2


def test_replaying_a_shape_after_capturing_another():
    """Shape A's graph still computes A after B was captured (each capture keeps its own buffers)."""
    weight = torch.randn(3, 3, 3, 3, device="cuda")
    fn = lambda x: torch.nn.functional.conv2d(x, weight, padding=1)
    cache = CudaGraphCache(fn, "conv")
    a1, b, a2 = (torch.randn(n, 3, 8, 8, device="cuda") for n in (1, 2, 1))
    cache(a1)
    cache(b)
    torch.testing.assert_close(cache(a2), fn(a2))
    torch.testing.assert_close(cache(b * 2), fn(b * 2))

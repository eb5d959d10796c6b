"""Where the static-shape and per-patch eager forms spend their convolution time.

Profiles one forward pass of each form (same weights, same input) with ``torch.profiler`` and
tabulates the residual blocks' convolutions by input shape: calls, ms per call and the achieved
GFLOP/s, which shows whether a convolution got slower per unit of work as its activation grew. Run on a quiet machine:

    python -m cli.profile_forms --shape 720x1280 --threads 2 --passes 3 -o profile.md
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile

from dmphn_core.model import DMPHN, dmphn
from dmphn_core.reference import PerPatchDMPHN

#: The dispatcher op every convolution passes through, whichever kernel (oneDNN, or a fallback
#: for small maps) then runs it; its total time is the whole convolution.
CONV_OP = "aten::convolution"


@dataclass(frozen=True)
class ConvRow:
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    calls: int
    total_ms: float

    @property
    def ms_per_call(self) -> float:
        return self.total_ms / self.calls

    @property
    def gflops(self) -> float:
        """Achieved rate: 2 FLOPs per multiply-add of a stride-1 conv, over the measured time."""
        batch, _, height, width = self.input_shape
        out_channels, in_channels, kh, kw = self.weight_shape
        flops = 2 * batch * height * width * out_channels * in_channels * kh * kw
        return flops / (self.ms_per_call * 1e6)


def _conv_rows(model: torch.nn.Module, x: torch.Tensor, passes: int) -> tuple[list[ConvRow], float]:
    """Convolution rows and the profiled CPU time, both per forward pass (mean over ``passes``)."""
    with torch.inference_mode():
        model(x)  # warm-up: oneDNN picks and caches its kernels on the first call
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(passes):
                model(x)
    rows = []
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key != CONV_OP or len(event.input_shapes) < 2:
            continue
        input_shape, weight_shape = tuple(event.input_shapes[0]), tuple(event.input_shapes[1])
        # Only the residual blocks' 3x3 convs (C -> C, stride 1): their output has the input's
        # pixels, so the FLOPs follow from the input shape alone.
        if len(weight_shape) == 4 and weight_shape[0] == weight_shape[1]:
            rows.append(ConvRow(input_shape, weight_shape, event.count // passes, event.cpu_time_total / 1000 / passes))
    total_ms = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1000 / passes
    return sorted(rows, key=lambda r: -r.total_ms), total_ms


def to_markdown(
    results: dict[str, tuple[list[ConvRow], float]], shape: tuple[int, int], passes: int, info: dict
) -> str:
    lines = [
        f"# Convolution profile: static-shape vs per-patch eager, DMPHN-1-2-4-8, {shape[0]}x{shape[1]}",
        "",
        f"{info['date']} · {info['cpu']} · {info['torch_threads']} threads · torch {info['torch']}",
        f"command: `{info['command']}`; times are per forward pass, mean of {passes} profiled passes",
        "",
    ]
    for form, (rows, total_ms) in results.items():
        conv_ms = sum(r.total_ms for r in rows)
        lines += [
            f"## {form}: {total_ms:.0f} ms profiled CPU time, {conv_ms:.0f} ms in residual-block 3x3 convolutions",
            "",
            "| conv input (B, C, H, W) | calls | ms/call | ms total | GFLOP/s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {list(r.input_shape)} | {r.calls} | {r.ms_per_call:.1f} | {r.total_ms:.0f} | {r.gflops:.1f} |"
            for r in rows
        ]
        lines.append("")
    return "\n".join(lines)


def profile_forms(height: int, width: int, passes: int = 1, seed: int = 0) -> dict[str, tuple[list[ConvRow], float]]:
    torch.manual_seed(seed)
    static: DMPHN = dmphn(4).eval()
    per_patch = PerPatchDMPHN(static.config).eval()
    per_patch.load_state_dict(static.state_dict())
    x = torch.rand(1, 3, height, width)
    return {"static-shape": _conv_rows(static, x, passes), "per-patch": _conv_rows(per_patch, x, passes)}

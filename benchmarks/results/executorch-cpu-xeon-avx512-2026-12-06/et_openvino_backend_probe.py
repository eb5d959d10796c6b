"""Session 12 probe: the ExecuTorch wheel registers an OpenvinoBackend; lower DMPHN-1-2-4-8 fp32 with its
OpenvinoPartitioner and run it through the pybindings. python et_openvino_backend_probe.py H W. Kept as run."""
import sys, time, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
m = load_checkpoint("/work/cache-bench-core/authors-1248.pt").build_model().eval()
H, W = int(sys.argv[1]), int(sys.argv[2])
x = torch.rand(1, 3, H, W)
from executorch.backends.openvino.partitioner import OpenvinoPartitioner
from executorch.exir import to_edge_transform_and_lower
from executorch.exir.backend.backend_details import CompileSpec
ep = torch.export.export(m, (x,))
t = time.time()
edge = to_edge_transform_and_lower(ep, partitioner=[OpenvinoPartitioner([CompileSpec("device", b"CPU")])])
prog = edge.to_executorch()
open("/work/s12/et/ov_fp32.pte", "wb").write(prog.buffer)
print("lowered in", round(time.time() - t, 1), "s", len(prog.buffer) / 2**20, "MiB")
from executorch.extension.pybindings import portable_lib as lib
mod = lib._load_for_executorch("/work/s12/et/ov_fp32.pte")
with torch.inference_mode():
    ref = m(x)
out = mod.forward((x,))[0]
print("max err", (out - ref).abs().max().item())
ts = []
for _ in range(3):
    s = time.perf_counter(); mod.forward((x,)); ts.append(time.perf_counter() - s)
print("ms", [round(1000 * v) for v in ts])

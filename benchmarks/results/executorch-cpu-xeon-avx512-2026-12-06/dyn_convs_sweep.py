"""Session 12 (2026-12-06): the exporter's float convolutions (image-space in/out, level-1 output block) run as
XNNPACK dynamically quantized convolutions (int8 input quantized per call, int8 per-channel weights, float output)
instead of float. python dyn_sweep.py H W variant,... ; PSNR vs eager fp32 on the 4 resized frames, then alternating
call-by-call timing in one process (ROUNDS). Variants: current (recipe 1), dyn_out (the 4 32->3 output convs),
dyn_out_blk (+ the output block's convs the dynamic pattern takes), dyn_all (every float conv, also 3->32)."""
import sys, time, statistics, os, json
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.imageio import read_image
from runtimes.compare import psnr_db
import export.to_executorch as te
import torchao.quantization.pt2e.quantize_pt2e as qp
from torchao.quantization.pt2e.quantizer import ComposableQuantizer
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
H, W = int(sys.argv[1]), int(sys.argv[2])
names = sys.argv[3].split(",")
OUT = Path("/work/s12/et")
m = load_checkpoint("/work/cache-bench-core/authors-1248.pt").build_model().eval()
_orig_prepare = qp.prepare_pt2e

def select(graph, which):
    convs = te.image_space_convolutions(graph) + te.output_block_convolutions(graph, m)
    out = []
    for node in graph.graph.nodes:
        if node.name not in convs: continue
        w = te._weight_shape(graph, node)
        if which == "out" and w[0] != 3: continue
        if which == "out_blk" and w[1] == 3: continue
        out.append(node.name)
    return out

def make_prepare(which):
    def prepare(graph, quantizer):
        chosen = set(select(graph, which))
        dyn = XNNPACKQuantizer()
        dyn.set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
        dyn.set_filter_function(lambda node: node.name in chosen or node.op != "call_function")
        prepared = _orig_prepare(graph, ComposableQuantizer([quantizer, dyn]))
        print(which, "dynamic convs chosen:", len(chosen), sorted(chosen), flush=True)
        return prepared
    return prepare
PREP = {"dyn_out": make_prepare("out"), "dyn_out_blk": make_prepare("out_blk"), "dyn_all": make_prepare("all")}
paths = {}
for name in names:
    p = OUT / f"{name}_{H}x{W}.pte"; paths[name] = p
    if not p.exists():
        qp.prepare_pt2e = PREP.get(name, _orig_prepare)
        t = time.time(); info = te.export_executorch(m, p, batch=1, height=H, width=W, precision="int8")
        print(name, "export", round(time.time() - t), "s", info["log_lines"], flush=True)
        qp.prepare_pt2e = _orig_prepare
from executorch.extension.pybindings import portable_lib as lib
lib._unsafe_reset_threadpool(2)
mods = {k: lib._load_for_executorch(str(p)) for k, p in paths.items()}
frames = sorted(Path("/work/cache-bench-core/frames-352x640" if H == 352 else "/work/shared/reference/dmphn-authors/test_samples").glob("*.png"))
torch.set_num_threads(2)
xs = [torch.from_numpy(np.ascontiguousarray(read_image(f).transpose(2, 0, 1)[None])) for f in frames]
with torch.inference_mode():
    refs = [m(x).numpy() for x in xs]
q = {}
for k in list(mods):
    try:
        q[k] = [round(psnr_db(mods[k].forward((x,))[0].numpy(), r), 2) for x, r in zip(xs, refs)]
    except RuntimeError as exc:  # dyn_all: XNNPACK refuses the 3-channel dynamically quantized convolutions at run time
        q[k] = f"fails: {exc}"; del mods[k]
    print(k, q[k], flush=True)
x0 = xs[0]
for mod in mods.values(): mod.forward((x0,))
times = {k: [] for k in mods}
l0 = os.getloadavg()
order = list(mods.items())
for r in range(int(os.environ.get("ROUNDS", 10))):
    for k, mod in (order if r % 2 == 0 else order[::-1]):
        t = time.perf_counter(); mod.forward((x0,)); times[k].append(time.perf_counter() - t)
if not any(times.values()): sys.exit(0)
base = times[names[0]]
res = {k: {"median_ms": round(1000 * statistics.median(v)), "min_ms": round(1000 * min(v)),
           "ratio_vs_first_round_median": round(statistics.median(b / a for a, b in zip(v, base)), 3)} for k, v in times.items()}
print("load", l0, os.getloadavg(), json.dumps(res), flush=True)
json.dump({"psnr": q, "ms": res, "times": times, "load": [l0, os.getloadavg()]}, open(OUT / f"dyn_{H}x{W}.json", "w"), indent=1)

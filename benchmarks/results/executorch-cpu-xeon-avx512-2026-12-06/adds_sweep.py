"""Session 11 (2026-12-06): which residual adds of the ExecuTorch int8 recipe can run in int8.
Run as: python adds_sweep.py H W variant,variant,...  (ROUNDS=n for the timing rounds); each variant is the
exporter of the time (every residual add float) with its keep-float filter (and, for adds_mm_*, the add
outputs' observers) swapped; PSNR vs eager fp32 on the 4 resized 352x640 frames (or the published 720x1280
ones), then a round-robin timing in one process. Output: adds_sweep_logs.log. Kept as run (a record)."""
import sys, time, statistics, os, json
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.imageio import read_image
from runtimes.compare import psnr_db
import export.to_executorch as te
H, W = int(sys.argv[1]), int(sys.argv[2])
names = sys.argv[3].split(",")
OUT = Path("/work/s11/et")
m = load_checkpoint("/work/cache-bench-core/authors-1248.pt").build_model().eval()
orig_filter = te._keep_float_filter

def adds_int8(float_convs):
    return lambda node: node.name not in float_convs

def adds_int8_lowres(float_convs):
    # adds float only where they are at full resolution inside the level-1 encoder/decoder
    def q(node):
        if node.name in float_convs:
            return False
        if str(node.target) in te._ADD_TARGETS:
            stack = [n for n, _ in (node.meta.get("nn_module_stack") or {}).values()]
            return not any(s.startswith(("decoders.0", "encoders.0")) for s in stack)
        return True
    return q

def _in_resblock(node, exclude=()):
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    paths = [p for p, t in stack]
    in_block = any("ResBlock" in str(t) for p, t in stack)
    return in_block and not any(any(e in p for e in exclude) for p in paths)

def adds_int8_resblock(float_convs):
    return lambda node: node.name not in float_convs and (str(node.target) not in te._ADD_TARGETS or _in_resblock(node))

def adds_int8_resblock_not_l1dec(float_convs):
    return lambda node: node.name not in float_convs and (str(node.target) not in te._ADD_TARGETS or _in_resblock(node, ("decoders.0",)))

def adds_int8_resblock_not_l1(float_convs):
    return lambda node: node.name not in float_convs and (str(node.target) not in te._ADD_TARGETS or _in_resblock(node, ("decoders.0", "encoders.0")))

import types
import torchao.quantization.pt2e.quantize_pt2e as qp
_orig_prepare = qp.prepare_pt2e
def _minmax_forward(self, x_orig):
    if x_orig.numel() == 0:
        return x_orig
    x = x_orig.detach().to(self.min_val.dtype)
    self.min_val.copy_(torch.minimum(self.min_val, x.min()))
    self.max_val.copy_(torch.maximum(self.max_val, x.max()))
    return x_orig
def prepare_minmax_adds(graph, quantizer):
    prepared = _orig_prepare(graph, quantizer)
    n = 0
    for node in prepared.graph.nodes:
        if node.op == "call_module" and node.args and isinstance(node.args[0], torch.fx.Node) and str(node.args[0].target) in te._ADD_TARGETS:
            obs = getattr(prepared, node.target); obs.forward = types.MethodType(_minmax_forward, obs); n += 1
    print("minmax observers on adds:", n, flush=True)
    return prepared
PREPARE = {}

def adds_mm_not_l1dec(float_convs):
    return adds_int8_resblock_not_l1dec(float_convs)
PREPARE["adds_mm_not_l1dec"] = prepare_minmax_adds

def _only(prefixes):
    def make(float_convs):
        def q(node):
            if node.name in float_convs: return False
            if str(node.target) not in te._ADD_TARGETS: return True
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            return any("ResBlock" in str(t) for p, t in stack) and any(any(x in p for x in prefixes) for p, t in stack)
        return make and q
    return make
def _paths(node):
    return [p for p, t in (node.meta.get("nn_module_stack") or {}).values()]
def _v2(quant_out_convs):
    blocks = tuple(f"decoders.0.layers.{i}" for i in (0, 1, 3, 4, 6))
    def make(float_convs):
        def q(node):
            ps = _paths(node)
            if node.name in float_convs:
                return quant_out_convs and any(p.endswith(("decoders.1.layers.8", "decoders.2.layers.8", "decoders.3.layers.8")) for p in ps)
            if str(node.target) not in te._ADD_TARGETS: return True
            return any(p.endswith(blocks) for p in ps) or any(any(x in p for x in ("encoders.0.", "decoders.1.", "decoders.2.", "decoders.3.")) for p in ps)
        return q
    return make
filters = {"q_e1d1234b": _v2(False), "q_e1d1234_oc": _v2(True),
"q_e1d234": _only(("encoders.0.", "decoders.1.", "decoders.2.", "decoders.3.")),
           "q_e1d1234": _only(("encoders.0.", "decoders.0.layers.0.", "decoders.0.layers.1.", "decoders.0.layers.3.", "decoders.0.layers.4.", "decoders.0.layers.6.", "decoders.1.", "decoders.2.", "decoders.3.")),
"q_enc234": _only(("encoders.1.", "encoders.2.", "encoders.3.")),
           "q_dec234": _only(("decoders.1.", "decoders.2.", "decoders.3.")),
           "q_l4": _only(("encoders.3.", "decoders.3.")), "q_l34": _only(("encoders.2.", "decoders.2.", "encoders.3.", "decoders.3.")),
"adds_mm_not_l1dec": adds_mm_not_l1dec, "adds_int8_resblock_not_l1": adds_int8_resblock_not_l1, "adds_int8_resblock": adds_int8_resblock, "adds_int8_resblock_not_l1dec": adds_int8_resblock_not_l1dec, "current": orig_filter, "adds_int8": adds_int8, "adds_int8_lowres": adds_int8_lowres}
paths = {}
for name in names:
    p = OUT / f"{name}_{H}x{W}.pte"; paths[name] = p
    if not p.exists():
        te._keep_float_filter = filters[name]
        qp.prepare_pt2e = PREPARE.get(name, _orig_prepare)
        t = time.time(); info = te.export_executorch(m, p, batch=1, height=H, width=W, precision="int8")
        print(name, "export", round(time.time() - t), "s", info["log_lines"], flush=True)
        te._keep_float_filter = orig_filter
        qp.prepare_pt2e = _orig_prepare
from executorch.extension.pybindings import portable_lib as lib
lib._unsafe_reset_threadpool(2)
mods = {k: lib._load_for_executorch(str(p)) for k, p in paths.items()}
frames = sorted(Path("/work/cache-bench-core/frames-352x640" if H == 352 else "/work/shared/reference/dmphn-authors/test_samples").glob("*.png"))
torch.set_num_threads(2)
q = {}
xs = [torch.from_numpy(np.ascontiguousarray(read_image(f).transpose(2, 0, 1)[None])) for f in frames]
with torch.inference_mode():
    refs = [m(x).numpy() for x in xs]
for k, mod in mods.items():
    q[k] = [round(psnr_db(mod.forward((x,))[0].numpy(), r), 2) for x, r in zip(xs, refs)]
    print(k, q[k], flush=True)
x0 = xs[0]
for mod in mods.values(): mod.forward((x0,))
times = {k: [] for k in mods}
l0 = os.getloadavg()
for r in range(int(os.environ.get("ROUNDS", 7))):
    for k, mod in mods.items():
        t = time.perf_counter(); mod.forward((x0,)); times[k].append(time.perf_counter() - t)
res = {k: (round(1000 * statistics.median(v)), round(1000 * min(v))) for k, v in times.items()}
print("load", l0, os.getloadavg(), "median/min ms", res, flush=True)
json.dump({"psnr": q, "ms": res, "times": times, "load": [l0, os.getloadavg()]}, open(OUT / f"adds_{H}x{W}.json", "w"), indent=1)

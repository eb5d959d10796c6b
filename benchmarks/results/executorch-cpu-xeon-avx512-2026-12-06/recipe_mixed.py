"""ExecuTorch int8 mixed: static everywhere (percentile ranges) but the second conv of each residual block
(feeding the float add) quantized dynamically, so its output stays float."""
import sys, copy, time, statistics, os, json, re
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.imageio import read_image
from dmphn_core.artifact import artifact_metadata
from runtimes.torch_utils import Float32IO
from runtimes.compare import psnr_db
import export.to_executorch as te
from export.calibration import calibration_batches, calibration_shape
H, W = int(sys.argv[1]), int(sys.argv[2])
OUT = Path("/work/s10/et")
m = load_checkpoint("/work/cache-bench-core/authors-1248.pt").build_model().eval()
path = OUT / f"mixed_{H}x{W}.pte"
if not path.exists():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    t0 = time.time()
    module = Float32IO(copy.deepcopy(m), torch.float32).eval()
    bh, bw = m.geometry.size_block
    ch, cw = calibration_shape(H, W, (bh, bw))
    ex = torch.rand(1, 3, ch, cw)
    with torch.no_grad():
        g = torch.export.export(module, (ex,), dynamic_shapes=te._dynamic_hw(bh, bw, H, W)).module()
        float_convs = te.image_space_convolutions(g)
        q = XNNPACKQuantizer().set_global(te._with_percentile_ranges(get_symmetric_quantization_config(is_per_channel=True)))
        names = set()
        for n in g.graph.nodes:
            st = n.meta.get("nn_module_stack") or {}
            if n.op == "call_function" and "conv2d" in str(n.target) and st:
                name = list(st.values())[-1][0]
                if re.search(r"\.body\.2$", name):
                    names.add(name)
        dyn = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        for name in sorted(names):
            q.set_module_name(name, dyn)
        q.set_filter_function(te._keep_float_filter(set(float_convs)))
        p = prepare_pt2e(g, q)
        for b in calibration_batches(1, ch, cw, None, 9):
            p(torch.from_numpy(b))
        c = convert_pt2e(p)
        prog = torch.export.export(c, (torch.rand(1, 3, H, W),))
        low = te._lower(prog, artifact_metadata(m.config, batch=1, height=H, width=W, precision="int8"))
        path.write_bytes(low.to_executorch().buffer)
    print("mixed export", round(time.time() - t0), "s", len(names), "dynamic convs", path.stat().st_size >> 20, "MiB", flush=True)
from executorch.extension.pybindings import portable_lib as lib
lib._unsafe_reset_threadpool(2)
paths = {"static_pct": OUT / f"static_pct_{H}x{W}.pte", "mixed": path}
mods = {k: lib._load_for_executorch(str(v)) for k, v in paths.items()}
frames = sorted(Path("/work/cache-bench-core/frames-352x640" if H == 352 else "/work/shared/reference/dmphn-authors/test_samples").glob("*.png"))
xs = [torch.from_numpy(np.ascontiguousarray(read_image(f).transpose(2, 0, 1)[None])) for f in frames]
torch.set_num_threads(2)
with torch.inference_mode():
    refs = [m(x).numpy() for x in xs]
for k, mod in mods.items():
    print(k, [round(psnr_db(mod.forward((x,))[0].numpy(), r), 2) for x, r in zip(xs, refs)], flush=True)
times = {k: [] for k in mods}
for r in range(5):
    for k, mod in mods.items():
        t = time.perf_counter(); mod.forward((xs[0],)); times[k].append(time.perf_counter() - t)
print("median/min ms", {k: (round(1000 * statistics.median(v)), round(1000 * min(v))) for k, v in times.items()}, os.getloadavg())

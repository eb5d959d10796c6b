"""Which part of the network costs the ExecuTorch int8 recipe its dB: leave one encoder/decoder float at a
time, run the PT2E-converted graph in PyTorch (reference q/dq, not XNNPACK), PSNR vs fp32 on frame 000019
(the worst) at 352x640."""
import sys, copy, re, json
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.imageio import read_image
from runtimes.torch_utils import Float32IO
from runtimes.compare import psnr_db
import export.to_executorch as te
from export.calibration import calibration_batches, calibration_shape
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
torch.set_num_threads(2)
H, W = 352, 640
m = load_checkpoint("/work/cache-bench-core/authors-1248.pt").build_model().eval()
frames = [Path(f"/work/cache-bench-core/frames-352x640/{n}.png") for n in ("000019", "000013")]
xs = [torch.from_numpy(np.ascontiguousarray(read_image(f).transpose(2, 0, 1)[None])) for f in frames]
with torch.inference_mode():
    refs = [m(x).numpy() for x in xs]
bh, bw = m.geometry.size_block
ch, cw = calibration_shape(H, W, (bh, bw))
calib = calibration_batches(1, ch, cw, None, 9)
def run(float_prefix):
    module = Float32IO(copy.deepcopy(m), torch.float32).eval()
    with torch.no_grad():
        g = torch.export.export(module, (torch.rand(1, 3, ch, cw),), dynamic_shapes=te._dynamic_hw(bh, bw, H, W)).module()
        float_convs = set(te.image_space_convolutions(g))
        if float_prefix:
            for n in g.graph.nodes:
                st = n.meta.get("nn_module_stack") or {}
                if n.op == "call_function" and "conv" in str(n.target) and st and list(st.values())[-1][0].startswith(float_prefix):
                    float_convs.add(n.name)
        q = XNNPACKQuantizer().set_global(te._with_percentile_ranges(get_symmetric_quantization_config(is_per_channel=True)))
        q.set_filter_function(te._keep_float_filter(float_convs))
        p = prepare_pt2e(g, q)
        for b in calib:
            p(torch.from_numpy(b))
        c = convert_pt2e(p)
        return [round(psnr_db(c(x).numpy(), r), 2) for x, r in zip(xs, refs)], len(float_convs)
res = {}
for prefix in [None] + [f"model.{part}.{i}." for part in ("encoders", "decoders") for i in range(4)]:
    res[str(prefix)] = run(prefix)
    print(prefix, res[str(prefix)], flush=True)
json.dump(res, open("/work/s10/et/sensitivity.json", "w"), indent=1)

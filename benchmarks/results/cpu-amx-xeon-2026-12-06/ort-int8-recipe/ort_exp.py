"""ORT int8 recipe variants on the authors' 1-2-4-8 at 352x640: quality (and optionally time)."""
import sys, time, json, tempfile, collections
from pathlib import Path
import numpy as np, onnx, onnxruntime as ort
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.imageio import read_image
from export.to_onnx import export_onnx
from export.onnx_int8 import image_space_convolutions, _reader, _fix_shape
from export.calibration import calibration_batches, calibration_shape
from runtimes.compare import psnr_db
import torch

OUT = Path("/work/s10/ort")
CK = "/work/cache-bench-core/authors-1248.pt"
FP32 = "/work/cache-bench-core/artifacts/onnx_b1_352x640_cpu_fp32.onnx"
H, W = 352, 640
model = load_checkpoint(CK).build_model()
dyn = OUT / "dyn.onnx"
if not dyn.exists():
    export_onnx(model, dyn, batch=1, height=H, width=W, dynamic_hw=True)

def rewire_float_readers(m, quantized_types=("Conv", "ConvTranspose")):
    """Consumers of a DQ(Q(x)) that are not quantized ops read x itself."""
    g = m.graph
    prod = {o: n for n in g.node for o in n.output}
    n_rewired = 0
    for node in g.node:
        if node.op_type in quantized_types or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            dq = prod.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = prod.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            node.input[i] = q.input[0]; n_rewired += 1
    # drop dangling Q/DQ
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)]
        if not dead: break
        for n in dead: g.node.remove(n)
    return n_rewired

def variant(name, *, exclude_convT, rewire, quant_outputs, extra=None, method="MinMax"):
    path = OUT / f"{name}.onnx"
    if path.exists():
        return path
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    ch, cw = calibration_shape(H, W, tuple(model.geometry.size_block))
    calib = calibration_batches(1, ch, cw, None, 9)
    with tempfile.TemporaryDirectory() as s:
        prep, q = Path(s) / "p.onnx", Path(s) / "q.onnx"
        quant_pre_process(str(dyn), str(prep), skip_symbolic_shape=True)
        pm = onnx.load(str(prep))
        excl = image_space_convolutions(pm)
        if exclude_convT:
            excl += [n.name for n in pm.graph.node if n.op_type == "ConvTranspose"]
        opts = {} if quant_outputs else {"OpTypesToExcludeOutputQuantization": ["Conv", "ConvTranspose"]}
        opts.update(extra or {})
        quantize_static(str(prep), str(q), _reader(calib), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=getattr(CalibrationMethod, method), extra_options=opts,
                        op_types_to_quantize=["Conv", "ConvTranspose"], nodes_to_exclude=excl)
        m = onnx.load(str(q))
    nr = rewire_float_readers(m) if rewire else 0
    _fix_shape(m, [1, 3, H, W])
    onnx.save(m, str(path))
    print(name, "rewired", nr, collections.Counter(n.op_type for n in m.graph.node), flush=True)
    return path

def session(p):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    return ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])

variants = {
    "v0_current": dict(exclude_convT=False, rewire=False, quant_outputs=False),
    "v1_skipfloat_noconvT": dict(exclude_convT=True, rewire=True, quant_outputs=False),
    "v2_skipfloat_noconvT_outq": dict(exclude_convT=True, rewire=True, quant_outputs=True),
    "v3_outq_only": dict(exclude_convT=True, rewire=False, quant_outputs=True),
    "v4_noconvT": dict(exclude_convT=True, rewire=False, quant_outputs=False),
    "v5_outq_pct": dict(exclude_convT=True, rewire=False, quant_outputs=True, method="Percentile"),
    "v7_outq_pct9999": dict(exclude_convT=True, rewire=False, quant_outputs=True, method="Percentile", extra={"CalibPercentile": 99.99}),
    "v8_pct9999": dict(exclude_convT=True, rewire=False, quant_outputs=False, method="Percentile", extra={"CalibPercentile": 99.99}),
    "v6_pct": dict(exclude_convT=True, rewire=False, quant_outputs=False, method="Percentile"),
}
only = sys.argv[1:] or list(variants)
frames = sorted(Path("/work/cache-bench-core/frames-352x640").glob("*.png"))
xs = [np.ascontiguousarray(read_image(f).transpose(2, 0, 1)[None], dtype=np.float32) for f in frames]
ref = session(FP32)
refs = [ref.run(None, {ref.get_inputs()[0].name: x})[0] for x in xs]
res = {}
for name in only:
    p = variant(name, **variants[name])
    s = session(p)
    outs = [s.run(None, {s.get_inputs()[0].name: x})[0] for x in xs]
    res[name] = [round(psnr_db(torch.from_numpy(o), torch.from_numpy(r)), 2) for o, r in zip(outs, refs)]
    print(name, res[name], flush=True)
json.dump(res, open(OUT / f"quality_{'_'.join(only)}.json", "w"), indent=1)

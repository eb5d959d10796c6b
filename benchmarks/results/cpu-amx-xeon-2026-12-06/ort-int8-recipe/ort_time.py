import sys, time, statistics, json, os
import numpy as np, onnxruntime as ort
paths = {"fp32": "/work/cache-bench-core/artifacts/onnx_b1_352x640_cpu_fp32.onnx"}
for name in sys.argv[1:]:
    paths[name] = f"/work/s10/ort/{name}.onnx"
def session(p):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    return ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
sess = {k: session(v) for k, v in paths.items()}
x = np.random.default_rng(0).random((1, 3, 352, 640), dtype=np.float32)
for s in sess.values():
    s.run(None, {s.get_inputs()[0].name: x})
times = {k: [] for k in sess}
print("load", os.getloadavg(), flush=True)
for r in range(5):
    for k, s in sess.items():
        t = time.perf_counter(); s.run(None, {s.get_inputs()[0].name: x}); times[k].append(time.perf_counter() - t)
print("load", os.getloadavg())
res = {k: {"median_ms": round(1000 * statistics.median(v), 1), "min_ms": round(1000 * min(v), 1)} for k, v in times.items()}
for k, v in res.items(): print(k, v, round(res["fp32"]["median_ms"] / v["median_ms"], 2))
json.dump(res, open("/work/s10/ort/time.json", "w"), indent=1)

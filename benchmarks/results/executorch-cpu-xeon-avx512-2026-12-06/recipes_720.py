"""ExecuTorch int8 recipes at 352x640: static HistogramObserver (current), static MinMaxObserver, dynamic.
Quality on the 4 resized frames and the 4 centre crops; time round-robin."""
import sys, copy, time, statistics, os, json, dataclasses
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.imageio import read_image
from runtimes.compare import psnr_db
import export.to_executorch as te
import executorch.backends.xnnpack.quantizer.xnnpack_quantizer as xq
from torchao.quantization.pt2e import MinMaxObserver
H, W = 720, 1280
OUT = Path("/work/s10/et"); OUT.mkdir(exist_ok=True)
m = load_checkpoint("/work/cache-bench-core/authors-1248.pt").build_model().eval()
orig = xq.get_symmetric_quantization_config

def minmax_config(is_per_channel=False, **kw):
    c = orig(is_per_channel=is_per_channel, **kw)
    act = dataclasses.replace(c.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    return dataclasses.replace(c, input_activation=act, output_activation=act)

def dynamic_config(is_per_channel=False, **kw):
    return orig(is_per_channel=is_per_channel, is_dynamic=True)

class PercentileObserver(MinMaxObserver):
    """Range = the PCT-th and (100-PCT)-th percentile of each calibration batch, extremes over batches."""
    PCT = 99.999
    def forward(self, x_orig):
        if x_orig.numel() == 0:
            return x_orig
        x = x_orig.detach().to(self.min_val.dtype).flatten()
        n = x.numel()
        k_hi = min(n, max(1, int(round(n * self.PCT / 100.0))))
        k_lo = max(1, n - k_hi + 1)
        hi = torch.kthvalue(x, k_hi).values
        lo = torch.kthvalue(x, k_lo).values
        self.min_val.copy_(torch.minimum(self.min_val, lo) if self.min_val.numel() and torch.isfinite(self.min_val) else lo)
        self.max_val.copy_(torch.maximum(self.max_val, hi) if self.max_val.numel() and torch.isfinite(self.max_val) else hi)
        return x_orig

def pct_config(is_per_channel=False, **kw):
    c = orig(is_per_channel=is_per_channel, **kw)
    act = dataclasses.replace(c.input_activation, observer_or_fake_quant_ctr=PercentileObserver.with_args(eps=2**-12))
    return dataclasses.replace(c, input_activation=act, output_activation=act)

variants = {"static_minmax": minmax_config, "dynamic": dynamic_config, "static_pct": pct_config}
paths = {"static_hist": Path(f"/work/cache-bench-core/artifacts/executorch_b1_{H}x{W}_cpu_int8.pte")}
for name, cfg in variants.items():
    if len(sys.argv) > 1 and name not in sys.argv[1:]:
        continue
    p = OUT / f"{name}_{H}x{W}.pte"; paths[name] = p
    if not p.exists():
        xq.get_symmetric_quantization_config = cfg
        t = time.time(); info = te.export_executorch(m, p, batch=1, height=H, width=W, precision="int8")
        print(name, "export", round(time.time() - t), "s", info["log_lines"], flush=True)
        xq.get_symmetric_quantization_config = orig
from executorch.extension.pybindings import portable_lib as lib
lib._unsafe_reset_threadpool(2)
mods = {k: lib._load_for_executorch(str(p)) for k, p in paths.items()}
sets = {"frames720": sorted(Path("/work/shared/reference/dmphn-authors/test_samples").glob("*.png")),
}
torch.set_num_threads(2)
q = {}
for sname, frames in sets.items():
    xs = [torch.from_numpy(np.ascontiguousarray(read_image(f).transpose(2, 0, 1)[None])) for f in frames]
    with torch.inference_mode():
        refs = [m(x).numpy() for x in xs]
    for k, mod in mods.items():
        q[f"{k} {sname}"] = [round(psnr_db(mod.forward((x,))[0].numpy(), r), 2) for x, r in zip(xs, refs)]
        print(k, sname, q[f"{k} {sname}"], flush=True)
x0 = xs[0]
for mod in mods.values(): mod.forward((x0,))
times = {k: [] for k in mods}
l0 = os.getloadavg()
for r in range(2):
    for k, mod in mods.items():
        t = time.perf_counter(); mod.forward((x0,)); times[k].append(time.perf_counter() - t)
res = {k: (round(1000 * statistics.median(v)), round(1000 * min(v))) for k, v in times.items()}
print("load", l0, os.getloadavg(), "median/min ms", res, flush=True)
json.dump({"psnr": q, "ms": res, "load": [l0, os.getloadavg()]}, open(OUT / "variants720.json", "w"), indent=1)

"""Session 11: two ExecuTorch programs timed call by call in alternating order in one process (2 threads);
per-round ratio first/second. recipe0: every residual add float (the exporter before), recipe1: the exporter now."""
import sys, time, statistics, os, torch, json
from executorch.extension.pybindings import portable_lib as lib
lib._unsafe_reset_threadpool(2)
H, W, R = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mods = {n: lib._load_for_executorch(f"/work/s11/et/{n}_{H}x{W}.pte") for n in sys.argv[4:]}
x = torch.rand(1, 3, H, W)
for m in mods.values(): m.forward((x,))
t = {n: [] for n in mods}
for r in range(R):
    for n, m in (mods.items() if r % 2 == 0 else reversed(list(mods.items()))):
        s = time.perf_counter(); m.forward((x,)); t[n].append(time.perf_counter() - s)
names = list(mods)
ratios = [a / b for a, b in zip(t[names[0]], t[names[1]])]
print(os.getloadavg(), {n: (round(1000*statistics.median(v)), round(1000*min(v))) for n, v in t.items()}, "per-round ratio median", round(statistics.median(ratios), 3), [round(r, 2) for r in ratios])

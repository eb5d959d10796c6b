"""Session 12: is an ExecuTorch int8 call slower right after an eager PyTorch call (the bench's round-robin order)?
One process, 2 threads each; per round: eager per-patch reference, et int8 (after eager), et int8 again (after et),
sleep 0.5 s, et int8 (after idle). Medians per position. python context_effect.py ROUNDS"""
import sys, time, statistics, os, json
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.reference import PerPatchDMPHN
from dmphn_core.imageio import read_image
from executorch.extension.pybindings import portable_lib as lib
torch.set_num_threads(2); lib._unsafe_reset_threadpool(2)
ck = load_checkpoint("/work/cache-bench-core/authors-1248.pt")
ref = PerPatchDMPHN(ck.config); ref.load_state_dict(ck.build_model().state_dict()); ref.eval()
et = lib._load_for_executorch("/work/cache-bench-core/artifacts/executorch_b1_352x640_cpu_int8.pte")
x = torch.from_numpy(np.ascontiguousarray(read_image("/work/cache-bench-core/frames-352x640/000001.png").transpose(2, 0, 1)[None]))
def t(f):
    s = time.perf_counter(); f(); return time.perf_counter() - s
with torch.inference_mode():
    ref(x); et.forward((x,))
    rows = {"ref": [], "et_after_ref": [], "et_after_et": [], "et_after_idle": []}
    l0 = os.getloadavg()
    for r in range(int(sys.argv[1])):
        rows["ref"].append(t(lambda: ref(x)))
        rows["et_after_ref"].append(t(lambda: et.forward((x,))))
        rows["et_after_et"].append(t(lambda: et.forward((x,))))
        time.sleep(0.5)
        rows["et_after_idle"].append(t(lambda: et.forward((x,))))
med = {k: round(1000 * statistics.median(v)) for k, v in rows.items()}
ratio = {k: round(statistics.median(a / b for a, b in zip(rows["ref"], v)), 2) for k, v in rows.items() if k != "ref"}
print("load", l0, os.getloadavg(), "median ms", med, "ref/et per round, median", ratio)
json.dump({"rows": rows, "median_ms": med, "ratio": ratio, "load": [l0, os.getloadavg()]}, open("/work/s12/context_effect.json", "w"), indent=1)

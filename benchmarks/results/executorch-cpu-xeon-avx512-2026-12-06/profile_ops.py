"""Per-operator time of an ExecuTorch program from its ETDump (XNNPACK reports each operator), summed by kind:
python profile_ops.py PROGRAM.pte H W (3 calls, p50 per operator). Output: profile_352x640_s11.log."""
import sys, torch, collections
from executorch.extension.pybindings import portable_lib as lib
lib._unsafe_reset_threadpool(2)
path = sys.argv[1]; H, W = int(sys.argv[2]), int(sys.argv[3])
m = lib._load_for_executorch(path, enable_etdump=True, debug_buffer_size=0)
x = torch.rand(1,3,H,W)
for _ in range(3): m.forward((x,))
m.write_etdump_result_to_file(path + ".etdp")
from executorch.devtools import Inspector
df = Inspector(etdump_path=path + ".etdp").to_dataframe()
df = df[df.event_block_name == "Execute"]
tot = collections.defaultdict(float); cnt = collections.Counter()
for name, p50 in zip(df.event_name, df["p50 (ms)"]):
    key = str(name).split(" #")[0]
    tot[key] += p50; cnt[key] += 1
s = sum(v for k, v in tot.items() if k not in ("Method::execute", "DELEGATE_CALL", "OPERATOR_CALL"))
for k, v in sorted(tot.items(), key=lambda kv: -kv[1])[:25]:
    print(f"{v:9.1f} ms {cnt[k]:4d}  {k}")
print("sum of ops", round(s, 1))

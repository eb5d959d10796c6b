"""Machine facts in every report: CPU model and the ISA features that decide reduced precision."""

from benchmarks.machine import ISA_FEATURES, cpu_features, machine_info
from benchmarks.report import machine_block

AMX_XEON = ("processor\t: 0\nflags\t\t: fpu fma avx2 avx512f avx512_vnni avx_vnni avx512_bf16 avx512_fp16 amx_bf16 "
            "amx_tile amx_int8 amx_fp16\n")
EPYC_AVX2 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2\n"


def test_features_are_read_from_the_flags_line():
    assert cpu_features(AMX_XEON) == {name: True for name in ISA_FEATURES}
    epyc = cpu_features(EPYC_AVX2)
    assert epyc["avx2"] and not any(epyc[name] for name in ISA_FEATURES if name != "avx2")
    assert cpu_features("") == {name: False for name in ISA_FEATURES}


def test_machine_info_and_header_name_the_features():
    info = machine_info("cpu")
    assert set(info["cpu_features"]) == set(ISA_FEATURES) and info["cpu"]
    header = machine_block({**info, "cpu_features": cpu_features(EPYC_AVX2)})
    assert "ISA: amx_bf16- amx_int8- amx_fp16- avx512_bf16- avx512_fp16- avx512_vnni- avx_vnni- avx512f- avx2+ fma-" in header

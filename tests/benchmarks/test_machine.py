"""Machine facts in every report: CPU model and the ISA features that decide reduced precision."""

from benchmarks.machine import ISA_FEATURES, command_line, cpu_features, machine_info
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


def test_command_line_names_the_program_and_quotes_arguments():
    assert command_line(["/venv/bin/dmphn-bench", "--runtime", "et", "--inputs", "my frames"]) == \
        "dmphn-bench --runtime et --inputs 'my frames'"


def test_command_line_under_python_c_keeps_the_code():
    # python -c "from cli.bench import bench_main; bench_main()" -c ckpt.pt: argv[0] is only "-c"
    orig = ["/venv/bin/python", "-c", "from cli.bench import bench_main; bench_main()", "-c", "ckpt.pt"]
    line = command_line(["-c", "-c", "ckpt.pt"], orig)
    assert line == "python -c 'from cli.bench import bench_main; bench_main()' -c ckpt.pt"

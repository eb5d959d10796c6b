"""Measured speed tables: keyed by weights, size, machine and toolkit; hashed and checked on read."""

import json

import pytest

from export.speed_table import TableKey, measured_speeds, record_bench_rows, record_speeds, table_path


def _key(**changes) -> TableKey:
    base = dict(weights="abc123", height=32, width=64, device="cpu", cpu="Test CPU", isa=("avx2",), threads=2)
    return TableKey(**{**base, **changes})


def test_recorded_speeds_read_back_and_merge(tmp_path):
    key = _key()
    record_speeds(key, tmp_path, [{"runtime": "ov", "precision": "int8", "p50_ms": 5.0},
                                  {"runtime": "ov", "precision": "fp32", "p50_ms": 9.0}])
    record_speeds(key, tmp_path, [{"runtime": "ov", "precision": "fp32", "p50_ms": 7.5}])  # measured again
    assert measured_speeds(key, tmp_path) == {("ov", "int8"): 5.0, ("ov", "fp32"): 7.5}
    json.loads(table_path(tmp_path, key).read_text(), parse_constant=pytest.fail)  # strict JSON


@pytest.mark.parametrize("change", [dict(threads=1), dict(isa=("avx2", "amx_int8")), dict(cpu="Other CPU"),
                                    dict(weights="def456"), dict(width=128), dict(toolkit="0.0.1"),
                                    dict(recipes="executorch2")])
def test_a_table_applies_only_to_its_own_key(tmp_path, change):
    record_speeds(_key(), tmp_path, [{"runtime": "ort", "precision": "fp32", "p50_ms": 3.0}])
    assert measured_speeds(_key(**change), tmp_path) == {}
    assert measured_speeds(_key(), tmp_path) == {("ort", "fp32"): 3.0}


def test_an_edited_table_is_ignored_with_a_line(tmp_path):
    key = _key()
    path = record_speeds(key, tmp_path, [{"runtime": "ort", "precision": "fp32", "p50_ms": 3.0}])
    path.write_text(path.read_text().replace("3.0", "0.5"))
    lines: list[str] = []
    assert measured_speeds(key, tmp_path, lines.append) == {}
    assert len(lines) == 1 and "corrupt" in lines[0]
    path.write_text("{not json")
    assert measured_speeds(key, tmp_path, lines.append) == {} and "unreadable" in lines[-1]


def test_a_moved_table_does_not_apply_to_another_key(tmp_path):
    source = record_speeds(_key(), tmp_path, [{"runtime": "ort", "precision": "fp32", "p50_ms": 3.0}])
    other = _key(threads=8)
    table_path(tmp_path, other).write_text(source.read_text())
    lines: list[str] = []
    assert measured_speeds(other, tmp_path, lines.append) == {} and "another machine" in lines[0]


@pytest.mark.parametrize("row", [{"runtime": "ort", "precision": "fp32", "p50_ms": float("nan")},
                                 {"runtime": "ort", "precision": "fp64", "p50_ms": 1.0},
                                 {"runtime": "ort", "precision": "fp32", "p50_ms": 0}])
def test_bad_rows_are_refused(tmp_path, row):
    with pytest.raises(ValueError):
        record_speeds(_key(), tmp_path, [row])
    assert not table_path(tmp_path, _key()).exists()


def test_bench_rows_are_recorded_per_size_ok_rows_only(tmp_path):
    def row(runtime, status="ok", height=32, p50=4.0):
        return {"runtime": runtime, "precision": "fp32", "device": "cpu", "batch": 1, "height": height, "width": 64,
                "status": status, "p50_ms": p50, "machine": {"date": "2026-12-06 05:00 UTC"}}

    rows = [row("ort"), row("ov", p50=2.0), row("trt", status="skipped"), row("ov", height=64, p50=8.0)]
    paths = record_bench_rows(rows, "abc123", tmp_path, threads=2)
    assert len(paths) == 2
    here = TableKey.here("abc123", 32, 64, "cpu", 2)
    assert measured_speeds(here, tmp_path) == {("ort", "fp32"): 4.0, ("ov", "fp32"): 2.0}
    assert measured_speeds(TableKey.here("abc123", 64, 64, "cpu", 2), tmp_path) == {("ov", "fp32"): 8.0}


def test_the_key_of_this_machine_carries_the_exporters_recipe_revisions():
    from export.exporter import exporters, recipe_revisions

    key = TableKey.here("abc123", 32, 64)
    assert key.recipes == recipe_revisions() and key.to_dict()["recipes"] == key.recipes
    raised = [f"{fmt}{exporter.recipe}" for fmt, exporter in sorted(exporters().items()) if exporter.recipe]
    assert key.recipes.split(",") == raised and raised  # the ExecuTorch int8 adds raised one already

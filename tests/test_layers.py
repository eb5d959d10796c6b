"""The package graph runs one way: dmphn_core <- runtimes <- export <- benchmarks <- cli.

Every import statement of every module is read from its syntax tree (including imports inside
functions and ``if TYPE_CHECKING:`` blocks), so a lazy import cannot hide an arrow that runs up.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("dmphn_core", "runtimes", "export", "benchmarks", "cli")
MAX_MODULE_LINES = 400


def modules() -> list[Path]:
    return sorted(path for layer in LAYERS for path in (ROOT / layer).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (relative imports stay in the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def upward_imports(path: Path, layer: str) -> list[str]:
    """The layers above ``layer`` that the code in ``path`` imports from."""
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    return sorted(imported_packages(path) & above)


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_module_imports_only_from_its_layer_and_below(path):
    layer = path.relative_to(ROOT).parts[0]
    assert upward_imports(path, layer) == [], f"{path.relative_to(ROOT)} imports from a layer above it"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_module_stays_readable(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by job"


def test_the_checker_sees_lazy_upward_imports(tmp_path):
    """Positive control: imports inside a function body, from layers above, are found."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from export.exporter import export_verified\n    import cli.common\n    from . import base\n")
    assert imported_packages(probe) == {"export", "cli"}
    assert upward_imports(probe, "runtimes") == ["cli", "export"]
    assert upward_imports(probe, "cli") == []

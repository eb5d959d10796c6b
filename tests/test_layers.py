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


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, known: set[str], root: Path = ROOT) -> set[str]:
    """The project modules ``path`` imports (absolute or relative, at top level or inside functions)."""
    name = module_name(path, root).split(".")
    package = name if path.name == "__init__.py" else name[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
            module = ".".join(part for part in (base, node.module or "") if part)
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(target for target in targets if target in known)
    return found


def import_cycles(paths: list[Path] | None = None, root: Path = ROOT) -> list[list[str]]:
    """Every cycle of project module imports (each reported once, from its smallest module name)."""
    named = {module_name(path, root): path for path in (modules() if paths is None else paths)}
    graph = {name: project_imports(path, set(named), root) - {name} for name, path in named.items()}
    cycles = []

    def walk(start: str, node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append([*trail, start])
            elif nxt > start and nxt not in trail:
                walk(start, nxt, [*trail, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def test_no_module_imports_itself_through_others():
    """Two modules that import each other (even lazily) are one module in two files: split out what they share."""
    assert import_cycles() == []


def test_the_cycle_finder_sees_a_lazy_loop(tmp_path):
    """Positive control: a relative import inside a function closes a loop with an absolute one."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.a import f\n")
    (tmp_path / "pkg" / "c.py").write_text("from . import a\n")
    assert import_cycles(sorted((tmp_path / "pkg").glob("*.py")), tmp_path) == [["pkg.a", "pkg.b", "pkg.a"]]

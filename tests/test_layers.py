"""The house in order: no import circle among attrdist's modules, and no module importing from a floor above it.

Floors, from the ground up (a module may import from its own floor and those below, at module level or inside a
function; imports under ``TYPE_CHECKING`` are annotations only and do not count):

0. foundations: ``registry``, ``options``, ``smoothing``, ``labels``, ``version``, ``_lazy``, ``_paths``, ``_memory``
1. inputs and measures: ``classes``, ``data``, ``models``, ``metrics``
2. ``methods``
3. ``var``, ``viz`` (a result draws itself in Jupyter: ``VARResult._repr_png_`` calls ``viz``, which needs only
   numpy and matplotlib)
4. one explanation: ``explanation``, ``explain``
5. ``bench``, ``integrations`` (Quantus and Captum: they may import ``var``, ``methods``, ``models``, ``metrics``,
   ``data``)
6. ``app``
7. ``cli``, ``__main__`` (and the package's lazy facade, ``attrdist/__init__.py``)
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attrdist"
FLOORS = {
    "registry": 0, "options": 0, "smoothing": 0, "labels": 0, "version": 0, "_lazy": 0, "_paths": 0, "_memory": 0,
    "classes": 1, "data": 1, "models": 1, "metrics": 1,
    "methods": 2, "var": 3, "viz": 3, "explanation": 4, "explain": 4,
    "bench": 5, "integrations": 5, "app": 6, "cli": 7, "__main__": 7, "": 7,
}


def _module(path, src=SRC):
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module):
    top = module.split(".")[1] if module.count(".") else ""
    return FLOORS[top]


def _imports(path, src=SRC):
    """``(imported module, at module level?)`` for every attrdist import outside ``if TYPE_CHECKING:``."""
    module, package = _module(path, src), path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if package else module.split(".")[:-1]
                    base = base[: len(base) - child.level + 1]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                for alias in child.names:
                    sub = f"{name}.{alias.name}"
                    where = src.parent / sub.replace(".", "/")
                    target = sub if where.with_suffix(".py").exists() or where.is_dir() else name
                    if target.split(".")[0] == "attrdist":
                        found.append((target, not nested))
            elif isinstance(child, ast.Import):
                found.extend((a.name, not nested) for a in child.names if a.name.split(".")[0] == "attrdist")
            visit(child, nested)

    visit(tree, False)
    return [(t, top) for t, top in found if t != module]


MODULES = {_module(p): p for p in sorted(SRC.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_floor_above(module):
    up = [t for t, _ in _imports(MODULES[module]) if _floor(t) > _floor(module)]
    assert not up, f"{module} (floor {_floor(module)}) imports from above: {up}"


def test_no_import_circle():
    graph = {m: {t for t, top in _imports(p) if top and t in MODULES} for m, p in MODULES.items()}
    done, path = set(), []

    def walk(m):
        if m in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(m):], m]))
        if m in done:
            return
        path.append(m)
        for t in sorted(graph[m]):
            walk(t)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        walk(m)


def test_the_check_sees_a_circle_and_an_upward_import(tmp_path):
    """The checks can fail: a made-up package whose data imports bench, which imports data back."""
    pkg = tmp_path / "attrdist"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from ..bench import x\n")
    (pkg / "bench.py").write_text("def f():\n    from .data import y\n")
    modules = {_module(p, pkg): p for p in sorted(pkg.rglob("*.py"))}
    assert _imports(modules["attrdist.data"], pkg) == [("attrdist.bench", True)]
    assert _floor("attrdist.bench") > _floor("attrdist.data")  # upward: refused
    assert _imports(modules["attrdist.bench"], pkg) == [("attrdist.data", False)]  # a lazy import is seen too

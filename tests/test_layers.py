"""The house in order: no import circle among attrdist's modules, and no module importing from a floor above it.

Every import that runs counts: at module level and inside functions (a lazy import closes a circle as surely
as an eager one, only later); imports under ``if TYPE_CHECKING:`` are annotations only and do not count.

Floors, from the ground up (a module may import from its own floor and those below):

0. foundations: ``registry``, ``options``, ``smoothing``, ``labels``, ``version``, ``_files``, ``_paths``, ``_memory``;
   the light configurations ``presets`` (VAR's parameters and presets) and ``explain_config``
1. inputs and measures: ``classes``, ``data``, ``models``, ``metrics``
2. ``methods``
3. ``var``, ``viz`` (a result draws itself in Jupyter: ``VARResult._repr_png_`` calls ``viz``, which needs only
   numpy and matplotlib)
4. one explanation: ``explanation``, ``explain``
5. ``bench``, ``integrations`` (Quantus and Captum: they may import ``var``, ``methods``, ``models``, ``metrics``,
   ``data``)
6. ``app``
7. ``cli``, ``__main__`` (and the package's lazy facade, ``attrdist/__init__.py``)

In every folder too: a package's face (its ``__init__.py``) sits above the modules it gathers, so no module
imports the face of a package it is part of (``bench/base.py`` never imports ``bench``), and the modules of one
folder import each other in one direction only (no circle). In ``models/``, from the ground up: ``efficientnet``,
``efficientnet_lrp``, ``hf`` (the ``transformers`` wrapper), ``vit``, ``architectures``, ``randomize``, ``types``
(``Preprocess``, ``LoadedModel``, ``ModelSource``, the loading errors), ``hf_source``, ``loading``, the face.
"""

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attrdist"
FLOORS = {
    "registry": 0, "options": 0, "smoothing": 0, "labels": 0, "version": 0, "_files": 0, "_paths": 0, "_memory": 0,
    "presets": 0, "explain_config": 0,
    "classes": 1, "data": 1, "models": 1, "metrics": 1,
    "methods": 2, "var": 3, "viz": 3, "explanation": 4, "explain": 4,
    "bench": 5, "integrations": 5, "app": 6, "cli": 7, "__main__": 7, "": 7,
}


class Import(NamedTuple):
    """One attrdist import of a module: what it imports, and whether at module level (else inside a function)."""

    target: str
    top: bool


def _module(path, src=SRC):
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(src=SRC):
    return {_module(p, src): p for p in sorted(src.rglob("*.py"))}


def _floor(module):
    top = module.split(".")[1] if module.count(".") else ""
    return FLOORS[top]


def _resolve(node, module, package, src):
    """The attrdist modules an ``import``/``from ... import`` statement names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "attrdist"]
    if node.level:
        base = module.split(".") if package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    found = []
    for alias in node.names:
        sub = f"{name}.{alias.name}"
        where = src.parent / sub.replace(".", "/")
        target = sub if where.with_suffix(".py").exists() or where.is_dir() else name
        if target.split(".")[0] == "attrdist":
            found.append(target)
    return found


def _children(package, src):
    """The modules and sub-packages directly inside ``package``."""
    folder = src.parent / package.replace(".", "/")
    found = [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.name != "__init__.py"]
    return found + [f"{package}.{d.name}" for d in sorted(folder.iterdir()) if (d / "__init__.py").is_file()]


def _dynamic(call, module, package, src):
    """The attrdist modules an ``importlib.import_module(...)`` call can import.

    A constant name is that module; a name computed at run time from the package's own name (``f"{__name__}.{x}"``,
    ``f".{x}"`` with ``package=__name__``: registration loops and lazy package faces) may be any module directly
    inside the package, so it counts as an import of each of them.
    """
    func = call.func
    if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) != "import_module" or not call.args:
        return []
    arg, here = call.args[0], module if package else module.rpartition(".")[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        name = here + arg.value if arg.value.startswith(".") else arg.value
        return [name] if name.split(".")[0] == "attrdist" else []
    head = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else None
    by_name = isinstance(head, ast.FormattedValue) and ast.unparse(head.value) == "__name__"
    relative = isinstance(head, ast.Constant) and str(head.value).startswith(".")
    return _children(module, src) if package and (by_name or relative) else []


def _imports(path, src=SRC):
    """Every attrdist import of a module outside ``if TYPE_CHECKING:`` (module level and in functions).

    ``import`` statements and ``importlib.import_module`` calls (see :func:`_dynamic`) both count.
    """
    module, package = _module(path, src), path.name == "__init__.py"
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]), in_function)  # the else branch runs
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend(Import(t, not nested) for t in _resolve(child, module, package, src))
            elif isinstance(child, ast.Call):
                found.extend(Import(t, not nested) for t in _dynamic(child, module, package, src))
            visit(child, nested)

    visit(ast.parse(path.read_text()), False)
    return [i for i in found if i.target != module]


def _graph(modules, src=SRC):
    """``module -> the modules it imports``, counting every import that runs (function-level included)."""
    return {m: {i.target for i in _imports(p, src) if i.target in modules} for m, p in modules.items()}


def _groups(graph):
    """The groups of modules that import each other (strongly connected components of two or more modules)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(m):  # Tarjan's algorithm
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for t in sorted(graph[m]):
            if t not in index:
                connect(t)
                low[m] = min(low[m], low[t])
            elif t in on_stack:
                low[m] = min(low[m], index[t])
        if low[m] == index[m]:
            group = {stack.pop()}
            while m not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                groups.append(group)

    for m in sorted(graph):
        if m not in index:
            connect(m)
    return groups


def _rings(graph):
    """The shortest circle (``[a, b, ..., a]``, from its first module by name) through each module in a circle."""
    rings = set()
    for group in _groups(graph):
        for m in group:
            ring = _shortest_circle(graph, group, m)[:-1]
            first = ring.index(min(ring))
            rings.add(tuple(ring[first:] + ring[:first + 1]))
    return sorted(list(r) for r in rings)


def _shortest_circle(graph, group, start):
    """The shortest circle through ``start`` inside a strongly connected group."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for m in frontier:
            for t in sorted(graph[m] & group):
                if t == start:
                    return [*paths[m], start]
                if t not in paths:
                    paths[t] = [*paths[m], t]
                    nxt.append(t)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # unreachable for a strongly connected group


def _check_no_circle(graph):
    rings = _rings(graph)
    assert not rings, "import circles (function-level imports included):\n" + "\n".join(
        " -> ".join(r) for r in rings)


def _faces(module):
    """The package faces (``__init__``) a module belongs to, its own package first (``attrdist`` excluded)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 1, -1)]


def _upward(module, path, src=SRC, modules=None):
    """What ``module`` imports from above it: a higher floor, or the face of a package it is part of."""
    modules = modules if modules is not None else MODULES
    faces = set(_faces(module))
    return sorted({i.target for i in _imports(path, src)
                   if _floor(i.target) > _floor(module) or (i.target in faces and i.target in modules)})


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_floor_above(module):
    up = _upward(module, MODULES[module])
    assert not up, f"{module} (floor {_floor(module)}) imports from above (a higher floor or its package face): {up}"


def test_no_import_circle():
    _check_no_circle(_graph(MODULES))


def test_the_check_sees_a_circle_and_an_upward_import(tmp_path):
    """The checks can fail: a made-up package with lazy circles, an upward import and a face imported from below."""
    pkg = tmp_path / "attrdist"
    (pkg / "data").mkdir(parents=True)
    (pkg / "models").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from ..bench import x\n")
    (pkg / "bench.py").write_text("def f():\n    from .data import y\n")  # a lazy circle: bench -> data -> bench
    (pkg / "models" / "__init__.py").write_text("from .loading import load\n")
    (pkg / "models" / "types.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .hf import HF\n"  # annotations only: no circle through hf
        "class T:\n    def load(self):\n        from .loading import load\n")  # a lazy circle inside models/
    (pkg / "models" / "loading.py").write_text("from .types import T\nfrom . import hf\n")
    (pkg / "models" / "hf.py").write_text("from .types import T\ndef g():\n    from . import load\n")  # the face
    modules = _modules(pkg)
    assert _imports(modules["attrdist.data"], pkg) == [Import("attrdist.bench", True)]
    assert _imports(modules["attrdist.bench"], pkg) == [Import("attrdist.data", False)]  # a lazy import is seen too
    assert _imports(modules["attrdist.models.types"], pkg) == [Import("attrdist.models.loading", False)]

    graph = _graph(modules, pkg)
    assert _rings(graph) == [["attrdist.bench", "attrdist.data", "attrdist.bench"],
                             ["attrdist.models", "attrdist.models.loading", "attrdist.models.hf", "attrdist.models"],
                             ["attrdist.models.loading", "attrdist.models.types", "attrdist.models.loading"]]
    with pytest.raises(AssertionError, match="attrdist.bench -> attrdist.data -> attrdist.bench"):
        _check_no_circle(graph)

    assert _upward("attrdist.data", modules["attrdist.data"], pkg, modules) == ["attrdist.bench"]  # floor 1 -> 5
    assert _upward("attrdist.models.hf", modules["attrdist.models.hf"], pkg, modules) == ["attrdist.models"]
    assert _upward("attrdist.models", modules["attrdist.models"], pkg, modules) == []  # a face imports below it

    graph["attrdist.models.types"] = set()  # without the lazy imports in types and hf: no circle in models/
    graph["attrdist.models.hf"] = {"attrdist.models.types"}
    assert _rings(graph) == [["attrdist.bench", "attrdist.data", "attrdist.bench"]]

"""wispy's layers import downward only, and no module takes another module's `_private` names.

A module may import from its own unit (the longest entry of LAYERS that prefixes its name) and
from units of lower layers; never from a higher layer nor from another unit of its own layer.
Imports inside functions count the same as those at the top of a module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "wispy"

# Lowest first. Read it as: everything on a line may import everything on the lines above.
LAYERS = [
    ("wispy.errors", "wispy._mlir", "wispy._files", "wispy._timing", "wispy.metrics"),
    ("wispy.runtime",),
    ("wispy.targets",),
    ("wispy.dialects",),
    ("wispy.ir",),
    ("wispy.kernels",),
    ("wispy.passes",),
    ("wispy.compiler",),
    ("wispy.data",),
    ("wispy.models",),
    ("wispy.training",),
    ("wispy.compress",),
    ("wispy.bench",),
    ("wispy.experiments",),
    ("wispy.api",),
    ("wispy.cli",),
    ("wispy.__main__",),
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str):
    """The LAYERS entry `module` belongs to (None: outside wispy, or the package root)."""
    best = None
    for unit in RANK:
        if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
            best = unit
    return best


def _module_name(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _absolute(node: ast.ImportFrom, module: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private_module(target: str, importer: str):
    """The first `_private` part of `target` that `importer` is not inside of (None if none).
    wispy's top-level `_x` modules (one import point for the MLIR bindings, files, timing)
    are shared by design."""
    parts = target.split(".")
    for i, part in enumerate(parts[2:], start=2):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if not (importer == owner or importer.startswith(owner + ".")):
                return ".".join(parts[:i + 1])
    return None


def check_source(module: str, source: str, is_pkg: bool = False) -> list[str]:
    """Every layering violation in `source`, the text of wispy module `module`."""
    problems = []
    mine = unit_of(module)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imports = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_pkg)
            imports = [(base, a.name) for a in node.names]
        else:
            continue
        for target, name in imports:
            if target != "wispy" and not target.startswith("wispy."):
                continue
            full = f"{target}.{name}" if name and unit_of(f"{target}.{name}") else target
            theirs = unit_of(full)
            where = f"{module}:{node.lineno}"
            if mine and theirs and theirs != mine and RANK[theirs] >= RANK[mine]:
                problems.append(f"{where} imports {full} (layer {RANK[theirs]}, {theirs}) "
                                f"from layer {RANK[mine]} ({mine}): layers import downward only")
            private = _private_module(target, module)
            if private:
                problems.append(f"{where} imports the private module {private}")
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                problems.append(f"{where} imports the private name {name} from {target}")
    return problems


def check_tree(root: Path = ROOT) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        module, is_pkg = _module_name(path, root)
        if unit_of(module) is None and module != "wispy":
            problems.append(f"{module} is in no layer: add its package to LAYERS in {Path(__file__).name}")
        problems += check_source(module, path.read_text(), is_pkg)
    return problems


def test_wispy_imports_downward_only():
    problems = check_tree()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module,source", [
    ("wispy.passes.foo", "from wispy.compiler.api import compile_model"),              # upward
    ("wispy.passes.foo", "def f():\n    from wispy.compiler import pipeline\n"),       # upward, in a function
    ("wispy.runtime.host", "import wispy.targets"),                                     # upward, plain import
    ("wispy.compiler.api", "from wispy.bench.harness import run_benchmark"),           # upward
    ("wispy.experiments.x", "from wispy.api import compile_model"),                    # upward, top layer
    ("wispy.bench.harness", "from wispy.bench import harness\nfrom wispy.experiments import sweep"),
    ("wispy.compiler.api", "from wispy.compiler.importer import _helper"),             # private name
    ("wispy.compiler.api", "from wispy.runtime._io import to_numpy"),                  # private module
    ("wispy.compiler.api", "from wispy.runtime import _io"),                           # private module
    ("wispy.compiler.api", "from ..bench.harness import run_benchmark"),               # relative, upward
])
def test_checker_catches(module, source):
    assert check_source(module, source), f"{module}: {source!r} was let through"


@pytest.mark.parametrize("module,source", [
    ("wispy.compiler.api", "from wispy.passes.pipeline import PassPipeline"),         # downward
    ("wispy.compiler.api", "from wispy.compiler.importer import import_model"),       # own unit
    ("wispy.runtime.host", "from wispy.runtime._io import function_cconv"),           # own private module
    ("wispy.passes.x", "from wispy._mlir import ir\nimport numpy as np"),              # shared base, outside
    ("wispy.cli.main", "def f():\n    from wispy.experiments.sweep import run_sweep\n"),
    ("wispy.compiler.api", "from __future__ import annotations"),
])
def test_checker_allows(module, source):
    assert check_source(module, source) == []


def test_checker_sees_a_module_outside_the_layers(tmp_path):
    pkg = tmp_path / "wispy"
    (pkg / "newpkg").mkdir(parents=True)
    (pkg / "newpkg" / "__init__.py").write_text("")
    (pkg / "targets.py").write_text("from wispy.compiler import api\n")
    problems = check_tree(pkg)
    assert any("newpkg is in no layer" in p for p in problems)
    assert any("wispy.targets:1 imports wispy.compiler" in p for p in problems)

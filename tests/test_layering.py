"""The package's dependency direction: data -> models -> calibration/evaluation -> runs -> stages -> entry
points, with no import loop. Every import counts, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from toxmod.paths import PACKAGE_DIR

pytestmark = pytest.mark.data_free

# Lowest first; a module may import its own layer and the layers below, never above.
LAYERS = [
    (
        "toxmod.errors",
        "toxmod.display",
        "toxmod.limits",
        "toxmod.redact",
        "toxmod.environment",
        "toxmod.paths",
        "toxmod.files",
        "toxmod.spec",
        "toxmod.hardware",
        "toxmod.progress",
        "toxmod.trusted",
        "toxmod.config",
        "toxmod.conf",
    ),
    ("toxmod.data",),
    ("toxmod.splits",),
    ("toxmod.models",),
    ("toxmod.thresholds",),
    ("toxmod.evaluation",),
    ("toxmod.runs",),
    ("toxmod.distillation",),
    ("toxmod.tables",),
    ("toxmod.stages",),
    (
        "toxmod.train",
        "toxmod.evaluate",
        "toxmod.split",
        "toxmod.compare",
        "toxmod.pretrain",
        "toxmod.predict",
        "toxmod.export",
        "toxmod.report",
        "toxmod.select",
        "toxmod.runs.__main__",
    ),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}


def imports_of(path: Path, known: set[str], module: str | None = None) -> set[str]:
    """The toxmod modules ``path`` imports (``from toxmod.x import y`` counts ``toxmod.x.y`` if a module;
    ``from toxmod import x`` counts ``toxmod.x``; relative imports are resolved against ``path``)."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..runs import record
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def layer_of(module: str) -> int:
    for rank, prefixes in reversed(list(enumerate(LAYERS))):  # the most specific: runs.__main__ before runs
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items() if name != "toxmod"}


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if target != "toxmod" and layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_there_is_no_import_loop() -> None:
    edges = graph()
    loops, state = [], dict.fromkeys(edges, 0)  # 0 new, 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                loops.append(" -> ".join([*path[path.index(target) :], target]))
            elif state.get(target) == 0:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if state[module] == 0:
            visit(module, [module])
    assert loops == []


def test_the_checker_sees_function_level_relative_and_package_imports(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"  # read as toxmod/models/sample.py
    source.write_text(
        "def f():\n    from toxmod.runs import record\n    import toxmod.stages.train\n"
        "from ..stages import predict\nfrom . import base\nfrom .llm import scorer\n"
        "from toxmod import split\n"
    )
    known = {"toxmod.runs", "toxmod.runs.record", "toxmod.stages.train", "toxmod.stages.predict"}
    known |= {"toxmod.models.base", "toxmod.models.llm.scorer", "toxmod.split", "toxmod.stages"}
    known |= {"toxmod.models", "toxmod.models.llm"}
    assert imports_of(source, known, "toxmod.models.sample") == known
    assert layer_of("toxmod.models.transformer.training") < layer_of("toxmod.runs.record")

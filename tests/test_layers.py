"""The import rule of the code base, checked on the source (every import, including the
ones inside functions):

    fractal.cli (the `fractal` command, `fractal up`) -- assembles everything
    api                                                -- the HTTP service
    activities | workflows                             -- the Temporal worker's two halves
    fractal.engine | fractal.<infrastructure>          -- rendering | settings, db, storage, ...
    fractal.spec, fractal.chunks, fractal.states, fractal.locations -- light base

A module may import its own package and the layers below it, never those above; the
engine and the workflows stay free of infrastructure; benchmarks never import tests.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fractal", "activities", "workflows", "api", "bench", "tests")

BASE = {
    "fractal.spec",
    "fractal.chunks",
    "fractal.states",
    "fractal.admission",
    "fractal.locations",
}
INFRASTRUCTURE = {
    "fractal.settings",
    "fractal.db",
    "fractal.storage",
    "fractal.temporal",
    "fractal.embedded",
    "fractal.migrate",
    "fractal.migrations",
    "fractal.observability",
    "fractal.credentials",
    "fractal.usage",
}
# Which layers each layer may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "infrastructure": {"base"},
    "engine": {"base"},
    "workflows": {"base"},
    "activities": {"base", "infrastructure", "engine", "workflows"},
    "api": {"base", "infrastructure", "engine", "workflows"},
    "cli": {"base", "infrastructure", "engine", "workflows", "activities", "api"},
    "bench": {"base", "infrastructure", "engine", "workflows", "activities", "api", "cli"},
    "tests": {"base", "infrastructure", "engine", "workflows", "activities", "api", "cli"},
}


def layer_of(module: str) -> str | None:
    """The layer of a project module; None for third-party and standard modules."""
    top = module.split(".")[0]
    if top in ("activities", "workflows", "api", "bench", "tests"):
        return top
    if top != "fractal":
        return None
    for prefix, layer in (("fractal.engine", "engine"), ("fractal.cli", "cli")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    if any(module == name or module.startswith(name + ".") for name in BASE):
        return "base"
    if any(module == name or module.startswith(name + ".") for name in INFRASTRUCTURE):
        return "infrastructure"
    if module == "fractal":
        return "base"
    raise AssertionError(f"{module}: a fractal module that belongs to no layer; add it here")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module the source imports, with its line, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                target = ".".join([*parts, node.module] if node.module else parts)
            found.append((node.lineno, target))
    return found


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """The imports of ``module`` that point up the layers."""
    source_layer = layer_of(module)
    assert source_layer is not None
    found = []
    for line, target in imports_of(module, source, is_package):
        target_layer = layer_of(target)
        if target_layer not in (None, source_layer) and target_layer not in ALLOWED[source_layer]:
            found.append(f"{module}:{line} ({source_layer}) imports {target} ({target_layer})")
    return found


def project_sources() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations/versions" not in path.as_posix()
    )


def test_every_import_points_down_the_layers() -> None:
    found = []
    for path in project_sources():
        found += violations(module_name(path), path.read_text(), path.name == "__init__.py")
    assert found == []


def test_the_checker_catches_upward_imports_even_inside_functions() -> None:
    source = "from fractal.engine import render_animation\ndef f():\n    import api.main\n"
    assert len(violations("fractal.spec", source)) == 2
    assert violations("fractal.engine.frames", "from ..settings import Settings\n") == [
        "fractal.engine.frames:1 (engine) imports fractal.settings (infrastructure)"
    ]
    assert violations("bench.engine", "from tests.videos import top_level_boxes\n") != []
    assert violations("api.main", "import activities.render\n") != []
    assert violations("fractal.cli.up", "import activities.worker\n") == []
    with pytest.raises(AssertionError):
        layer_of("fractal.unknown_module")


@pytest.mark.parametrize(
    "module",
    [
        "workflows.render",
        "workflows.contracts",
        "fractal.spec",
        "fractal.chunks",
        "fractal.admission",
    ],
)
def test_what_the_workflow_sandbox_loads_stays_light(module: str) -> None:
    """The workflow module the worker registers (and what it imports) pulls in nothing
    heavy, so Temporal's sandbox re-imports it cheaply and deterministically."""
    heavy = [
        "numba",
        "av",
        "numpy",
        "sqlalchemy",
        "psycopg",
        "redis",
        "fastapi",
        "fractal.settings",
        "fractal.db",
        "fractal.engine",
        "activities",
    ]
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"

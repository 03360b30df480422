"""The package's layers: lower floors never import upper ones.

The ground floor (``sessionlens/``: conventions, storage URLs, durations) serves everyone;
``instrumentation`` is the application side and needs none of the collector's or schema's
code; ``schema`` owns the SQL and the collector builds on it, never the other way round
(a ``schema`` that imported ``collector`` made the two import each other).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder of the checkout -> the package it installs as (pyproject's [tool.setuptools] package-dir)
PACKAGES = {
    "sessionlens": "sessionlens",
    "instrumentation": "sessionlens.instrumentation",
    "collector": "sessionlens.collector",
    "processors": "sessionlens.processors",
    "schema": "sessionlens.schema",
}
UPPER = ("sessionlens.collector", "sessionlens.processors", "sessionlens.cli")
RULES = {
    # which modules, and what they must not import
    "schema": ("schema", UPPER),
    "instrumentation": ("instrumentation", UPPER + ("sessionlens.schema", "sessionlens.storage")),
    "ground floor": ("sessionlens", UPPER + ("sessionlens.schema", "sessionlens.instrumentation")),
}
# sessionlens/__init__.py re-exports the application API (run, session); __main__ and cli/
# are the commands, the top floor.
GROUND_FLOOR_EXEMPT = {"__init__.py", "__main__.py"}


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module the file at ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    return _imports(path.read_text(), package)


def _imports(source: str, package: str) -> set[str]:
    """Every module ``source`` imports, at any depth (function bodies, TYPE_CHECKING blocks)."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # ``from sessionlens import storage`` imports the submodule sessionlens.storage
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _files(folder: str) -> list[Path]:
    if folder == "sessionlens":  # the ground floor: the package's own top-level modules
        return [p for p in sorted((ROOT / folder).glob("*.py")) if p.name not in GROUND_FLOOR_EXEMPT]
    return sorted((ROOT / folder).rglob("*.py"))


def _breaks(imported: str, forbidden: tuple[str, ...]) -> bool:
    return any(imported == f or imported.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("layer", sorted(RULES))
def test_no_module_imports_an_upper_floor(layer):
    folder, forbidden = RULES[layer]
    files = _files(folder)
    assert files, f"no modules found for {layer}"
    wrong = {
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in files
        for imported in imports_of(path)
        if _breaks(imported, forbidden)
    }
    assert not wrong, sorted(wrong)


def test_the_import_walk_sees_lazy_relative_and_from_imports():
    # The check above is only as good as this walk: it must see a function-level import,
    # a TYPE_CHECKING one, ``from pkg import module`` and a relative import.
    found = _imports(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sessionlens.processors.cost import CostProcessor\n"
        "def f():\n    from sessionlens import collector\n    from ..collector import storage\n",
        "sessionlens.schema",
    )
    assert {"sessionlens.processors.cost", "sessionlens.collector", "sessionlens.collector.storage"} <= found
    assert _breaks("sessionlens.collector.storage", UPPER) and not _breaks("sessionlens.collectors", UPPER)


def test_importing_every_schema_module_loads_no_collector_code(tmp_path):
    modules = [_module_name(p) for p in _files("schema")] + [
        _module_name(p) for p in _files("instrumentation")
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith(('sessionlens.collector', 'sessionlens.processors'))))\n"
    )
    # From an empty folder, so the installed package is what gets imported.
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""

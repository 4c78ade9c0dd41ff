"""The package stays readable: small parts, and every module on the module map.

Limits (issue: maintainability): no function over 60 lines, no class over 150 lines, no module
over 500 lines in ``pmlv_utils``; every module named in the module map of the package docstring.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pmlv_utils
from notebook_tools import REPO

PACKAGE = REPO / "pmlv_utils"
MAX_FUNCTION, MAX_CLASS, MAX_MODULE = 60, 150, 500


def _modules() -> list[tuple[str, Path]]:
    """(dotted name relative to pmlv_utils, path) of every module, packages included."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__main__" or parts == ("__init__",):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def _too_long(path: Path) -> list[str]:
    text = path.read_text()
    problems = []
    if len(text.splitlines()) > MAX_MODULE:
        problems.append(f"module {len(text.splitlines())} lines")
    for node in ast.walk(ast.parse(text)):
        limit = {
            ast.FunctionDef: MAX_FUNCTION,
            ast.AsyncFunctionDef: MAX_FUNCTION,
            ast.ClassDef: MAX_CLASS,
        }.get(type(node))
        if limit and node.end_lineno - node.lineno + 1 > limit:
            problems.append(
                f"{node.name} ({node.end_lineno - node.lineno + 1} lines, limit {limit})"
            )
    return problems


def test_no_long_functions_classes_or_modules():
    problems = {str(p.relative_to(REPO)): bad for _, p in _modules() if (bad := _too_long(p))}
    assert not problems, problems


def test_every_module_is_on_the_module_map():
    doc = pmlv_utils.__doc__ or ""
    mapped = set(re.findall(r"^\s+([a-z_][a-z_0-9.]*)\s+(?:->|—|-)\s", doc, re.M))
    missing = [name for name, _ in _modules() if name not in mapped]
    assert not missing, f"modules missing from the map in pmlv_utils/__init__.py: {missing}"
    stale = sorted(mapped - {name for name, _ in _modules()})
    assert not stale, f"the module map names modules that do not exist: {stale}"

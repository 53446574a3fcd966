"""The layers of docs/architecture.md hold: the edges (API routes, CLI commands, console pages) reach the
database only through services; no edge imports a repository (issue 23)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "atlas_compliance"


def test_no_edge_imports_a_repository():
    found = []
    for edge in ("api", "cli", "console"):
        for path in sorted((SRC / edge).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                    if any(n.split(".")[-1] == "repository" for n in names):
                        found.append(f"{edge}/{path.name}:{node.lineno}")
    assert not found, f"edges importing a repository (go through the domain's service): {found}"


def test_the_console_and_the_api_depend_downward_on_auth_for_csrf():
    deps = (SRC / "api" / "deps.py").read_text()
    assert "from ..console" not in deps

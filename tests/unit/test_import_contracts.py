"""The layering k8n rests on, read from the source's imports (DESIGN.md, "Layout" and "Controller habits").

Every ``import`` and ``from … import`` in ``bus/``, ``master/`` and ``node/`` counts: also those inside functions
and under ``if TYPE_CHECKING:`` (a type-only import is still a dependency — a module that needs another's types
to be read gets a narrow Protocol instead). A broken contract fails with the file, the line and the import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bus", "master", "node")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    path: str  # its file, relative to the repository
    line: int
    target: str  # the imported module, dotted


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, path: str, is_package: bool, known: set[str]) -> list[Import]:
    """The modules ``source`` imports. ``from pkg import name`` names the submodule ``pkg.name`` when there is
    one (``known`` lists the modules that exist), else ``pkg`` itself."""
    tree = ast.parse(source, filename=path)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    for child in ast.walk(tree):
        if isinstance(child, ast.Import):
            for alias in child.names:
                found.append(Import(module, path, child.lineno, alias.name))
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")
                if child.level > 1:
                    base = base[: len(base) - (child.level - 1)]
                origin = ".".join(base + ([child.module] if child.module else []))
            else:
                origin = child.module or ""
            for alias in child.names:
                sub = f"{origin}.{alias.name}"
                found.append(Import(module, path, child.lineno, sub if sub in known else origin))
    return sorted(set(found), key=lambda i: (i.line, i.target))


def all_imports(root: Path = ROOT) -> list[Import]:
    files = [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]
    known = {module_name(p, root) for p in files}
    out: list[Import] = []
    for p in files:
        out.extend(imports_of(p.read_text(), module_name(p, root), str(p.relative_to(root)),
                              p.name == "__init__.py", known))
    return out


# (who, what they must not import, why) — "who" and "what" are dotted prefixes
FORBIDDEN: list[tuple[str, str, str]] = [
    ("bus", "master", "bus is the shared contract: it imports neither master nor node"),
    ("bus", "node", "bus is the shared contract: it imports neither master nor node"),
    ("master", "node", "master and node never import each other (they meet on the bus)"),
    ("node", "master", "master and node never import each other (they meet on the bus)"),
    ("master.controllers", "master.apiserver",
     "controllers talk to the API server only over the bus; shared code belongs in bus/"),
    ("master.scheduler", "master.apiserver",
     "the scheduler talks to the API server only over the bus; shared code belongs in bus/"),
    ("master.gateway", "master.apiserver",
     "the gateway talks to the API server only over the bus; shared code belongs in bus/"),
    ("master.controllers", "master.scheduler",
     "controllers never import the scheduler: shared predicates live in bus/scheduling.py"),
    ("master.gateway", "master.controllers",
     "the gateway never imports controllers: what they share lives in bus/"),
    ("master", "bus.cli", "the CLI is a client of the system, not a library for it: shared code lives in bus/"),
    ("node", "bus.cli", "the CLI is a client of the system, not a library for it: shared code lives in bus/"),
    ("node.runtime", "node.network", "node.runtime and node.network never import each other"),
    ("node.network", "node.runtime", "node.runtime and node.network never import each other"),
]

ACYCLIC = ("node", "master.apiserver")


def violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        for who, what, why in FORBIDDEN:
            if _under(imp.module, who) and _under(imp.target, what):
                out.append(f"{imp.path}:{imp.line} imports {imp.target} — {why}")
    return out


def cycles(imports: list[Import], scope: str) -> list[list[str]]:
    """The import cycles among modules under ``scope`` (strongly connected components, Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if _under(imp.module, scope) and _under(imp.target, scope) and imp.target != imp.module:
            graph.setdefault(imp.module, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def _describe_cycle(comp: list[str], imports: list[Import]) -> str:
    members = set(comp)
    edges = sorted({f"{i.path}:{i.line} imports {i.target}" for i in imports
                    if i.module in members and i.target in members and i.target != i.module})
    return f"import cycle among {', '.join(comp)}:\n    " + "\n    ".join(edges)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports()


def test_layering_contracts(imports):
    broken = violations(imports)
    assert not broken, "forbidden imports:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("scope", ACYCLIC)
def test_no_import_cycles(imports, scope):
    found = cycles(imports, scope)
    assert not found, "\n".join(_describe_cycle(c, imports) for c in found)


# ---- the checker itself --------------------------------------------------------------------------------------------

def _imports_from(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
    return all_imports(tmp_path)


def test_checker_names_a_forbidden_import(tmp_path):
    imps = _imports_from(tmp_path, {
        "master/__init__.py": "",
        "master/apiserver/__init__.py": "",
        "master/apiserver/strategy.py": "X = 1\n",
        "master/controllers/__init__.py": "",
        "master/controllers/job.py": "import os\n\ndef f():\n    from master.apiserver.strategy import X\n",
        "master/controllers/ok.py": "from master.controllers import job\n",
        "node/__init__.py": "", "bus/__init__.py": "",
    })
    broken = violations(imps)
    assert broken == ["master/controllers/job.py:4 imports master.apiserver.strategy — controllers talk to the "
                      "API server only over the bus; shared code belongs in bus/"]


def test_checker_finds_a_cycle_through_relative_and_from_imports(tmp_path):
    imps = _imports_from(tmp_path, {
        "node/__init__.py": "",
        "node/agent.py": "from node import podworker\n",
        "node/podworker.py": "from .services import serve\n",
        "node/services.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from node.agent import Agent\n",
        "node/status.py": "from node import podworker\n",
        "bus/__init__.py": "", "master/__init__.py": "",
    })
    assert cycles(imps, "node") == [["node.agent", "node.podworker", "node.services"]]

"""The package's import structure: no import circles, no private names borrowed across modules.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import
only hides a circle until someone moves it. The graph has one node per module (a package is its
``__init__``). ``from pkg import name`` is an edge to ``pkg.name`` when that is a submodule, else
to ``pkg``. Loading ``pkg.sub`` needs ``pkg/__init__`` started, but that implicit child-to-parent
step is not an edge: the parent is always started before any child runs, so the child never starts
it, and ``from .base import X`` in a sibling goes straight to ``base``. So a package whose
``__init__`` re-exports its submodules is no circle; a submodule that takes names from its own
package's ``__init__`` is one when that ``__init__`` imports it back (it then sees a half-run
``__init__``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "assurance"


@dataclass
class ImportGraph:
    """Module -> the package modules it imports, each with where (``path:line``) it does so."""

    edges: dict[str, dict[str, str]] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)
    """One line per ``from x import _name`` (or ``module._name``) that reaches into another module."""


def _module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Resolve ``from <level dots><target> import ...`` written in ``module``."""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def import_graph(root: Path) -> ImportGraph:
    """Walk every import of the package at ``root`` (a folder with ``__init__.py``)."""
    modules = _module_names(root)
    top = root.name
    graph = ImportGraph(edges={m: {} for m in modules})

    def owner(dotted: str) -> str | None:
        """The package module a dotted name lives in (``a.b.c`` -> ``a.b`` when c is an attribute)."""
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        where = path.relative_to(root.parent).as_posix()
        aliases: dict[str, str] = {}  # local name bound to a package module -> that module
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            found: list[tuple[str, str | None]] = []  # (imported module, name taken from it or None)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append((alias.name, None))
                    if alias.asname and alias.name in modules:
                        aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, is_package, node.level, node.module) if node.level else node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        found.append((submodule, None))
                        aliases[alias.asname or alias.name] = submodule
                    else:
                        found.append((source, alias.name))
            for target, name in found:
                if target != top and not target.startswith(top + "."):
                    continue
                imported = owner(target)
                if imported is None or imported == module:
                    continue
                graph.edges[module].setdefault(imported, f"{where}:{node.lineno}")
                if name and _is_private(name):
                    graph.private.append(f"{where}:{node.lineno}: {module} imports {name} from {imported}")
        # `stages._finetune(...)` after `from . import stages` borrows a private name just the same.
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _is_private(node.attr)
                and aliases[node.value.id] != module
            ):
                graph.private.append(f"{where}:{node.lineno}: {module} uses {node.attr} of {aliases[node.value.id]}")
    return graph


def circles(graph: ImportGraph) -> list[list[str]]:
    """Groups of modules that each reach all the others through imports (sorted, largest first)."""
    reach: dict[str, set[str]] = {}
    for start in graph.edges:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    groups = {frozenset(m for m in reach[a] if a in reach[m]) for a in graph.edges if a in reach[a]}
    return sorted((sorted(g) for g in groups), key=lambda g: (-len(g), g))


def findings(graph: ImportGraph) -> list[str]:
    """Every circle (with the imports that close it) and every borrowed private name."""
    lines = []
    for group in circles(graph):
        lines.append("circle: " + " <-> ".join(group))
        members = set(group)
        for a in group:
            for b, at in sorted(graph.edges[a].items()):
                if b in members:
                    lines.append(f"    {a} -> {b}  ({at})")
    lines.extend(f"private name: {p}" for p in graph.private)
    return lines


def test_package_has_no_import_circles_and_no_private_names_across_modules():
    graph = import_graph(PACKAGE)
    problems = findings(graph)
    if problems:
        pytest.fail(
            f"{len(circles(graph))} import circle(s) and {len(graph.private)} private name(s) across modules "
            "(move shared types down to a module both sides already import; give names that other "
            "modules use a public name):\n" + "\n".join(problems),
            pytrace=False,
        )


# ---- the checker itself, on small packages written for the purpose


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_lazy_and_type_checking_circles_and_private_names(tmp_path):
    root = _package(
        tmp_path,
        {
            "a.py": "def f():\n    from .b import g\n    return g()\n",
            "b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\nfrom .c import _hidden\n"
            ),
            "c.py": "_hidden = 1\n",
            "d.py": "from . import c\nx = c._hidden\n",
        },
    )
    graph = import_graph(root)
    assert circles(graph) == [["pkg.a", "pkg.b"]]
    assert graph.private == [
        "pkg/b.py:4: pkg.b imports _hidden from pkg.c",
        "pkg/d.py:2: pkg.d uses _hidden of pkg.c",
    ]
    report = findings(graph)
    assert "    pkg.a -> pkg.b  (pkg/a.py:2)" in report and "    pkg.b -> pkg.a  (pkg/b.py:3)" in report


def test_checker_treats_a_reexporting_init_as_no_circle(tmp_path):
    # judges/__init__ re-exports .base and .impl; .impl builds on .base: a tree, not a circle.
    root = _package(
        tmp_path,
        {
            "judges/__init__.py": "from .base import Base\nfrom .impl import Impl\n__all__ = ['Base', 'Impl']\n",
            "judges/base.py": "class Base: ...\n",
            "judges/impl.py": "from .base import Base\nclass Impl(Base): ...\n",
            "user.py": "from pkg.judges import Impl\nfrom .judges import base\nimport pkg.judges.impl as impl\n",
            "deep/x/y.py": "from ...judges import base\n",
        },
    )
    graph = import_graph(root)
    assert circles(graph) == [] and graph.private == []
    assert graph.edges["pkg.user"] == {
        "pkg.judges": "pkg/user.py:1",
        "pkg.judges.base": "pkg/user.py:2",
        "pkg.judges.impl": "pkg/user.py:3",
    }
    assert graph.edges["pkg.deep.x.y"] == {"pkg.judges.base": "pkg/deep/x/y.py:1"}


@pytest.mark.parametrize(
    "impl",
    [
        "from . import Base\nclass Impl(Base): ...\n",  # reads the name from the package's __init__
        "import pkg.judges\nclass Impl(pkg.judges.Base): ...\n",
    ],
)
def test_checker_finds_a_submodule_importing_its_own_package_back(tmp_path, impl):
    root = _package(
        tmp_path,
        {
            "judges/__init__.py": "from .base import Base\nfrom .impl import Impl\n",
            "judges/base.py": "class Base: ...\n",
            "judges/impl.py": impl,
        },
    )
    assert circles(import_graph(root)) == [["pkg.judges", "pkg.judges.impl"]]

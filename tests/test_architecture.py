"""The package layering the README's "Architecture" section draws, checked on every import statement.

Imports inside functions count too, so a lazy import cannot hide an edge or a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "imagedata", "modeling", "members", "predict", "ensemble", "audit", "report", "launch", "jobs", "scripts"]

# Which project packages each package may import (itself always allowed).
ALLOWED = {
    "core": set(),
    "imagedata": {"core"},
    "modeling": {"core", "imagedata"},
    "members": {"core", "imagedata", "modeling"},
    "predict": {"core", "imagedata", "modeling"},
    "ensemble": {"core"},
    "audit": {"core", "ensemble"},   # label audits: numpy/pandas/cleanlab, no deep-learning stack
    "report": {"core", "ensemble"},
    "launch": {"core"},  # the plan launcher: runs members as processes (scripts.train), never imports them
    "jobs": {"core", "imagedata", "modeling", "members", "predict", "ensemble", "audit", "report", "launch"},
    "scripts": {"core", "jobs"},
}
# The voting science stays importable without the deep-learning and plotting stack.
ENSEMBLE_FORBIDDEN = {"torch", "torchvision", "timm", "matplotlib", "wandb", "PIL", "safetensors", "cleanlab"}
# The label audit's science (cleanlab on probabilities) likewise runs without the deep-learning stack.
AUDIT_FORBIDDEN = ENSEMBLE_FORBIDDEN - {"cleanlab"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module named by an import statement anywhere in the file (absolute names, with line numbers)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append((base, node.lineno))
            # `from pkg import mod` names the submodule pkg.mod when one exists
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return names


def project_edges() -> list[tuple[str, str, Path, int]]:
    known = modules()
    edges = []
    for module, path in known.items():
        for name, line in imports_of(path, module):
            if name in known and name != module:
                edges.append((module, name, path, line))
    return edges


def layer_violations(edges) -> list[str]:
    bad = []
    for source, target, path, line in edges:
        src, dst = source.split(".")[0], target.split(".")[0]
        if src != dst and dst not in ALLOWED[src]:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {source} imports {target} ({src} may not use {dst})")
    return bad


def find_cycle(edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in edges:
        graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_package_imports_only_the_layers_below_it():
    assert layer_violations(project_edges()) == []


def test_the_module_graph_has_no_cycle():
    assert find_cycle(project_edges()) is None


def test_ensemble_needs_no_deep_learning_or_plotting_stack():
    bad = [f"{path.relative_to(ROOT)}:{line}: {name}" for module, path in modules().items()
           if module.split(".")[0] == "ensemble"
           for name, line in imports_of(path, module) if name.split(".")[0] in ENSEMBLE_FORBIDDEN]
    assert bad == []


def test_audit_needs_no_deep_learning_stack_and_only_it_imports_cleanlab():
    found = {module: [name for name, _ in imports_of(path, module)] for module, path in modules().items()}
    assert [m for m, names in found.items() if m.split(".")[0] == "audit"
            and any(n.split(".")[0] in AUDIT_FORBIDDEN for n in names)] == []
    assert sorted({m.split(".")[0] for m, names in found.items() if any(n.startswith("cleanlab") for n in names)}) \
        == ["audit"]


def test_only_modeling_timm_lib_imports_timm():
    """timm's first import in a process must be the one that keeps wandb out (modeling/timm_lib.py's docstring)."""
    found = [f"{path.relative_to(ROOT)}:{line}: {name}" for module, path in modules().items()
             if module != "modeling.timm_lib"
             for name, line in imports_of(path, module) if name.split(".")[0] == "timm"]
    assert found == []


@pytest.mark.parametrize("source, target, expected", [
    ("predict.run", "members.trainer", "predict may not use members"),
    ("ensemble.voting", "predict.cache", "ensemble may not use predict"),
    ("scripts.vote", "ensemble.recipe", "scripts may not use ensemble"),
    ("imagedata.sources", "modeling.models", "imagedata may not use modeling"),
])
def test_the_rule_check_catches_a_bad_edge(source, target, expected):
    found = layer_violations([(source, target, ROOT / "x.py", 1)])
    assert len(found) == 1 and expected in found[0]


def test_the_cycle_check_catches_a_lazy_cycle(tmp_path):
    edges = [("predict.imports", "predict.run", tmp_path, 1), ("predict.run", "predict.imports", tmp_path, 2)]
    assert find_cycle(edges) in (["predict.imports", "predict.run", "predict.imports"],
                                 ["predict.run", "predict.imports", "predict.run"])


def test_imports_inside_functions_are_seen(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from predict.run import part_rows\n")
    assert ("predict.run", 2) in imports_of(path, "predict.imports")

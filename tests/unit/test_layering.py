"""Layering: the whole import graph runs one way (DESIGN.md §2), and `curation/` never imports Ray.

The graph is read from the source with `ast` (imports inside functions count), so a test needs no import of the
project. Rules:
- `curation/` imports no other project package;
- `pipeline/core/` imports only `curation/` and itself;
- the app layer (`pipeline/cli.py`, `pipeline/app/`, every `__main__.py`) is imported by nothing outside it;
- no import cycle between modules, and the package graph {curation, core, pipeline, training, evaluation, infra,
  app} is acyclic;
- and, tighter, each layer imports only the layers `MAY_IMPORT` names (the diagram in docs/architecture.md).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("curation", "pipeline", "training", "evaluation", "infra")
MAY_IMPORT = {
    "curation": set(),
    "core": {"curation"},
    "evaluation": {"core", "curation"},
    "training": {"core", "curation", "evaluation"},  # evaluation.models: the open_clip config registry + export format
    "infra": {"core", "curation", "evaluation"},  # evaluation.benchmark.fixed_split: the digits test split rule
    "pipeline": {"core", "curation", "training"},  # training.metrics: the report reads metrics.csv
    "app": {"core", "curation", "evaluation", "training", "infra", "pipeline"},
}
"""Which layers each layer may import (besides itself): the arrows of docs/architecture.md's diagram."""


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The layer a module belongs to: one of curation, core, pipeline, training, evaluation, infra, app."""
    parts = module.split(".")
    if parts[-1] == "__main__" or module == "pipeline.cli" or module.startswith("pipeline.app"):
        return "app"
    if module.startswith("pipeline.core"):
        return "core"
    return parts[0]


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in the file, relative imports resolved)."""
    files = {module_name(p, root): p for pkg in PACKAGES if (root / pkg).is_dir() for p in (root / pkg).rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in PACKAGES and (target := resolve(name)) and target != mod:
                    targets.add(target)
        graph[mod] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def violations(root: Path) -> list[str]:
    """Every breach of the layering rules under `root`, as readable lines (empty when the tree is clean)."""
    graph = import_graph(root)
    found = []
    for mod, targets in sorted(graph.items()):
        src = layer_of(mod)
        for target in sorted(targets):
            dst = layer_of(target)
            if src == "curation" and dst != "curation":
                found.append(f"{mod} -> {target}: curation/ imports no other project package")
            if src == "core" and dst not in ("core", "curation"):
                found.append(f"{mod} -> {target}: pipeline/core/ imports only curation/ and itself")
            if dst == "app" and src != "app":
                found.append(f"{mod} -> {target}: nothing outside the app layer imports it")
            elif src not in ("curation", "core") and src != dst and dst not in MAY_IMPORT[src]:
                found.append(f"{mod} -> {target}: {src} may import only {sorted(MAY_IMPORT[src])}")
    for component in _cycles(graph):
        found.append("module cycle: " + " <-> ".join(component))
    layers: dict[str, set[str]] = defaultdict(set)
    for mod, targets in graph.items():
        layers[layer_of(mod)] |= {layer_of(t) for t in targets} - {layer_of(mod)}
    for component in _cycles(dict(layers)):
        found.append("package cycle: " + " <-> ".join(component))
    return found


def test_the_import_graph_runs_one_way():
    graph = import_graph(ROOT)
    assert {"curation.text", "pipeline.core.config", "pipeline.cli", "training.loop"} <= set(graph)
    assert "pipeline.core.config" in graph["training.config"]  # the graph sees real edges
    assert violations(ROOT) == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CLEAN = {
    "curation/__init__.py": "",
    "curation/text.py": "import numpy\n",
    "pipeline/__init__.py": "",
    "pipeline/core/__init__.py": "",
    "pipeline/core/config.py": "from curation.text import x\n",
    "pipeline/build.py": "from pipeline.core import config\n",
    "pipeline/cli.py": "from pipeline.build import run\nfrom training.loop import go\n",
    "training/__init__.py": "",
    "training/loop.py": "from pipeline.core.config import y\n",
}


def test_a_clean_tree_has_no_violations(tmp_path):
    assert violations(_plant(tmp_path, CLEAN)) == []


def test_planted_violations_are_each_reported(tmp_path):
    planted = dict(CLEAN)
    planted["curation/text.py"] = "def f():\n    from pipeline.core.config import StrictModel\n"  # inside a function
    planted["pipeline/core/config.py"] = "from pipeline.build import run\n"
    planted["training/loop.py"] = "from ..pipeline import cli\n"
    planted["training/a.py"] = "from training import b\n"
    planted["training/b.py"] = "import training.a\n"
    found = "\n".join(violations(_plant(tmp_path, planted)))
    assert "curation.text -> pipeline.core.config: curation/ imports no other project package" in found
    assert "pipeline.core.config -> pipeline.build: pipeline/core/ imports only" in found
    assert "module cycle: training.a <-> training.b" in found
    assert "package cycle:" in found  # core -> pipeline -> core


def test_a_layer_imports_only_what_the_diagram_allows(tmp_path):
    planted = dict(CLEAN)
    planted["evaluation/__init__.py"] = ""
    planted["evaluation/run.py"] = "def f():\n    from training.loop import go\n"
    found = violations(_plant(tmp_path, planted))
    assert found == ["evaluation.run -> training.loop: evaluation may import only ['core', 'curation']"]


def test_the_app_layer_is_imported_by_nothing_below_it(tmp_path):
    planted = dict(CLEAN)
    planted["training/loop.py"] = "import pipeline.cli\n"
    planted["pipeline/app/__init__.py"] = ""
    planted["pipeline/app/demo.py"] = "from training.loop import go\n"
    planted["pipeline/report.py"] = "from pipeline.app import demo\n"
    found = violations(_plant(tmp_path, planted))
    assert "training.loop -> pipeline.cli: nothing outside the app layer imports it" in found
    assert "pipeline.report -> pipeline.app.demo: nothing outside the app layer imports it" in found


# Imports every module under curation/ in a fresh interpreter, then reports them and any Ray module loaded.
PROBE = """
import importlib, json, pkgutil, sys
import curation
names = [m.name for m in pkgutil.walk_packages(curation.__path__, "curation.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "ray": sorted(m for m in sys.modules if m.split(".")[0] == "ray")}))
"""


def _probe(prefix: str = "") -> dict:
    out = subprocess.run([sys.executable, "-c", prefix + PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_curation_never_imports_ray():
    report = _probe()
    expected = {"curation.text", "curation.langid", "curation.metadata", "curation.matching", "curation.balancing"}
    assert expected <= set(report["modules"]), report["modules"]
    assert report["ray"] == [], f"curation imported Ray: {report['ray']}"


def test_the_probe_notices_ray():
    assert _probe("import sys; sys.modules['ray'] = sys\n")["ray"] == ["ray"]

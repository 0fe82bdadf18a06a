"""The package's import graph follows the pipeline: no upward edge, no cycle.

Layers, lowest first: the foundations at the top level, the contracts beside them,
then build, boot, runs, analysis and cli. A module may import its own layer or lower
ones. Imports inside functions count too: a lazy import is still a dependency.
"""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "appliance"
FOUNDATIONS = {"appliance", "appliance.errors", "appliance.proc", "appliance.fsutil", "appliance.stats",
               "appliance.paths", "appliance.seal", "appliance.markup"}
CONTRACTS = {"appliance.probes", "appliance.clocks", "appliance.netspec", "appliance.phases", "appliance.machines",
             "appliance.bundle", "appliance.snapshot",
             "appliance.results", "appliance.guestlog", "appliance.systemdview"}
STAGES = ["assemble", "boot", "runs", "fleet", "store", "analysis", "cli"]
ENTRY = {"appliance.__main__"}  # python -m appliance: above everything


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    if module in FOUNDATIONS:
        return 0
    if module in CONTRACTS:
        return 1
    if module in ENTRY:
        return 2 + len(STAGES)
    stage = module.split(".")[1]
    assert stage in STAGES, f"{module} is in no layer: add it to FOUNDATIONS, CONTRACTS or a stage"
    return 2 + STAGES.index(stage)


def imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """The appliance modules SOURCE (the text of MODULE) imports (a name imported from a
    package that is a submodule counts as that submodule)."""
    found = set()
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "appliance"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "appliance":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found - {module}


def imports(module: str) -> set[str]:
    return imports_in(MODULES[module].read_text(), module, MODULES[module].name == "__init__.py")


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {i}" for m, deps in graph.items() for i in deps if layer(i) > layer(m))


GRAPH = {m: imports(m) for m in MODULES}


def test_every_import_resolves_to_a_module():
    missing = {(m, i) for m, deps in GRAPH.items() for i in deps if i not in MODULES}
    assert not missing


def test_no_module_imports_a_higher_layer():
    assert upward(GRAPH) == []


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                return [*path, module, dep]
            if dep not in state and (cycle := visit(dep, [*path, module])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state:
            cycle = visit(module, [])
            assert cycle is None, " -> ".join(cycle)


def reachable(module: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    """Every module MODULE imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_checker_sees_an_upward_edge():
    # the rules above are only worth something if they can fail
    assert layer("appliance.bundle") < layer("appliance.assemble.template") < layer("appliance.cli.main")
    assert "appliance.runs.debugboots" in GRAPH["appliance.cli.analysis_verbs"]


def test_a_planted_upward_import_is_caught():
    planted = "def f():\n    from appliance.cli import main\n"  # a contract importing the CLI, lazily
    graph = {**GRAPH, "appliance.bundle": imports_in(planted, "appliance.bundle")}
    assert upward(graph) == ["appliance.bundle -> appliance.cli.main"]


def test_no_cli_module_imports_the_scons_adapter():
    # SCons' actions are for SCons; the CLI asks the modules that own each lookup
    assert sorted(m for m in GRAPH if m.startswith("appliance.cli") and "appliance.assemble.actions" in GRAPH[m]) == []


def test_analysis_boots_no_vm_not_even_through_another_module():
    # analysis/ reads boots; booting them is boot/'s and runs/'s (measure, bench's loops).
    # Followed through every import: analysis reached boot.measure through runs.debugboots.
    assert sorted(f"{m} -> {i}" for m in GRAPH if m.startswith("appliance.analysis") for i in reachable(m)
                  if i.startswith(("appliance.boot", "appliance.runs", "appliance.fleet"))) == []


def test_the_indirect_check_sees_a_path_through_another_module():
    graph = {**GRAPH, "appliance.analysis.spans": GRAPH["appliance.analysis.spans"] | {"appliance.runs.debugboots"}}
    assert "appliance.boot.measure" in reachable("appliance.analysis.flame", graph)

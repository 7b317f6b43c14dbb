"""The package's import graph has no cycle: a use case imports what it is handed (`context`),
never the wiring (`runtime`) or the process that runs it (`tasks`). Imports inside functions
count: a lazy import is still a cycle a newcomer has to untangle."""

from __future__ import annotations

from pathlib import Path

import grimp

import syncworker.sync


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def with_parent_packages(graph: grimp.ImportGraph) -> grimp.ImportGraph:
    """Importing `a.b.c` runs `a/b/__init__` first, an import grimp leaves out. Added where the
    importer lives outside that package (inside it, the package is already initialising)."""
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            parts = imported.split(".")
            for end in range(2, len(parts)):
                parent = ".".join(parts[:end])
                if parent in graph.modules and not module.startswith(parent + "."):
                    graph.add_import(importer=module, imported=parent)
    return graph


def test_the_package_has_no_import_cycle() -> None:
    graph = grimp.build_graph("syncworker", exclude_type_checking_imports=True)
    assert import_cycles(with_parent_packages(graph)) == []


def test_the_check_finds_a_cycle_through_a_package_initialiser() -> None:
    """`pkg.cli/__init__` registers `pkg.sandbox.cli`, which imported `pkg.cli.common`: the
    second import runs `pkg.cli/__init__` again while it is half done."""
    graph = grimp.ImportGraph()
    for module in ("pkg.cli", "pkg.cli.common", "pkg.sandbox", "pkg.sandbox.cli"):
        graph.add_module(module)
    graph.add_import(importer="pkg.cli", imported="pkg.sandbox.cli")
    graph.add_import(importer="pkg.sandbox.cli", imported="pkg.cli.common")
    assert import_cycles(graph) == []
    assert import_cycles(with_parent_packages(graph)) == [["pkg.cli", "pkg.sandbox.cli"]]


def test_the_check_finds_a_cycle_through_a_lazy_import() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg.context", "pkg.runtime", "pkg.tasks"):
        graph.add_module(module)
    graph.add_import(importer="pkg.runtime", imported="pkg.context")
    graph.add_import(importer="pkg.tasks", imported="pkg.runtime")
    graph.add_import(importer="pkg.runtime", imported="pkg.tasks")  # inside a function
    assert import_cycles(graph) == [["pkg.runtime", "pkg.tasks"]]


def test_the_use_cases_do_not_load_a_crm_connector() -> None:
    graph = grimp.build_graph("syncworker", exclude_type_checking_imports=True)
    assert not graph.chain_exists(
        importer="syncworker.sync",
        imported="syncworker.connectors.salesforce",
        as_packages=True,
    )


def test_the_use_cases_never_name_a_crm() -> None:
    """A CRM's own ways (Salesforce's external id field) live in its connector, behind
    `connectors.base.CrmConnector`: the use cases speak of the CRM side only."""
    package = Path(syncworker.sync.__file__).parent
    naming = [
        path.name for path in package.rglob("*.py") if "salesforce" in path.read_text().lower()
    ]
    assert naming == []


CRM_PLUG_IN_PLACES = ("connectors/", "sandbox/", "mappings/", "settings.py", "runtime.py")


def test_only_the_crms_plug_in_places_name_it() -> None:
    """A CRM is a plug-in: its connector, sandbox, shipped mapping, settings and its entry in
    `runtime.CRMS` know it; the use cases, the CLI, the preflight and the rate gate do not
    (not even in a docstring), so the next CRM is added beside them, not inside them."""
    root = Path(syncworker.sync.__file__).parent.parent
    naming = [
        relative
        for path in sorted(root.rglob("*.py"))
        if not (relative := path.relative_to(root).as_posix()).startswith(CRM_PLUG_IN_PLACES)
        and "salesforce" in path.read_text(encoding="utf-8").lower()
    ]
    assert naming == []

"""The import structure: no cycles between our modules, and the SQL core knows nothing of Celery.

Read from the source with ``ast`` (nothing is imported), so the test also sees imports made
inside functions. The matching core, case and visit services must not import Celery or a task
module: they return what changed, and their callers queue the follow-up
(notifications/tasks.py). ``test_the_walk_finds_a_cycle`` shows the check failing on a cycle.
"""

import ast

from tests.conftest import PROJECT_DIR

APPS = ("leavehome", "venues", "notifications")
# The SQL core and the services it serves: plain functions over the database.
QUEUE_FREE = ("notifications.matching", "notifications.cases", "notifications.visits", "notifications.devices")


def _module_name(path) -> str:
    parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Each module of the apps (migrations aside) → the names it imports (absolute, dotted)."""
    graph = {}
    for app in APPS:
        for path in (PROJECT_DIR / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            names = set()
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
            graph[_module_name(path)] = names
    return graph


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle among the graph's own modules, each as the path that closes it."""
    edges = {
        module: {target for name in names if (target := _resolve(name, graph)) and target != module}
        for module, names in graph.items()
    }
    cycles, done = [], set()

    def visit(module, path):
        for target in sorted(edges[module]):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    return cycles


def test_no_import_cycles_between_our_modules():
    graph = project_imports()
    assert "notifications.matching" in graph, "the walk found none of our modules"
    assert import_cycles(graph) == []


def test_the_walk_finds_a_cycle():
    graph = {
        "notifications.matching": {"notifications.tasks.match_publication"},
        "notifications.tasks": {"celery", "notifications.matching"},
    }
    assert import_cycles(graph) == [["notifications.matching", "notifications.tasks", "notifications.matching"]]


def test_the_sql_core_and_services_queue_nothing():
    graph = project_imports()
    for module in QUEUE_FREE:
        queued = sorted(name for name in graph[module] if name.split(".")[0] == "celery" or ".tasks" in name)
        assert queued == [], f"{module} imports {queued}"


def test_services_never_raise_drf_errors():
    graph = project_imports()
    outside_api = {
        module: names for module, names in graph.items() if ".api" not in module and module != "leavehome.api"
    }
    drf = {
        module: sorted(n for n in names if n.startswith("rest_framework.exceptions"))
        for module, names in outside_api.items()
    }
    assert {module: names for module, names in drf.items() if names} == {}

"""The package's module import graph (read with ``ast``, nothing imported): no module-level cycle,
``models`` stays below the modules that use it (tokens, ratelimit, sending, history), and the send
backends (``backends/``) below everything but settings, AWS and the event loop."""

import ast
from pathlib import Path

import django_aws_api_gateway_websockets as package

ROOT = Path(package.__file__).resolve().parent
NAME = package.__name__
#: the rules ``models`` delegates to; they import ``models``, never the other way round
ABOVE_MODELS = {f"{NAME}.{name}" for name in ("tokens", "ratelimit", "sending", "history")}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NAME, *parts])


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py")) if "migrations" not in path.parts}


def _is_type_checking(node):
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree):
    """``(node, at_module_level)`` for every import statement; ``if TYPE_CHECKING:`` ones are left out
    (they never run), class bodies count as module level (they run at import)."""

    def walk(node, module_level):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), module_level)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, module_level
            inner = module_level and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inner)

    yield from walk(tree, True)


def _targets(module, node):
    """The package's modules an import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = module.split(".")
        is_package = MODULES[module].name == "__init__.py"
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = set()
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        found.add(submodule if submodule in MODULES else source)
    return found


def import_graph():
    """``{module: {imported module: "module" | "function"}}`` within the package."""
    graph = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for node, module_level in _imports(ast.parse(path.read_text(), str(path))):
            for target in _targets(module, node) & MODULES.keys() - {module}:
                if module_level or target not in edges:  # a module-level import outranks a lazy one
                    edges[target] = "module" if module_level else "function"
    return graph


def module_level(graph):
    return {module: {t for t, kind in edges.items() if kind == "module"} for module, edges in graph.items()}


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def cycles(graph):
    """Every module-level cycle, as a path (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_both_kinds_of_import():
    graph = import_graph()
    assert graph[f"{NAME}.tokens"][f"{NAME}.models"] == "module"
    assert graph[f"{NAME}.compat"][f"{NAME}.tokens"] == "function"  # the 4.x classmethods, lazily
    assert graph[f"{NAME}.models"][f"{NAME}.compat"] == "module"


def test_models_imports_none_of_the_modules_above_it():
    graph = import_graph()
    models = f"{NAME}.models"
    assert not set(graph[models]) & ABOVE_MODELS  # not even inside a method
    assert not reachable(module_level(graph), models) & ABOVE_MODELS


def test_no_module_level_import_cycle():
    assert cycles(module_level(import_graph())) == []


BACKENDS = f"{NAME}.backends"
#: what the send backends build on; anything else (models, sending, views...) sits above them
BELOW_BACKENDS = {f"{NAME}.{name}" for name in ("conf", "aws", "exceptions", "eventloop")}
#: the backends themselves, which share only what ``base``, ``pacing`` and ``sigv4`` hold
CONCRETE_BACKENDS = {f"{BACKENDS}.{name}" for name in ("aiohttp", "boto3", "memory")}


def backend_modules():
    return {module for module in MODULES if module.startswith(f"{BACKENDS}.")}


def test_the_backends_package_has_its_modules():
    assert backend_modules() == {f"{BACKENDS}.{name}" for name in ("base", "pacing", "sigv4")} | CONCRETE_BACKENDS


def test_backends_import_only_the_modules_below_them():
    graph = import_graph()
    for module in backend_modules() | {BACKENDS}:
        above = {target for target in graph[module] if not target.startswith(BACKENDS)} - BELOW_BACKENDS
        if module == f"{BACKENDS}.memory":  # records into the test captures, imported on use
            assert graph[module].get(f"{NAME}.testing.capture") == "function"
            above.discard(f"{NAME}.testing.capture")
        assert not above, (module, above)


def test_no_backend_imports_another_and_base_imports_none():
    graph = import_graph()
    for module in backend_modules():
        assert not set(graph[module]) & (CONCRETE_BACKENDS - {module}), module


#: docs/architecture.md#layers: the layers below Operations, by module (a package counts with its
#: submodules). None of them may import the system checks or the 4.x upgrade, not even lazily:
#: those read everything, and only ``apps`` (which registers the checks) and the management
#: commands load them.
BELOW_OPERATIONS = (
    "protocol",
    "security",
    "conf",
    "aws",
    "models",
    "history_models",
    "compat",
    "tokens",
    "ratelimit",
    "login",
    "channel_access",
    "handlers",
    "process_cache",
    "gateway_lookup",
    "views",
    "refusals",
    "signals",
    "receivers",
    "db",
    "pipeline",
    "log_context",
    "sending",
    "backends",
    "exceptions",
    "eventloop",
    "history",
    "presence",
    "tasks",
)
OPERATIONS = ("checks", "upgrade")


def _in(module, names):
    return any(module == f"{NAME}.{name}" or module.startswith(f"{NAME}.{name}.") for name in names)


def test_no_module_below_operations_imports_the_checks_or_the_upgrade():
    graph = import_graph()
    assert all(f"{NAME}.{name}" in MODULES for name in OPERATIONS)
    offending = {
        f"{module} -> {target}"
        for module, edges in graph.items()
        if _in(module, BELOW_OPERATIONS)
        for target in edges
        if _in(target, OPERATIONS)
    }
    assert sorted(offending) == []


def test_the_upgrade_is_used_by_its_command_and_the_migration_check_only():
    graph = import_graph()
    users = {
        module
        for module, edges in graph.items()
        if not _in(module, ("upgrade",)) and any(_in(target, ("upgrade",)) for target in edges)
    }
    assert users == {f"{NAME}.management.commands.upgrade_from_old_package", f"{NAME}.checks.migrations"}


# --- the request path's layers (issue #24): views -> pipeline -> rules -> db -> models ---------

DB = ("db",)
PIPELINE = ("pipeline",)
#: what the database layer may import besides itself: the models and the login's hashing
DB_MAY_IMPORT = {f"{NAME}.models", f"{NAME}.history_models", f"{NAME}.login"}
#: who may import the pipeline: the view that delegates to it, the check reporting its plans
PIPELINE_IMPORTED_BY = {f"{NAME}.views", f"{NAME}.checks.connect_plans"}


def test_the_database_layer_imports_only_the_models_below_it():
    graph = import_graph()
    for module, edges in graph.items():
        if _in(module, DB):
            above = {target for target in edges if not _in(target, DB)} - DB_MAY_IMPORT
            assert not above, f"{module} imports {sorted(above)}"


def test_only_the_view_and_its_check_import_the_pipeline():
    graph = import_graph()
    importers = {m for m, edges in graph.items() if not _in(m, PIPELINE) and any(_in(t, PIPELINE) for t in edges)}
    assert importers <= PIPELINE_IMPORTED_BY, importers - PIPELINE_IMPORTED_BY


def test_the_pipeline_imports_the_view_only_lazily():
    # views.Rejection's home is views, which imports the pipeline: the pipeline reaches it at
    # run time (pipeline/refusal.py), never at import time.
    levels = module_level(import_graph())
    for module, targets in levels.items():
        if _in(module, PIPELINE):
            assert f"{NAME}.views" not in targets, module

"""Every module imports on its own, and no module depends on itself through others (no import cycles)."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sockjs_server

ROOT = Path(__file__).resolve().parent.parent

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(sockjs_server.__path__, "sockjs_server.")
    if not info.name.endswith("__main__")
)

#: The protocol core (every module of ``core/``) and the built-in server's parsers.
SANS_IO = [name for name in MODULES if name.startswith("sockjs_server.core.")] + [
    "sockjs_server.servers.builtin.h1",
    "sockjs_server.servers.builtin.wsframes",
]


# One interpreter, but every module is imported first, from a clean slate: all of
# the package is dropped from sys.modules before each import, so an import cycle
# shows up whatever module a user happens to import first.
_IMPORT_EACH_FIRST = """
import importlib, json, sys
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "sockjs_server" or m.startswith("sockjs_server.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as error:
        failures[name] = repr(error)
print(json.dumps(failures))
"""


def test_every_module_imports_first() -> None:
    assert "sockjs_server.core.state" in MODULES
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, json.dumps(["sockjs_server", *MODULES])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


_IMPORT_SANS_IO = """
import json, os, sys, types
# Load the modules without the packages' __init__ (the root one mounts the aiohttp
# layer, servers.builtin's starts the server): every parent package is a bare module.
for name in json.loads(sys.argv[2]):
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent not in sys.modules:
            package = types.ModuleType(parent)
            package.__path__ = [os.path.join(sys.argv[1], *parts[1:depth])]
            sys.modules[parent] = package
    __import__(name)
print(json.dumps(sorted(m for m in ("aiohttp", "asyncio", "multidict", "yarl") if m in sys.modules)))
"""


def test_sans_io_modules_use_only_the_standard_library() -> None:
    # The protocol core is plain stdlib code: no event loop, no web framework.
    assert "sockjs_server.core.framing" in SANS_IO and len(SANS_IO) >= 9
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_SANS_IO, str(ROOT / "sockjs_server"), json.dumps(SANS_IO)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def _module_files() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package) for every module of the package."""
    package_dir = ROOT / "sockjs_server"
    modules: dict[str, tuple[Path, bool]] = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """Which package modules each module imports, read from the source.

    Every import statement counts, wherever it stands: at the top, inside a
    function (a lazy import only hides a cycle) or under ``TYPE_CHECKING``,
    and so do ``__import__(name)`` and ``importlib.import_module(name)`` calls
    (an f-string name counts as every module it can name). A module's parent
    packages, which Python imports implicitly, do not.
    """
    modules = _module_files()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target in modules and target != here:
                    imported.add(target)
                # ``from . import routes`` imports the module ``routes``.
                imported.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules)
            elif isinstance(node, ast.Call) and node.args and _is_dynamic_import(node.func):
                imported.update(_named_modules(node.args[0], modules))
        imported.discard(name)
        graph[name] = imported
    return graph


def _is_dynamic_import(func: ast.expr) -> bool:
    """``__import__``, ``import_module`` or ``importlib.import_module``."""
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _named_modules(name: ast.expr, modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """The package modules a dynamic import's name may be: a constant names one, an f-string
    every module that starts with its constant beginning."""
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        return {name.value} if name.value in modules else set()
    if isinstance(name, ast.JoinedStr) and name.values and isinstance(name.values[0], ast.Constant):
        prefix = str(name.values[0].value)
        return {module for module in modules if module.startswith(prefix) and module != prefix}
    return set()


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_import_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert set(graph) >= set(MODULES)
    assert "sockjs_server.runtime.endpoint" in graph["sockjs_server.aiohttp.routes"]  # from .endpoint import ...
    assert "sockjs_server.core.static" in graph["sockjs_server.aiohttp.routes"]  # from . import static
    assert "sockjs_server" in graph["sockjs_server.stomp.cli"]  # from sockjs_server import ..., in a function
    # importlib.import_module(f"sockjs_server.servers.{server}"): every server it may name.
    assert "sockjs_server.servers.uvicorn" in graph["sockjs_server.cli"]
    probe = ast.parse("__import__('sockjs_server.demo'); importlib.import_module('sockjs_server.stomp.cli')")
    calls = [node for node in ast.walk(probe) if isinstance(node, ast.Call) and _is_dynamic_import(node.func)]
    assert set().union(*(_named_modules(c.args[0], _module_files()) for c in calls)) == {"sockjs_server.demo", "sockjs_server.stomp.cli"}


def test_the_command_line_names_no_plug_in() -> None:
    # STOMP and the demo declare their subcommands (pyproject.toml's entry points); the command
    # line imports neither, by statement or by name.
    graph = import_graph()
    assert not {m for m in graph["sockjs_server.cli"] if m.startswith(("sockjs_server.stomp", "sockjs_server.demo"))}
    from sockjs_server.cli import COMMANDS, _register_plugins

    _register_plugins()
    assert {"stomp", "demo", "echo", "testserver"} <= set(COMMANDS)


def test_no_import_cycles() -> None:
    # A cycle means two modules cannot be understood (or tested) apart; the
    # session layer reports to its owner through a protocol instead.
    assert find_cycles(import_graph()) == []


def test_sessions_do_not_know_endpoints() -> None:
    graph = import_graph()
    assert "sockjs_server.runtime.endpoint" not in graph["sockjs_server.runtime.session"]
    assert "sockjs_server.aiohttp.routes" not in graph["sockjs_server.runtime.endpoint"]


#: Each layer of the package and the layers it may import (its own included).
#: A module belongs to the longest prefix listed in LAYER_OF.
LAYER_OF = {
    "sockjs_server.core": "core",
    "sockjs_server.runtime": "runtime",
    "sockjs_server.aiohttp": "aiohttp",
    "sockjs_server.asgi": "asgi",
    "sockjs_server.stomp": "stomp",
    "sockjs_server.servers": "servers",
    "sockjs_server.metrics": "metrics",
    "sockjs_server": "api",  # the package itself and the modules kept for old import paths
    "sockjs_server.cli": "cli",
    "sockjs_server.stomp.cli": "cli",
    "sockjs_server.stomp.__main__": "cli",
    "sockjs_server.__main__": "cli",
    "sockjs_server.demo": "app",
}
MAY_IMPORT = {
    "core": {"core"},
    "runtime": {"core", "runtime"},
    "aiohttp": {"core", "runtime", "aiohttp"},
    "asgi": {"core", "runtime", "asgi"},
    "stomp": {"core", "runtime", "stomp"},
    "servers": {"core", "runtime", "asgi", "servers"},
    "metrics": {"core", "runtime", "aiohttp", "asgi", "metrics"},  # STOMP registers its figures (runtime.stats)
    "api": {"core", "runtime", "aiohttp", "asgi", "stomp", "servers", "metrics", "api"},
    "cli": {"core", "runtime", "aiohttp", "asgi", "stomp", "servers", "metrics", "api", "cli"},
    "app": {"core", "runtime", "aiohttp", "asgi", "stomp", "servers", "metrics", "api", "cli", "app"},
}


def layer_of(module: str) -> str:
    prefixes = [p for p in LAYER_OF if module == p or module.startswith(p + ".")]
    return LAYER_OF[max(prefixes, key=len)]


def test_no_module_imports_from_a_layer_above_it() -> None:
    # core < runtime < web layers (aiohttp, asgi) and STOMP < servers < the package's
    # API < the command line < the demo; the web layers and STOMP do not know each other.
    assert layer_of("sockjs_server.stomp.relay.rabbit") == "stomp"
    assert layer_of("sockjs_server.stomp.cli") == "cli"
    assert layer_of("sockjs_server.asgi_builtin") == "api"
    wrong = sorted(
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, targets in import_graph().items()
        for target in targets
        if layer_of(target) not in MAY_IMPORT[layer_of(module)]
    )
    assert wrong == []


def test_old_public_import_paths_still_work() -> None:
    # The modules users import by name keep working after the package was split into layers.
    from sockjs_server import add_endpoint as mounted
    from sockjs_server.aiohttp.routes import add_endpoint
    from sockjs_server.asgi import SockJSApp, SockJSRouter
    from sockjs_server.asgi.app import SockJSApp as App
    from sockjs_server.asgi.app import SockJSRouter as Router
    from sockjs_server.asgi_builtin import Limits, Server, run, serve
    from sockjs_server.servers import builtin
    from sockjs_server.stomp import StompServer
    from sockjs_server.stomp.server import StompServer as Stomp

    assert mounted is add_endpoint and SockJSApp is App and SockJSRouter is Router and StompServer is Stomp
    assert (Limits, Server, run, serve) == (builtin.Limits, builtin.Server, builtin.run, builtin.serve)
    for name in ("asgi_uvicorn", "asgi_granian"):
        shim = importlib.import_module(f"sockjs_server.{name}")
        real = importlib.import_module(f"sockjs_server.servers.{name.removeprefix('asgi_')}")
        assert all(getattr(shim, export) is getattr(real, export) for export in shim.__all__)

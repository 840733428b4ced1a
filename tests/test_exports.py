"""``__all__`` is honest: what a module exports exists, and the package exports the documented API."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import sockjs_server

CORE = [
    "sockjs_server",
    "sockjs_server.asgi",
    "sockjs_server.cli",
    "sockjs_server.servers.builtin",
    "sockjs_server.runtime.endpoint",
    "sockjs_server.core.envelopes",
    "sockjs_server.core.framing",
    "sockjs_server.core.http",
    "sockjs_server.core.options",
    "sockjs_server.aiohttp.routes",
    "sockjs_server.cli.serving",
    "sockjs_server.runtime.session",
    "sockjs_server.core.state",
    "sockjs_server.core.static",
    "sockjs_server.cli.testserver",
    "sockjs_server.aiohttp.transports",
    "sockjs_server.aiohttp.websocket",
]

ALL_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(sockjs_server.__path__, "sockjs_server.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", CORE)
def test_core_modules_declare_their_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"


KNOWN_DISHONEST: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_DISHONEST[name], strict=True))
        if name in KNOWN_DISHONEST
        else name
        for name in ["sockjs_server", *ALL_MODULES]
    ],
)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [export for export in getattr(module, "__all__", ()) if not hasattr(module, export)]
    assert missing == [], f"{name}.__all__ names what it does not define: {missing}"


def test_star_import_of_the_package() -> None:
    namespace: dict[str, object] = {}
    exec("from sockjs_server import *", namespace)
    assert {"add_endpoint", "Endpoint", "Options", "Session", "SessionClosed", "CloseCode", "TRANSPORTS"} <= set(
        namespace
    )


def test_package_exports_the_documented_api() -> None:
    documented = {
        "add_endpoint",
        "Endpoint",
        "Options",
        "Session",
        "SessionClosed",
        "CloseCode",
        "TRANSPORTS",
        "ENDPOINTS",
        "Handler",
    }
    assert documented <= set(sockjs_server.__all__)
    for name in sockjs_server.__all__:
        assert not name.startswith("_")


def test_package_exports_are_the_real_objects() -> None:
    from sockjs_server.aiohttp import routes
    from sockjs_server.core import options, state
    from sockjs_server.runtime import endpoint, session

    assert sockjs_server.add_endpoint is routes.add_endpoint
    assert sockjs_server.Endpoint is endpoint.Endpoint
    assert sockjs_server.Options is options.Options
    assert sockjs_server.Session is session.Session
    assert sockjs_server.SessionClosed is session.SessionClosed
    assert sockjs_server.CloseCode is state.CloseCode


def test_version() -> None:
    assert isinstance(sockjs_server.__version__, str)
    assert sockjs_server.__version__.count(".") == 2

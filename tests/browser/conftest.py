"""Fixtures for the real-browser tests: Chromium (Debian's, driven by Playwright) and servers.

Every test here is marked ``browser``. When Chromium, Playwright or the demo's
node_modules are missing the tests are skipped, except under CI (CI=true),
where a missing piece is an error: `.ci/install-browser` installs all three.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ServerProcess,
    eventsource_percent_unescaped,
    free_port,
    missing_requirements,
    python,
)

@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Skip (or, under CI, fail) when the browser tests cannot run here."""
    missing = missing_requirements()
    if missing:
        message = "browser tests need " + ", ".join(missing) + " (run .ci/install-browser)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(browser_ready: None) -> Iterator[Any]:
    """Chromium for one test module.

    Module scope, not session: Playwright's sync API keeps an asyncio loop
    running in this thread while it is started, which would make every
    asyncio test that runs after it fail ("cannot be called from a running
    event loop"). It is stopped at the end of each browser test module.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives a fresh, temporary profile; every test opens its own
        # isolated context in it (no shared cookies or storage).
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


class Harness:
    """The conformance test server on 127.0.0.1 and a page-only server on another origin."""

    def __init__(self, server: ServerProcess, pages: ServerProcess) -> None:
        self.server = server
        self.pages = pages

    def page_url(self, cross_origin: bool) -> str:
        origin = self.pages.origin if cross_origin else self.server.origin
        return origin + "/pages/echo.html"

    def endpoint(self, name: str) -> str:
        return f"{self.server.origin}/{name}"


# The web layer under the endpoints: aiohttp, or one Starlette app on uvicorn ("asgi") or on the
# package's own server ("builtin"), the --asgi-server of harness_server.py.
ASGI_SERVERS = {"asgi": "uvicorn", "builtin": "builtin"}


@pytest.fixture(scope="session", params=["aiohttp", "asgi", "builtin"])
def harness(browser_ready: None, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """The endpoints on the aiohttp layer, then on the ASGI layer (the same Starlette app on uvicorn, then on builtin)."""
    asgi_server = ASGI_SERVERS.get(request.param)
    layer = ["--asgi-server", asgi_server] if asgi_server else []
    if asgi_server:
        pytest.importorskip("starlette")
    if asgi_server == "uvicorn":
        pytest.importorskip("uvicorn")
    port = free_port("127.0.0.1")
    # 127.0.0.2 is another origin (and another site) for the browser, on the same loopback.
    pages_host = "127.0.0.2"
    pages_port = free_port(pages_host)
    script = os.path.join(os.path.dirname(__file__), "harness_server.py")
    server = ServerProcess("sockjs-testserver", python(script, "--host", "127.0.0.1", "--port", str(port), *layer), "127.0.0.1", port)
    pages = ServerProcess(
        "pages-server", python(script, "--host", pages_host, "--port", str(pages_port), "--pages-only"), pages_host, pages_port
    )
    with server, pages:
        yield Harness(server, pages)


@pytest.fixture(scope="session")
def demo_server(browser_ready: None) -> Iterator[ServerProcess]:
    """The chat demo as a person starts it: ``sockjs-server demo --host 127.0.0.1 --port P``."""
    port = free_port()
    argv = python("-m", "sockjs_server", "demo", "--host", "127.0.0.1", "--port", str(port))
    with ServerProcess("demo-server", argv, "127.0.0.1", port) as server:
        yield server


EVENTSOURCE_TRANSPORTS = ("eventsource", "iframe-eventsource")


@pytest.fixture(scope="session")
def eventsource_percent_bug(harness: Harness) -> bool:
    """Whether the server under test sends "%" unescaped in eventsource frames (a known server bug)."""
    return eventsource_percent_unescaped(harness.server.host, harness.server.port)


def eventsource_bug_applies(transport: str, bug: bool) -> bool:
    return bug and transport in EVENTSOURCE_TRANSPORTS


EVENTSOURCE_BUG = (
    'server sends "%" raw in eventsource frames; sockjs-client decodeURI()s each event, '
    'so a frame with a "%" in it is dropped (sockjs-node sends "%25")'
)

"""sockjs-client 1.6.1 in Chromium, forced onto each transport, against the conformance test server.

Each run loads a page (on the server's origin, or on 127.0.0.2 for the
cross-origin run), opens ``new SockJS(url, null, {transports: [name]})``,
sends a fixed set of messages to /echo and checks they come back unchanged
and in order, and that ``sock.transport`` is the forced transport.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import EVENTSOURCE_BUG, EVENTSOURCE_TRANSPORTS, Harness, eventsource_bug_applies
from .support import NODE_MODULES, SAME_ORIGIN_ONLY, TRANSPORTS

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000


def _client_escapable() -> str:
    """Every character sockjs-client escapes before sending (its `extraEscapable`), surrogates excepted."""
    source = (NODE_MODULES / "sockjs-client" / "lib" / "utils" / "escape.js").read_text()
    body = re.search(r"var extraEscapable = /\[(.*?)\]/g", source)
    assert body, "extraEscapable not found in sockjs-client"
    tokens = re.findall(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|(-)", body.group(1))
    chars: set[int] = set()
    pending_range = False
    previous: int | None = None
    for x, u, dash in tokens:
        if dash:
            pending_range = True
            continue
        point = int(x or u, 16)
        if pending_range and previous is not None:
            chars.update(range(previous, point + 1))
            pending_range = False
        else:
            chars.add(point)
        previous = point
    return "".join(chr(c) for c in sorted(chars) if not 0xD800 <= c <= 0xDFFF)


def _server_escapable() -> str:
    """What SockJS servers escape in frames (sockjs-node's escapable set), surrogates excepted."""
    ranges = [(0x00, 0x1F), (0x200C, 0x200F), (0x2028, 0x202F), (0x2060, 0x206F), (0xFEFF, 0xFEFF), (0xFFF0, 0xFFFF)]
    return "".join(chr(c) for lo, hi in ranges for c in range(lo, hi + 1))


def messages() -> dict[str, list[str]]:
    """Named groups of messages; sent in this order, one connection per transport."""
    escapes = _client_escapable() + _server_escapable()
    return {
        "ascii": ["hello, world", "The quick brown fox jumps over the lazy dog 0123456789 ~!@#$%^&*()_+"],
        "json-special": [
            '"quoted" \\backslash\\ /slash/ {"a": [1, 2, {"b": null}]} \b\f\n\r\t',
            '["a"]',
            'a["x"]',
            'c[3000,"Go away!"]',
            "o",
            "h",
            "'single' </script> <!-- & ; %22 %00 +",
        ],
        "emoji": ["😀 🚀 👩\u200d💻 🇫🇷 🏳️\u200d🌈", "日本語 Ελληνικά русский עברית العربية", "𝄞 𐍈 \U0010fffd"],
        "escapes": [escapes, escapes[::-1]],
        "empty": [""],
        "burst": [f"burst {i}" for i in range(200)],
        # 100 KiB in one message: 100 lines of 1 KiB.
        "large": ["".join(f"{i:04d} " + "abcdefghijklmnopqrstuvwxyz0123456789" * 28 + "0123456789" + "\n" for i in range(100))],
    }


def flatten(groups: dict[str, list[str]]) -> list[str]:
    return [message for group in groups.values() for message in group]


def run_echo(context: Any, url: str, endpoint: str, transport: str, payload: list[str], timeout_ms: int = TIMEOUT_MS) -> dict[str, Any]:
    page = context.new_page()
    try:
        page.goto(url)
        result: dict[str, Any] = page.evaluate(
            "([url, transport, messages, timeout]) => window.echoRun(url, transport, messages, timeout)",
            [endpoint, transport, payload, timeout_ms],
        )
        return result
    finally:
        page.close()


def describe_mismatch(sent: list[str], received: list[str]) -> str:
    for index, (a, b) in enumerate(zip(sent, received)):
        if a != b:
            diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return (
                f"message {index} differs at char {diff}: sent {a[diff:diff + 8]!r} (len {len(a)}), "
                f"got {b[diff:diff + 8]!r} (len {len(b)})"
            )
    return f"sent {len(sent)} messages, got {len(received)}"


ORIGINS = [pytest.param(False, id="same-origin"), pytest.param(True, id="cross-origin")]


@pytest.mark.parametrize("cross_origin", ORIGINS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo(harness: Harness, context: Any, transport: str, cross_origin: bool, eventsource_percent_bug: bool) -> None:
    payload = flatten(messages())
    assert len(payload[-1]) == 100 * 1024
    if eventsource_bug_applies(transport, eventsource_percent_bug):
        # Known server bug, checked on its own by test_percent_over_eventsource.
        payload = [m for m in payload if "%" not in m]
    result = run_echo(context, harness.page_url(cross_origin), harness.endpoint("echo"), transport, payload)

    if cross_origin and transport in SAME_ORIGIN_ONLY:
        # sockjs-client does not offer this transport across origins: it must
        # give up cleanly ("All transports failed") without opening.
        assert not result["opened"], result
        assert result["close"] and result["close"]["code"] == 2000, result
        pytest.skip(f"sockjs-client enables {transport} on the same origin only (iframe-{transport} covers this case)")

    assert result["error"] is None, f"{transport}: {result['error']}; close={result['close']}"
    assert result["transport"] == transport
    received = result["received"]
    assert received == payload, describe_mismatch(payload, received)


@pytest.mark.parametrize("cross_origin", ORIGINS)
@pytest.mark.parametrize("transport", EVENTSOURCE_TRANSPORTS)
def test_percent_over_eventsource(
    harness: Harness, context: Any, transport: str, cross_origin: bool, request: pytest.FixtureRequest, eventsource_percent_bug: bool
) -> None:
    """sockjs-client decodeURI()s eventsource data: the server must send "%" as "%25"."""
    if eventsource_percent_bug:
        request.applymarker(pytest.mark.xfail(strict=True, reason=EVENTSOURCE_BUG))
    payload = ["50%", "%41", "%%", "100% sure", "%E2%82%AC"]
    result = run_echo(context, harness.page_url(cross_origin), harness.endpoint("echo"), transport, payload, timeout_ms=4000)
    assert result["error"] is None, f"{transport}: {result['error']}; got {result['received']}"
    assert result["received"] == payload


@pytest.mark.parametrize("cross_origin", ORIGINS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cookie_needed_echo(harness: Harness, context: Any, transport: str, cross_origin: bool) -> None:
    """The cookie_needed endpoint works on every transport; same-origin pages see JSESSIONID."""
    if cross_origin and transport in SAME_ORIGIN_ONLY:
        pytest.skip(f"sockjs-client enables {transport} on the same origin only")
    payload = ["cookie?", "🍪"]
    result = run_echo(context, harness.page_url(cross_origin), harness.endpoint("cookie_needed_echo"), transport, payload)
    assert result["error"] is None, f"{transport}: {result['error']}; close={result['close']}"
    assert result["transport"] == transport
    assert result["received"] == payload
    if not cross_origin and transport != "websocket":
        # HTTP transports set the sticky-session cookie (the websocket handshake need not).
        assert "JSESSIONID=" in result["cookie"]


def test_server_closes(harness: Harness, context: Any) -> None:
    """The /close endpoint's close frame reaches the page as a close event with its code and reason."""
    page = context.new_page()
    try:
        page.goto(harness.page_url(False))
        close = page.evaluate(
            """(url) => new Promise((resolve) => {
                const sock = new SockJS(url, null, {transports: ['xhr-streaming']});
                sock.onclose = (e) => resolve({code: e.code, reason: e.reason});
            })""",
            harness.endpoint("close"),
        )
    finally:
        page.close()
    assert close == {"code": 3000, "reason": "Go away!"}


def test_disabled_websocket_falls_back(harness: Harness, context: Any) -> None:
    """With websocket disabled by the server, automatic selection picks an HTTP transport."""
    result = run_echo(context, harness.page_url(False), harness.endpoint("disabled_websocket_echo"), "auto", ["hi"])
    assert result["error"] is None, result
    assert result["transport"] not in (None, "websocket")

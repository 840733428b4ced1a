"""Options: documented defaults, validation with a clear message, transports by name."""

from __future__ import annotations

import dataclasses

import pytest

from sockjs_server import TRANSPORTS, Options


def test_defaults() -> None:
    options = Options()
    assert options.heartbeat_delay == 25.0
    assert options.disconnect_delay == 5.0
    assert options.response_limit == 128 * 1024
    assert options.cookie_needed is False
    assert options.websocket is True
    assert options.sockjs_url.startswith("https://")
    assert options.allowed_origins is None
    assert set(options.disabled_transports) == set()


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Options().heartbeat_delay = 1.0  # type: ignore[misc]


def test_transport_names() -> None:
    assert TRANSPORTS == {
        "websocket",
        "websocket-raw",
        "xhr-streaming",
        "xhr-polling",
        "eventsource",
        "htmlfile",
        "jsonp-polling",
    }


@pytest.mark.parametrize("name", ["heartbeat_delay", "disconnect_delay", "close_timeout"])
@pytest.mark.parametrize("value", [0, -1.0])
def test_times_must_be_positive(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        Options(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "response_limit",
        "max_message_size",
        "max_request_size",
        "max_messages_per_request",
        "max_queue_bytes",
        "max_queue_messages",
        "max_receive_queue",
    ],
)
def test_sizes_must_be_at_least_one(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Options(**{name: 0})  # type: ignore[arg-type]
    assert getattr(Options(**{name: 1}), name) == 1  # type: ignore[arg-type]


def test_unknown_transport() -> None:
    with pytest.raises(ValueError, match="xhr"):
        Options(disabled_transports={"xhr"})


def test_allowed_origins_is_not_a_string() -> None:
    with pytest.raises(TypeError):
        Options(allowed_origins="https://a.example")


def test_websocket_off_disables_both_websocket_transports() -> None:
    options = Options(websocket=False)
    assert not options.transport_enabled("websocket")
    assert not options.transport_enabled("websocket-raw")
    assert options.transport_enabled("xhr-streaming")


def test_disabled_transports() -> None:
    options = Options(disabled_transports={"eventsource", "websocket-raw"})
    assert not options.transport_enabled("eventsource")
    assert not options.transport_enabled("websocket-raw")
    assert options.transport_enabled("websocket")

"""Destination names as RabbitMQ's STOMP plugin reads them, with its ERROR texts.

Checked by the server before any broker sees a SEND or SUBSCRIBE, so that
both brokers refuse the same destinations with the same words, and a relay
never forwards a name RabbitMQ would refuse:

* ``/topic/<key>``, ``/queue/<name>``, ``/amq/queue/<name>``,
  ``/temp-queue/<name>``, ``/reply-queue/<name>``: one non-empty segment;
* ``/exchange/<name>[/<routing key>]``;
* a name without a leading ``/`` (RabbitMQ's plain queue name).

Control characters are refused outright, a deliberate difference from
RabbitMQ (which accepts them): they cannot be shown safely in logs or in
the headers of other clients' frames.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

from .errors import ProtocolError, frame_error

__all__ = ["check_destination", "display_destination", "UNKNOWN_DESTINATION_TYPES"]

#: RabbitMQ's list, in its order.
UNKNOWN_DESTINATION_TYPES = "/temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/"

_KINDS = (
    ("/temp-queue", "temp_queue"),
    ("/reply-queue", "reply_queue"),
    ("/amq/queue", "amqqueue"),
    ("/exchange", "exchange"),
    ("/topic", "topic"),
    ("/queue", "queue"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SEGMENT = re.compile(r"/[^/]+")
_EXCHANGE = re.compile(r"/[^/]+(?:/.*)?", re.DOTALL)


def unknown_destination(destination: str) -> ProtocolError:
    return frame_error(
        "Unknown destination",
        f"'{destination}' is not a valid destination.\nValid destination types are: {UNKNOWN_DESTINATION_TYPES}.\n",
    )


def check_destination(destination: str) -> None:
    """Raise the ERROR RabbitMQ would answer for ``destination`` (none for a valid one)."""
    if not destination:
        raise frame_error("Invalid destination", "Destination cannot be blank")
    if _CONTROL.search(destination):
        raise frame_error("Invalid destination", f"{destination[:200]!r} contains control characters\n")
    if not destination.startswith("/"):
        return  # a plain queue name
    for prefix, kind in _KINDS:
        if destination == prefix or destination.startswith(prefix + "/"):
            rest = destination[len(prefix) :]
            pattern = _EXCHANGE if kind == "exchange" else _SEGMENT
            if not pattern.fullmatch(rest):
                raise frame_error("Invalid destination", f"'{rest}' is not a valid {kind} destination\n")
            return
    raise unknown_destination(destination)


# Characters RabbitMQ shows unescaped in the destination header of a MESSAGE.
_SAFE = "-_.~!$&'()*+,;=:@"


@lru_cache(maxsize=4096)
def display_destination(prefix: str, name: str) -> str:
    """The destination header RabbitMQ puts on a MESSAGE: the name percent-encoded."""
    return prefix + quote(name, safe=_SAFE)

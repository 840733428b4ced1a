"""Exceptions that end a STOMP connection with an ERROR frame.

Each carries what the ERROR frame needs: a short ``message`` header, a longer
``detail`` for the body, and the ``receipt_id`` of the frame that failed.
"""

from __future__ import annotations

__all__ = ["StompError", "ProtocolError", "FrameTooLarge", "AccessDenied", "BrokerError", "frame_error"]


class StompError(Exception):
    """Base class: anything that answers the client with ERROR and closes."""

    def __init__(
        self,
        message: str,
        detail: str = "",
        *,
        receipt_id: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        fatal: bool = True,
        receipt_after: bool = False,
        silent: bool = False,
        error_after_receipt: bool = False,
        receipted: bool = True,
    ) -> None:
        super().__init__(message if not detail else f"{message}: {detail}")
        self.message = message
        self.detail = detail
        self.receipt_id = receipt_id
        #: Extra ERROR headers.
        self.headers = headers
        #: Whether the connection ends after the ERROR. RabbitMQ, more lenient
        #: than the spec's "MUST then close", keeps serving a client after most
        #: mistakes in one frame (a missing header, an unknown destination) and
        #: closes only when the connection's state is broken.
        self.fatal = fatal
        #: The failed frame's RECEIPT still follows the ERROR (RabbitMQ does so
        #: when it closes over a frame it had accepted, e.g. a duplicated subscription).
        self.receipt_after = receipt_after
        #: Close without sending ERROR at all (RabbitMQ's answer to a second CONNECT).
        self.silent = silent
        #: The failed frame's RECEIPT goes first and the ERROR carries no
        #: receipt-id (RabbitMQ's order when its channel fails after it
        #: confirmed the frame, e.g. an ACK of an unknown delivery tag).
        self.error_after_receipt = error_after_receipt
        #: Whether the ERROR names the failed frame's ``receipt`` (RabbitMQ leaves it
        #: out when it refuses a frame before carrying it out, e.g. a durable
        #: SUBSCRIBE without ``id``).
        self.receipted = receipted


class ProtocolError(StompError):
    """The client broke the protocol: malformed frame, missing header, wrong state."""


def frame_error(message: str, detail: str = "", **kwargs: object) -> ProtocolError:
    """A mistake confined to one frame: ERROR, and the connection goes on (as RabbitMQ does)."""
    return ProtocolError(message, detail, fatal=False, **kwargs)  # type: ignore[arg-type]


class FrameTooLarge(ProtocolError):
    """A frame, header line or header count went over a configured limit."""


class AccessDenied(StompError):
    """Authentication or authorization refused the frame."""


class BrokerError(StompError):
    """The broker could not carry out an operation (unknown destination, storage full, ...)."""

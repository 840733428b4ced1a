"""Exceptions that end a STOMP connection with an ERROR frame.

Each carries what the ERROR frame needs: a short ``message`` header, a longer
``detail`` for the body, and the ``receipt_id`` of the frame that failed.
"""

from __future__ import annotations

__all__ = ["StompError", "ProtocolError", "FrameTooLarge", "AccessDenied", "BrokerError"]


class StompError(Exception):
    """Base class: anything that answers the client with ERROR and closes."""

    def __init__(
        self,
        message: str,
        detail: str = "",
        *,
        receipt_id: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message if not detail else f"{message}: {detail}")
        self.message = message
        self.detail = detail
        self.receipt_id = receipt_id
        #: Extra ERROR headers, e.g. ``version`` on a version mismatch.
        self.headers = headers


class ProtocolError(StompError):
    """The client broke the protocol: malformed frame, missing header, wrong state."""


class FrameTooLarge(ProtocolError):
    """A frame, header line or header count went over a configured limit."""


class AccessDenied(StompError):
    """Authentication or authorization refused the frame."""


class BrokerError(StompError):
    """The broker could not carry out an operation (unknown destination, storage full, ...)."""

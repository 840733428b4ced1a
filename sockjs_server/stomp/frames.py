"""STOMP frames, commands, versions and ack modes: plain data, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AckMode",
    "Command",
    "Frame",
    "Version",
    "CLIENT_COMMANDS",
    "SERVER_COMMANDS",
    "SUPPORTED_VERSIONS",
]


class Command(str, enum.Enum):
    """Frame commands. "All commands and header names ... are case sensitive." """

    # client frames
    CONNECT = "CONNECT"
    STOMP = "STOMP"
    SEND = "SEND"
    SUBSCRIBE = "SUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    ACK = "ACK"
    NACK = "NACK"
    BEGIN = "BEGIN"
    COMMIT = "COMMIT"
    ABORT = "ABORT"
    DISCONNECT = "DISCONNECT"
    # server frames
    CONNECTED = "CONNECTED"
    MESSAGE = "MESSAGE"
    RECEIPT = "RECEIPT"
    ERROR = "ERROR"


CLIENT_COMMANDS = frozenset(
    {
        Command.CONNECT,
        Command.STOMP,
        Command.SEND,
        Command.SUBSCRIBE,
        Command.UNSUBSCRIBE,
        Command.ACK,
        Command.NACK,
        Command.BEGIN,
        Command.COMMIT,
        Command.ABORT,
        Command.DISCONNECT,
    }
)
SERVER_COMMANDS = frozenset({Command.CONNECTED, Command.MESSAGE, Command.RECEIPT, Command.ERROR})


class Version(str, enum.Enum):
    """Protocol versions; the value is what goes in accept-version / version."""

    V1_0 = "1.0"
    V1_1 = "1.1"
    V1_2 = "1.2"


# Ordered lowest first: "the highest protocol version that both the client and
# server have in common" is the last match.
SUPPORTED_VERSIONS: tuple[Version, ...] = (Version.V1_0, Version.V1_1, Version.V1_2)


class AckMode(str, enum.Enum):
    """SUBSCRIBE ack header: "If the header is not set, it defaults to auto." """

    AUTO = "auto"
    CLIENT = "client"
    CLIENT_INDIVIDUAL = "client-individual"


@dataclass(frozen=True, slots=True)
class Frame:
    """One STOMP frame.

    Headers keep their wire order and repeats (a store-and-forward history);
    lookups follow the spec: "only the first header entry SHOULD be used".
    """

    command: Command
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    _first: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        first = dict(self.headers)
        if len(first) != len(self.headers):
            # Repeated names: the first entry wins (dict() kept the last).
            first = {}
            for name, value in self.headers:
                first.setdefault(name, value)
        object.__setattr__(self, "_first", first)

    @classmethod
    def make(
        cls,
        command: Command,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
    ) -> Frame:
        """Convenience constructor taking a mapping or pairs and str or bytes."""
        pairs = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return cls(command, pairs, data)

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name``."""
        return self._first.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._first

    @property
    def header_map(self) -> Mapping[str, str]:
        """First-wins view of the headers."""
        return self._first

    def iter_headers(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    @property
    def text(self) -> str:
        """Body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

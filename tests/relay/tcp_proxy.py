"""A TCP port in front of RabbitMQ that a test can open, close or freeze.

It plays a broker that is not there yet (nothing listening), that arrives
(``listen``), that goes away (``stop``: every connection cut) or that hangs
(``frozen``: connections stay open, nothing goes through). Single
connections can be cut (``cut``: the others go on) or muted (``mute``: what
the relay sends still reaches RabbitMQ, RabbitMQ's answers are swallowed),
each found by the port of the relay's end (``Upstream.local_port``).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field


def free_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(eq=False)
class Link:
    """One proxied connection."""

    client_port: int
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    #: RabbitMQ's bytes to the relay are dropped.
    muted: bool = False

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port if port is not None else free_port()
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.links: dict[int, Link] = {}

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        link = Link(writer.get_extra_info("peername")[1], [writer, up_writer])
        self.links[link.client_port] = link
        self._writers |= {writer, up_writer}
        for src, dst, downstream in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.create_task(self._pipe(src, dst, link, downstream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, downstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if self.frozen or (downstream and link.muted):
                    continue  # swallowed: the peer hears nothing
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self.links.pop(link.client_port, None)

    def link(self, client_port: int | None) -> Link:
        """The connection whose relay end has this port."""
        assert client_port is not None and client_port in self.links, (client_port, sorted(self.links))
        return self.links[client_port]

    def cut(self, client_port: int | None) -> None:
        """Cut one connection (by the port of the relay's end); the proxy goes on listening."""
        self.link(client_port).cut()

    def cut_all(self) -> None:
        """Cut every connection open now; new ones are accepted."""
        for link in list(self.links.values()):
            link.cut()

    async def stop(self) -> None:
        """Stop listening and cut every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

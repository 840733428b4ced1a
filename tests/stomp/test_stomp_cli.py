"""``sockjs-server stomp``: the users file (scrypt hashes), ``adduser``, login and virtual-host
checking with RabbitMQ's ERROR frames, and ``--max-frame-size``, over real sockets."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from stomp_testing import TIMEOUT, ClientFrame, ClientParser, StompClient, TcpPipe, WebSocketPipe, encode_frame

from sockjs_server.stomp.auth import (
    ConnectInfo,
    ConnectionInfo,
    Users,
    UsersAuthenticator,
    UsersFileError,
    hash_password,
    verify_password,
)
from sockjs_server.stomp.cli import add_user, build_app, configure
from sockjs_server.stomp.errors import AccessDenied

RABBIT = ("127.0.0.1", int(os.environ.get("RABBITMQ_STOMP_PORT", "61613")))
FAST = {"n": 2**4, "r": 1, "p": 1}  # cheap scrypt for tests that only need a valid hash


# --- hashes -----------------------------------------------------------------------------------


def test_hash_round_trip_with_a_fresh_salt_each_time() -> None:
    first, second = hash_password("pässword"), hash_password("pässword")
    assert first != second  # per-user random salt
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_password("pässword", first) and verify_password("pässword", second)
    assert not verify_password("password", first)
    assert not verify_password("", first)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "md5$1$1$1$AAAA$AAAA",
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$3$8$1$AAAA$AAAA",  # n not a power of two
        "scrypt$2097152$8$1$AAAA$AAAA",  # n beyond the bound: a tampered file must not cost gigabytes
        "scrypt$16384$8$1$AAAA",
    ],
)
def test_malformed_hashes_never_match(stored: str) -> None:
    assert not verify_password("x", stored)


# --- the users file -----------------------------------------------------------------------------


def test_users_file_round_trip_is_private_and_holds_no_password(tmp_path: Path) -> None:
    path = tmp_path / "users"
    users = Users()
    users.set_password("alice", "wonderland")
    users.set_password("bob", "builder")
    users.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "wonderland" not in text and "builder" not in text
    loaded = Users.load(path)
    assert loaded.names() == ["alice", "bob"]
    assert loaded.check("alice", "wonderland")
    assert not loaded.check("alice", "builder")
    assert not loaded.check("carol", "wonderland")


def test_users_file_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"# users\n\n   \nalice:{hash_password('a', **FAST)}\n  # more\n")
    assert Users.load(path).names() == ["alice"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("alice\n", "line 1: expected name:hash"),
        ("# c\nalice:plain\n", "line 2"),
        ("alice:{h}\nalice:{h}\n", "line 2: user 'alice' appears twice"),
        (" alice:{h}\n", "line 1: invalid user name"),
    ],
)
def test_users_file_errors_name_the_line(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "users"
    path.write_text(content.format(h=hash_password("a", **FAST)))
    with pytest.raises(UsersFileError) as caught:
        Users.load(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_missing_users_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read the users file"):
        Users.load(tmp_path / "nope")


@pytest.mark.parametrize("name", ["", "a:b", "a\nb", " a", "#a"])
def test_invalid_user_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        Users().set_password(name, "pw")


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValueError):
        Users().set_password("alice", "")


def adduser(path: Path, name: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockjs_server", "stomp", "adduser", "--users", str(path), name],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_adduser_command_reads_the_password_from_stdin(tmp_path: Path) -> None:
    path = tmp_path / "users"
    done = adduser(path, "alice", "first secret\n")
    assert done.returncode == 0, done.stderr
    assert "added user 'alice'" in done.stdout
    assert Users.load(path).check("alice", "first secret")
    done = adduser(path, "alice", "second")
    assert done.returncode == 0 and "changed the password" in done.stdout
    done = adduser(path, "bob", "builder\n")
    users = Users.load(path)
    assert users.names() == ["alice", "bob"]
    assert users.check("alice", "second") and not users.check("alice", "first secret")
    assert "second" not in path.read_text()


@pytest.mark.parametrize(("name", "stdin", "problem"), [("a:b", "pw\n", "invalid user name"), ("alice", "\n", "must not be empty")])
def test_adduser_command_refuses_bad_input(tmp_path: Path, name: str, stdin: str, problem: str) -> None:
    path = tmp_path / "users"
    done = adduser(path, name, stdin)
    assert done.returncode == 2  # a user mistake: one line, exit status 2
    assert "sockjs-server stomp adduser:" in done.stderr and problem in done.stderr
    assert not path.exists()


# --- the authenticator (unit) ---------------------------------------------------------------------


async def test_authenticator_answers_like_rabbitmq() -> None:
    users = Users()
    users.set_password("alice", "pw")
    auth = UsersAuthenticator(users, ("/", "team"))

    def info(login: str | None, passcode: str | None, host: str | None) -> ConnectInfo:
        return ConnectInfo(login, passcode, host, {}, ConnectionInfo("s", "tcp"))

    principal = await auth(info("alice", "pw", None))
    assert principal.name == "alice" and principal.attributes["vhost"] == "/"
    assert (await auth(info("alice", "pw", "team"))).attributes["vhost"] == "team"
    with pytest.raises(AccessDenied) as refused:
        await auth(info("alice", "wrong", "/"))
    assert (refused.value.message, refused.value.detail) == ("Bad CONNECT", "Access refused for user 'alice'\n")
    assert refused.value.headers == (("version", "1.0,1.1,1.2"),)
    with pytest.raises(AccessDenied) as refused:
        await auth(info("alice", "wrong", "nope"))  # the virtual host is checked first (RabbitMQ 3.10)
    assert refused.value.detail == "Virtual host 'nope' access denied"
    with pytest.raises(AccessDenied) as refused:
        await auth(info(None, None, "/"))
    assert refused.value.detail == "Access refused for user ''\n"
    with pytest.raises(ValueError):
        UsersAuthenticator(users, ("team",))  # the default "/" must be a known virtual host


# --- the subcommand's server over real sockets ------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    add_user(str(path), "alice", "wonderland")
    add_user(str(path), "guest", "guest")
    return path


async def start(aiohttp_server: Any, port_factory: Any, *argv: str) -> tuple[int, str]:
    tcp_port = port_factory()
    server = await aiohttp_server(build_app(parse("--port", "0", "--stomp-port", str(tcp_port), *argv)))
    return tcp_port, str(server.make_url("/stomp"))


async def first_frame(
    port: int, headers: list[tuple[str, str]], host: str = "127.0.0.1", *, close_wait: float = TIMEOUT
) -> tuple[ClientFrame, bool]:
    """Send CONNECT on a fresh TCP connection: the first frame back, and whether the server
    closed the connection after it (within ``close_wait`` seconds)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(encode_frame("CONNECT", headers, escape_headers=False))
        await writer.drain()
        parser = ClientParser()
        frames: list[ClientFrame] = []
        while not frames:
            data = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert data, "closed before answering"
            frames = parser.feed(data)
        try:
            closed = await asyncio.wait_for(reader.read(65536), close_wait) == b""
        except asyncio.TimeoutError:
            closed = False
        return frames[0], closed
    finally:
        writer.close()


async def tcp_client(port: int) -> StompClient:
    return StompClient(await TcpPipe.open("127.0.0.1", port))


async def test_users_log_in_and_become_principals(aiohttp_server: Any, unused_tcp_port_factory: Any, users_file: Path) -> None:
    port, base = await start(aiohttp_server, unused_tcp_port_factory, "--users", str(users_file))
    alice = await tcp_client(port)
    await alice.connect(login="alice", passcode="wonderland")
    await alice.subscribe("/topic/cli-users", "s")
    async with aiohttp.ClientSession() as http:
        # The same check over SockJS.
        guest = StompClient(await WebSocketPipe.open(http, base))
        await guest.connect(login="guest", passcode="guest")
        await guest.send("/topic/cli-users", "hi", receipt="r")
        message = await alice.expect("MESSAGE")
        assert message["user-id"] == "guest"  # the server stamps the authenticated sender
        await guest.disconnect()
    await alice.disconnect()


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([("login", "alice"), ("passcode", "wrong")], "Access refused for user 'alice'\n"),
        ([("login", "mallory"), ("passcode", "x")], "Access refused for user 'mallory'\n"),
        ([("passcode", "wonderland")], "Access refused for user ''\n"),
        ([("login", "alice"), ("passcode", "wonderland"), ("host", "nope")], "Virtual host 'nope' access denied"),
        ([("login", "alice"), ("passcode", "wrong"), ("host", "nope")], "Virtual host 'nope' access denied"),
        ([("login", "alice"), ("passcode", "wonderland"), ("host", "")], "Virtual host '' access denied"),
    ],
)
async def test_refused_connect_gets_rabbitmqs_error(
    aiohttp_server: Any, unused_tcp_port_factory: Any, users_file: Path, headers: list[tuple[str, str]], body: str
) -> None:
    port, _ = await start(aiohttp_server, unused_tcp_port_factory, "--users", str(users_file))
    frame, closed = await first_frame(port, [("accept-version", "1.2"), *headers])
    assert frame.command == "ERROR"
    assert frame["message"] == "Bad CONNECT"
    assert frame["version"] == "1.0,1.1,1.2"
    assert frame["content-type"] == "text/plain"
    assert frame.body == body.encode()
    assert frame["content-length"] == str(len(body.encode()))
    assert closed


async def test_declared_virtual_hosts(aiohttp_server: Any, unused_tcp_port_factory: Any, users_file: Path) -> None:
    port, _ = await start(
        aiohttp_server, unused_tcp_port_factory, "--users", str(users_file), "--vhost", "main", "--vhost", "other"
    )
    login = [("accept-version", "1.2"), ("login", "alice"), ("passcode", "wonderland")]
    for host in ("main", "other"):
        frame, _ = await first_frame(port, [*login, ("host", host)], close_wait=0)
        assert frame.command == "CONNECTED", frame
    frame, _ = await first_frame(port, login, close_wait=0)  # no host: the first --vhost
    assert frame.command == "CONNECTED", frame
    frame, _ = await first_frame(port, [*login, ("host", "/")])
    assert frame.body == b"Virtual host '/' access denied"


def _stomp_py_connect(port: int, **connection: Any) -> tuple[bool, str | None]:
    """stomp.py's Connection12 (the README's users section): whether CONNECT succeeded, and the
    ERROR body if not."""
    import stomp

    class Errors(stomp.ConnectionListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.bodies: list[str] = []
            self.done = threading.Event()

        def on_error(self, frame: Any) -> None:
            self.bodies.append(frame.body)
            self.done.set()

        def on_connected(self, frame: Any) -> None:
            self.done.set()

    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0), reconnect_attempts_max=1, **connection)
    errors = Errors()
    conn.set_listener("", errors)
    conn.connect("alice", "wonderland", wait=False)
    try:
        assert errors.done.wait(TIMEOUT), "no answer to CONNECT"
        return conn.is_connected() and not errors.bodies, errors.bodies[0] if errors.bodies else None
    finally:
        conn.disconnect()


async def test_stomp_py_names_the_address_as_host_unless_given_a_vhost(
    aiohttp_server: Any, unused_tcp_port_factory: Any, users_file: Path
) -> None:
    # stomp.py's STOMP 1.2 connection sends host:<the address it connected to>: the right
    # password is refused for that virtual host, as by RabbitMQ, until the client names one.
    port, _ = await start(aiohttp_server, unused_tcp_port_factory, "--users", str(users_file))
    assert await asyncio.to_thread(_stomp_py_connect, port) == (False, "Virtual host '127.0.0.1' access denied")
    assert await asyncio.to_thread(_stomp_py_connect, port, vhost="/") == (True, None)


async def test_without_users_anyone_connects_with_any_host(aiohttp_server: Any, unused_tcp_port_factory: Any) -> None:
    port, _ = await start(aiohttp_server, unused_tcp_port_factory)
    for headers in ([], [("login", "who"), ("passcode", "ever"), ("host", "anything")]):
        frame, _ = await first_frame(port, [("accept-version", "1.2"), *headers], close_wait=0)
        assert frame.command == "CONNECTED", frame


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    "headers",
    [
        [("accept-version", "1.2"), ("host", "/"), ("login", "guest"), ("passcode", "wrong")],
        [("accept-version", "1.1"), ("host", "/"), ("login", "no-such-user-cli"), ("passcode", "x")],
        [("host", "/"), ("login", "guest"), ("passcode", "wrong")],  # STOMP 1.0
        [("accept-version", "1.2"), ("host", "no-such-vhost-cli"), ("login", "guest"), ("passcode", "guest")],
        [("accept-version", "1.2"), ("host", "no-such-vhost-cli"), ("login", "guest"), ("passcode", "wrong")],
        [("accept-version", "1.2"), ("host", ""), ("login", "guest"), ("passcode", "guest")],
        [("accept-version", "1.2"), ("host", "/"), ("login", ""), ("passcode", "")],
    ],
)
async def test_same_error_as_the_real_rabbitmq(
    aiohttp_server: Any, unused_tcp_port_factory: Any, users_file: Path, headers: list[tuple[str, str]]
) -> None:
    """The same refused CONNECT, to RabbitMQ's STOMP plugin (guest/guest, vhost "/") and to us."""
    try:
        theirs, _ = await first_frame(RABBIT[1], headers, RABBIT[0], close_wait=0)
    except OSError as exc:
        pytest.fail(f"RabbitMQ's STOMP plugin is not reachable at {RABBIT[0]}:{RABBIT[1]} ({exc}); run .ci/install-rabbitmq")
    port, _ = await start(aiohttp_server, unused_tcp_port_factory, "--users", str(users_file))
    ours, _ = await first_frame(port, headers)
    assert theirs.command == ours.command == "ERROR"
    for name in ("message", "version", "content-type", "content-length"):
        assert ours.get(name) == theirs.get(name), (name, ours.headers, theirs.headers)
    assert ours.body == theirs.body


# --- --max-frame-size -----------------------------------------------------------------------------


async def test_max_frame_size_limits_frames(aiohttp_server: Any, unused_tcp_port_factory: Any) -> None:
    port, _ = await start(aiohttp_server, unused_tcp_port_factory, "--max-frame-size", "2000")
    client = await tcp_client(port)
    await client.connect()
    await client.send("/topic/size", "x" * 1500, receipt="fits")
    await client.send_frame("SEND", {"destination": "/topic/size", "receipt": "big"}, "x" * 3000)
    error = await client.expect_error("Frame too large")
    assert "2000" in error.text


async def test_large_max_frame_size_raises_the_sockjs_limits(aiohttp_server: Any, unused_tcp_port_factory: Any) -> None:
    size = 3 * 1024 * 1024
    _, base = await start(aiohttp_server, unused_tcp_port_factory, "--max-frame-size", str(size))
    body = "y" * (2 * 1024 * 1024)  # over the default 1 MiB websocket message limit
    async with aiohttp.ClientSession() as http:
        receiver = StompClient(await WebSocketPipe.open(http, base))
        await receiver.connect()
        await receiver.subscribe("/topic/big", "s")
        sender = StompClient(await WebSocketPipe.open(http, base))
        await sender.connect()
        await sender.send("/topic/big", body, receipt="r")
        assert (await receiver.expect("MESSAGE")).body == body.encode()
        await sender.disconnect()
        await receiver.disconnect()


def test_max_frame_size_must_be_positive(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        parse("--max-frame-size", "0")
    assert "must be at least 1" in capsys.readouterr().err


# --- the command itself, as a process ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_command_refuses_a_broken_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice\n")
    done = subprocess.run(
        [sys.executable, "-m", "sockjs_server", "stomp", "--port", str(free_port()), "--users", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}, line 1: expected name:hash" in done.stderr
    assert "Traceback" not in done.stderr


def test_command_refuses_vhost_without_users() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sockjs_server", "stomp", "--port", str(free_port()), "--vhost", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--vhost needs --users" in done.stderr


async def test_command_serves_logins_over_tcp(users_file: Path) -> None:
    http_port, stomp_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sockjs_server", "stomp",
            "--port", str(http_port), "--stomp-port", str(stomp_port),
            "--users", str(users_file), "--max-frame-size", "4096",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10 * TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", stomp_port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.1)
        frame, _ = await first_frame(
            stomp_port, [("accept-version", "1.2"), ("login", "alice"), ("passcode", "wonderland")], close_wait=0
        )
        assert frame.command == "CONNECTED"
        frame, closed = await first_frame(stomp_port, [("accept-version", "1.2"), ("login", "alice"), ("passcode", "nope")])
        assert (frame.command, frame.body, closed) == ("ERROR", b"Access refused for user 'alice'\n", True)
        client = await tcp_client(stomp_port)
        await client.connect(login="alice", passcode="wonderland")
        await client.send_frame("SEND", {"destination": "/topic/x"}, "z" * 5000)
        await client.expect_error("Frame too large")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()

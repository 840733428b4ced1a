"""The ``sockjs-server`` command: arguments become Options; the servers start and answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from sockjs_client import GUARD, UNIT, bounded
from sockjs_server import Options, cli, testserver

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_server_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_the_option_defaults() -> None:
    args = parse()
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    assert cli.options_from_args(args) == Options()


def test_every_server_argument_reaches_options() -> None:
    args = parse(
        "--host", "127.0.0.2",
        "--port", "9000",
        "--heartbeat-delay", "1.5",
        "--disconnect-delay", "2",
        "--response-limit", "4096",
        "--cookie-needed",
        "--no-websocket",
        "--sockjs-url", "/static/sockjs.js",
        "--allowed-origin", "https://a.example",
        "--allowed-origin", "https://b.example",
        "--disable-transport", "htmlfile",
        "--disable-transport", "jsonp-polling",
    )  # fmt: skip
    assert (args.host, args.port) == ("127.0.0.2", 9000)
    options = cli.options_from_args(args)
    assert options == Options(
        heartbeat_delay=1.5,
        disconnect_delay=2.0,
        response_limit=4096,
        cookie_needed=True,
        websocket=False,
        sockjs_url="/static/sockjs.js",
        allowed_origins=frozenset({"https://a.example", "https://b.example"}),
        disabled_transports=frozenset({"htmlfile", "jsonp-polling"}),
    )
    assert not options.transport_enabled("websocket")
    assert not options.transport_enabled("htmlfile")
    assert options.transport_enabled("xhr-polling")


def test_overrides_win() -> None:
    assert cli.options_from_args(parse("--response-limit", "10"), response_limit=20).response_limit == 20


def test_custom_port_default() -> None:
    parser = argparse.ArgumentParser()
    cli.add_server_arguments(parser, port=61613)
    assert parser.parse_args([]).port == 61613


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transports"):
        cli.options_from_args(parse("--disable-transport", "carrier-pigeon"))


def test_bad_numbers_are_parser_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--port", "eighty")
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "echo" in out and "testserver" in out
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


@pytest.mark.parametrize("command", ["echo", "testserver"])
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert "--port" in capsys.readouterr().out


def test_testserver_arguments() -> None:
    args = testserver.build_parser().parse_args([])
    assert (args.host, args.port, args.response_limit, args.sockjs_url) == ("127.0.0.1", 8081, 4096, None)
    args = testserver.build_parser().parse_args(["--port", "1", "--response-limit", "9", "--sockjs-url", "/s.js"])
    assert (args.port, args.response_limit, args.sockjs_url) == (1, 9, "/s.js")


# -- the real processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_until_it_answers(argv: list[str], path: str) -> bytes:
    """Start a server process, GET ``path`` once it listens, then stop it with SIGINT
    (it must exit cleanly)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        port = int(argv[argv.index("--port") + 1])

        async def answer() -> bytes:
            async with aiohttp.ClientSession() as http:
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                            return await response.read()
                    except aiohttp.ClientConnectionError:
                        if process.returncode is not None:
                            raise AssertionError("server process exited") from None
                        await asyncio.sleep(UNIT)

        body = await bounded(answer(), 3 * GUARD)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        returncode = await bounded(process.wait(), GUARD)
    output = await process.stdout.read() if process.stdout else b""
    assert returncode == 0, output.decode(errors="replace")
    assert b"Traceback" not in output, output.decode(errors="replace")
    return body


async def test_echo_command_serves() -> None:
    port = free_port()
    body = await run_until_it_answers(["-m", "sockjs_server", "echo", "--port", str(port), "--prefix", "/e"], "/e")
    assert body == b"Welcome to SockJS!\n"


async def test_testserver_module_serves_the_suite_endpoints() -> None:
    port = free_port()
    body = await run_until_it_answers(
        ["-m", "sockjs_server.testserver", "--port", str(port)], "/disabled_websocket_echo/info"
    )
    assert json.loads(body)["websocket"] is False

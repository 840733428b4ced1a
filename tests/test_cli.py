"""The ``sockjs-server`` command: arguments become Options; the servers start and answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sockjs_client import GUARD, UNIT, bounded

from sockjs_server import Options, cli
from sockjs_server.cli import testserver

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
    with pytest.raises(cli.CommandError, match="unknown transports"):
        cli.options_from_args(parse("--disable-transport", "carrier-pigeon"))


def test_unknown_transport_names_the_valid_ones() -> None:
    result = run_cli("echo", "--disable-transport", "bogus")
    assert_one_line_error(result, "--disable-transport", "bogus", "valid: eventsource, htmlfile, jsonp-polling, websocket")
    assert "[" not in result.stderr and "'" not in result.stderr  # no Python list


@pytest.mark.parametrize("origin", ["not a url", "example.com", "https://a.example/path", "https://a.example:port", "*"])
def test_allowed_origin_that_is_not_an_origin_is_refused(origin: str) -> None:
    assert_one_line_error(run_cli("echo", "--allowed-origin", origin), "--allowed-origin", repr(origin), "scheme://host[:port]")


@pytest.mark.parametrize("origin", ["https://a.example", "http://127.0.0.1:8080", "http://[::1]:8080", "app://local"])
def test_allowed_origins_are_accepted(origin: str) -> None:
    assert cli.options_from_args(parse("--allowed-origin", origin)).allowed_origins == frozenset({origin})


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
        ["-m", "sockjs_server.cli.testserver", "--port", str(port)], "/disabled_websocket_echo/info"
    )
    assert json.loads(body)["websocket"] is False


# -- operating it: version, one-line errors, where the endpoints are, logs --------------------------


def run_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockjs_server", *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_version() -> None:
    import sockjs_server

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"sockjs-server {sockjs_server.__version__}"
    assert cli.version() == sockjs_server.__version__


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["echo", "testserver", "stomp", "demo"])
def test_port_in_use_is_one_line(command: str, busy_port: int) -> None:
    extra = ["--demo-dir", str(ROOT / "demo")] if command == "demo" else []
    result = run_cli(command, "--port", str(busy_port), *extra)
    if command == "demo" and "npm ci" in result.stderr:
        pytest.skip("demo/node_modules is not installed")
    assert_one_line_error(result, f"127.0.0.1:{busy_port}", "already in use", "--port")


def test_stomp_port_in_use_names_its_option(busy_port: int) -> None:
    result = run_cli("stomp", "--port", "0", "--stomp-port", str(busy_port))
    assert_one_line_error(result, f"127.0.0.1:{busy_port}", "already in use", "--stomp-port")


@pytest.mark.parametrize("command", ["stomp", "demo"])
def test_bad_relay_url_is_one_line(command: str) -> None:
    result = run_cli(command, "--relay", "http://guest:guest@127.0.0.1:61613/")
    assert_one_line_error(result, "--relay", "stomp://", "stomp://guest:guest@127.0.0.1:61613/")


def test_missing_demo_folder_is_one_line(tmp_path: Path) -> None:
    result = run_cli("demo", "--port", "0", "--demo-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, "demo page not found", "--demo-dir")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["echo", "--heartbeat-delay", "-1"], ["--heartbeat-delay", "positive"]),
        (["echo", "--disable-transport", "carrier-pigeon"], ["--disable-transport", "carrier-pigeon"]),
        (["echo", "--port", "70000"], ["--port", "65535"]),
        (["echo", "--port", "eighty"], ["--port", "eighty"]),
        (["echo", "--log-format", "xml"], ["--log-format", "json"]),
        (["echo", "--metrics-path", "metrics"], ["--metrics-path", "/metrics"]),
        (["echo", "--prefix", "echo"], ["--prefix"]),
        (["stomp", "--stomp-port", "-5"], ["--stomp-port"]),
        (["stomp", "--app-prefix", "app/"], ["app_prefix"]),
        (["testserver", "--port", "x"], ["--port"]),
    ],
)
def test_bad_option_values_are_one_line(argv: list[str], words: list[str]) -> None:
    assert_one_line_error(run_cli(*argv), *words)


@pytest.mark.parametrize("command", ["echo", "testserver", "stomp", "demo"])
def test_every_server_command_has_the_common_options(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    for option in ("--log-level", "--log-format", "--no-session-log", "--access-log", "--metrics-path", "--uvloop"):
        assert option in result.stdout, (command, option)


async def start_server(argv: list[str], wanted: int) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Start ``sockjs-server ARGV --port 0``; return it with the first ``wanted`` lines it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sockjs_server", *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    while len(lines) < wanted:
        line = await bounded(process.stdout.readline(), 3 * GUARD)
        if not line:
            break
        lines.append(line.decode().rstrip("\n"))
    return process, lines


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    returncode = await bounded(process.wait(), GUARD)
    assert process.stderr is not None
    return returncode, (await process.stderr.read()).decode(errors="replace")


def base_of(line: str) -> str:
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    assert match, line
    return match.group(1)


async def test_commands_say_where_their_endpoints_are() -> None:
    process, lines = await start_server(["echo", "--port", "0", "--metrics-path", "/metrics"], 2)
    try:
        assert re.fullmatch(r"SockJS echo at http://127\.0\.0\.1:\d+/echo", lines[0]), lines
        assert lines[1] == f"Prometheus metrics at {base_of(lines[0])}/metrics"
        async with aiohttp.ClientSession() as http:
            async with http.get(base_of(lines[0]) + "/echo") as response:
                assert await response.text() == "Welcome to SockJS!\n"
            async with http.get(base_of(lines[0]) + "/metrics") as response:
                assert "sockjs_sessions_opened_total" in await response.text()
    finally:
        returncode, _ = await stop(process)
    assert returncode == 0
    stomp_port = free_port()
    process, lines = await start_server(["stomp", "--port", "0", "--stomp-port", str(stomp_port)], 2)
    try:
        assert re.fullmatch(r"STOMP over SockJS at http://127\.0\.0\.1:\d+/stomp", lines[0]), lines
        assert lines[1] == f"STOMP over TCP at 127.0.0.1:{stomp_port}"
    finally:
        await stop(process)
    process, lines = await start_server(["testserver", "--port", "0"], 7)
    try:
        assert [line.split(" at ")[0] for line in lines] == [
            f"SockJS test endpoint {p}"
            for p in ("/echo", "/disabled_websocket_echo", "/cookie_needed_echo", "/close", "/ticker", "/amplify", "/broadcast")
        ]
    finally:
        await stop(process)


async def xhr_session(base: str, prefix: str) -> None:
    """One xhr-polling session: open, send one message, read it back, let the server close it."""
    async with aiohttp.ClientSession() as http:
        url = f"{base}{prefix}/000/{uuid.uuid4().hex}"
        async with http.post(url + "/xhr") as response:
            assert await response.text() == "o\n"
        async with http.post(url + "/xhr_send", data='["hi"]') as response:
            assert response.status == 204
        async with http.post(url + "/xhr") as response:
            assert await response.text() == 'a["hi"]\n'
        async with http.get(base + prefix + "/info") as response:
            assert response.status == 200


async def test_logs_json_session_lines_and_quiet_access_log() -> None:
    process, lines = await start_server(
        ["echo", "--port", "0", "--log-format", "json", "--disconnect-delay", "0.1"], 1
    )
    try:
        await xhr_session(base_of(lines[0]), "/echo")
        await asyncio.sleep(20 * UNIT)
    finally:
        returncode, err = await stop(process)
    assert returncode == 0
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    sessions = [r["message"] for r in records if r["logger"] == "sockjs_server.sessions"]
    assert any(re.search(r"/echo session \w+ opened \(xhr-polling from 127\.0\.0\.1\)", m) for m in sessions), sessions
    assert any(re.search(r"closed: \d+ .*\(xhr-polling from 127\.0\.0\.1, \d+\.\d s\)", m) for m in sessions), sessions
    access = [r["message"] for r in records if r["logger"] == "aiohttp.access"]
    assert any("/echo/info" in m for m in access), access
    assert not any("/xhr" in m for m in access), access  # session URLs are not logged by default


async def test_session_and_access_logs_can_be_switched() -> None:
    argv = ["echo", "--port", "0", "--no-session-log", "--access-log", "all", "--disconnect-delay", "0.1"]
    process, lines = await start_server(argv, 1)
    try:
        await xhr_session(base_of(lines[0]), "/echo")
        await asyncio.sleep(20 * UNIT)
    finally:
        returncode, err = await stop(process)
    assert returncode == 0
    assert "sockjs_server.sessions" not in err
    assert "/xhr_send" in err  # --access-log all
    process, lines = await start_server(["echo", "--port", "0", "--access-log", "off", "--log-level", "warning"], 1)
    try:
        await xhr_session(base_of(lines[0]), "/echo")
    finally:
        returncode, err = await stop(process)
    assert returncode == 0
    assert err == ""


INNER_TEST = '''
import subprocess, sys, time
from pathlib import Path

def test_holds_a_server():
    server = subprocess.Popen([sys.executable, "-m", "sockjs_server", "echo", "--port", "0"], cwd=ROOT)
    Path(PIDFILE).write_text(str(server.pid))
    time.sleep(600)
'''


def test_a_killed_test_run_leaves_no_server(tmp_path: Path) -> None:
    """SIGTERM to pytest while a test holds a server: the server goes too."""
    pidfile = tmp_path / "server.pid"
    (tmp_path / "test_inner.py").write_text(f"ROOT = {str(ROOT)!r}\nPIDFILE = {str(pidfile)!r}\n" + INNER_TEST)
    runner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "process_cleanup", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        stdout=(tmp_path / "output").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(int(6 * GUARD / UNIT)):
            if (pidfile.exists() and pidfile.read_text()) or runner.poll() is not None:
                break
            time.sleep(UNIT)
        assert pidfile.exists(), (tmp_path / "output").read_text()
        server_pid = int(pidfile.read_text())
        assert process_alive(server_pid)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=GUARD) == -signal.SIGTERM
        for _ in range(int(GUARD / UNIT)):
            if not process_alive(server_pid):
                break
            time.sleep(UNIT)
        assert not process_alive(server_pid), "the server outlived its test run"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


async def test_echo_on_uvicorn_serves_every_kind_of_request() -> None:
    pytest.importorskip("uvicorn")
    process, lines = await start_server(["echo", "--port", "0", "--server", "uvicorn", "--no-session-log"], 1)
    try:
        assert re.fullmatch(r"SockJS echo at http://127\.0\.0\.1:\d+/echo", lines[0]), lines
        base = base_of(lines[0]) + "/echo"
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as response:
                assert await response.text() == "Welcome to SockJS!\n"
            async with http.post(base + "/0/cli/xhr") as response:
                assert await response.text() == "o\n"
            async with http.post(base + "/0/cli/xhr_send", data=b'["hi"]') as response:
                assert response.status == 204
            async with http.post(base + "/0/cli/xhr") as response:
                assert await response.text() == 'a["hi"]\n'
            async with http.ws_connect(base + "/0/ws/websocket") as ws:
                assert await bounded(ws.receive_str()) == "o"
                await ws.send_str('["ws"]')
                assert await bounded(ws.receive_str()) == 'a["ws"]'
    finally:
        returncode, _ = await stop(process)
    assert returncode == 0


@pytest.mark.parametrize("server", ["uvicorn", "granian", "builtin"])
async def test_metrics_path_on_the_asgi_servers(server: str) -> None:
    if server != "builtin":
        pytest.importorskip(server)
    pytest.importorskip("prometheus_client")
    argv = ["echo", "--port", "0", "--server", server, "--no-session-log", "--metrics-path", "/metrics"]
    process, lines = await start_server(argv, 2)
    try:
        assert re.fullmatch(r"Prometheus metrics at http://127\.0\.0\.1:\d+/metrics", lines[1]), lines
        base = base_of(lines[0])
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/echo/0/m/xhr") as response:
                assert await response.text() == "o\n"
            async with http.get(base + "/metrics") as response:
                assert response.status == 200
                text = await response.text()
            async with http.get(base + "/elsewhere") as response:
                assert response.status == 404
        assert 'sockjs_sessions_opened_total{endpoint="/echo",transport="xhr-polling"} 1.0' in text
    finally:
        returncode, _ = await stop(process)
    assert returncode == 0


@pytest.mark.parametrize("server", ["uvicorn", "granian", "builtin"])
def test_port_in_use_is_one_line_on_the_asgi_servers(server: str, busy_port: int) -> None:
    if server != "builtin":
        pytest.importorskip(server)
    result = run_cli("echo", "--server", server, "--port", str(busy_port))
    assert_one_line_error(result, f"127.0.0.1:{busy_port}", "already in use", "--port")

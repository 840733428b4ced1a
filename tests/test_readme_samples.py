"""The README as a new user reads it: every Python sample runs as pasted, in a virtual
environment made only from the package and the extras the README names above it; the extras and
command-line option tables match the code, and the demo runs from an installed package outside a
checkout."""

from __future__ import annotations

import argparse
import os
import tomllib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sockjs_client import GUARD, UNIT

from sockjs_server.cli.serving import add_run_arguments

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SAMPLES = re.findall(r"```python\n(.*?)```", README, re.S)
#: The paragraph right above each sample, where it names its extras: (`bash .ci/venv a,b`).
INTROS = [block.rstrip().rpartition("\n\n")[2] for block in re.split(r"```python\n.*?```", README, flags=re.S)[:-1]]
TEST_PORT = 61613
"""What the test set-up gives RabbitMQ: no sample may listen there."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(process: subprocess.Popen[bytes], ports: list[int]) -> None:
    for _ in range(int(3 * GUARD / UNIT)):
        if all(listening(port) for port in ports):
            return
        if process.poll() is not None:
            break
        time.sleep(UNIT)
    output = process.stdout.read().decode(errors="replace") if process.poll() is not None and process.stdout else ""
    raise AssertionError(f"the sample did not listen on {ports}: {output}")


def stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=GUARD)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError("the sample did not stop on Ctrl+C") from None
    assert process.stdout is not None
    return process.stdout.read().decode(errors="replace")


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 3 and len(INTROS) == len(SAMPLES)


def extras_of(sample: str) -> tuple[str, ...]:
    """The extras the README names for ``sample`` (none: the package alone)."""
    named = re.search(r"`bash \.ci/venv ([a-z,]+)`\):$", INTROS[SAMPLES.index(sample)])
    return tuple(sorted(named.group(1).split(","))) if named else ()


_ENVIRONMENTS: dict[tuple[str, ...], str] = {}


def python_for(sample: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python of a virtual environment holding the package (editable, as from a checkout)
    and only the extras the README names for ``sample``; one per set of extras, made once."""
    extras = extras_of(sample)
    if extras not in _ENVIRONMENTS:
        venv = tmp_path_factory.mktemp("venv-" + ("-".join(extras) or "package"))
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        python = str(venv / "bin" / "python")
        target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
        install = subprocess.run(
            [sys.executable, "-m", "pip", "--python", python, "install", "-q", "-e", target],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert install.returncode == 0, install.stderr
        _ENVIRONMENTS[extras] = python
    return _ENVIRONMENTS[extras]


def test_samples_name_the_extras_they_import() -> None:
    frameworks = {"uvicorn": "uvicorn", "starlette": "starlette", "fastapi": "fastapi", "granian": "granian"}
    for sample in SAMPLES:
        imported = {extra for module, extra in frameworks.items() if re.search(rf"^(from|import) {module}\b", sample, re.M)}
        if "asgi_granian import" in sample or "servers.granian import" in sample:
            imported.add("granian")
        assert imported <= set(extras_of(sample)), (sorted(imported), extras_of(sample), sample[:200])


def test_extras_table_matches_pyproject() -> None:
    table = re.search(r"<!-- extras-table:.*?-->\n(.*?)<!-- /extras-table -->", README, re.S)
    assert table, "the README's table of extras"
    documented = set(re.findall(r"^\| `([a-z]+)` \|", table.group(1), re.M))
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert documented == declared
    from sockjs_server.core.extras import EXTRAS, install_hint

    assert set(EXTRAS) <= declared
    for extra in EXTRAS:
        assert f"bash .ci/venv {extra}" in install_hint(extra) and f".[{extra}]" in install_hint(extra)


def test_no_install_line_names_the_package_index() -> None:
    # The package is not on the index: `pip install 'sockjs-server[x]'` would fail.
    pattern = re.compile(r"pip install '?sockjs[-_]server\[")
    files = [ROOT / "README.md", *sorted((ROOT / "sockjs_server").rglob("*.py"))]
    assert [str(f.relative_to(ROOT)) for f in files if pattern.search(f.read_text())] == []


@pytest.mark.venv
@pytest.mark.parametrize("sample", SAMPLES, ids=[f"sample{n}" for n in range(len(SAMPLES))])
def test_sample_runs_as_pasted(sample: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Start the sample, wait for each port it listens on, stop it with Ctrl+C.

    Only the port numbers are changed (to free ones: other servers may use the
    documented ones on a shared machine); the code is run as written, in an
    environment of the package and the extras the README names for it.
    """
    assert f"port={TEST_PORT}" not in sample, "a sample listens on the port the tests give RabbitMQ"
    ports: list[int] = []

    def free(match: re.Match[str]) -> str:
        ports.append(free_port())
        return f"port={ports[-1]}"

    code = re.sub(r"(?<![\w.])port=\d+", free, sample)
    assert ports, "every sample serves something"
    (tmp_path / "sample.py").write_text(code)
    process = subprocess.Popen(
        [python_for(sample, tmp_path_factory), "sample.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_listening(process, ports)
    finally:
        output = stop(process)
    assert "Traceback" not in output, output


ASGI_SAMPLES = [sample for sample in SAMPLES if "SockJSApp(" in sample]


def test_there_are_asgi_samples() -> None:
    assert any("starlette" in sample for sample in ASGI_SAMPLES)
    assert any("fastapi" in sample for sample in ASGI_SAMPLES)


@pytest.mark.venv
@pytest.mark.parametrize("sample", ASGI_SAMPLES, ids=[f"asgi{n}" for n in range(len(ASGI_SAMPLES))])
def test_asgi_sample_serves_sockjs_where_it_is_mounted(sample: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The ASGI samples answer SockJS requests below their mount path."""
    mount = re.search(r'[Mm]ount\("(/\w+)"|SockJSRouter\(\{"(/\w+)"', sample)
    assert mount, "the sample mounts its endpoint"
    port = free_port()
    (tmp_path / "sample.py").write_text(re.sub(r"(?<![\w.])port=\d+", f"port={port}", sample))
    process = subprocess.Popen(
        [python_for(sample, tmp_path_factory), "sample.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_listening(process, [port])
        base = f"http://127.0.0.1:{port}{mount.group(1) or mount.group(2)}"
        with urllib.request.urlopen(base + "/info", timeout=GUARD) as response:
            assert b'"websocket": true' in response.read()
        opened = urllib.request.Request(base + "/000/readme/xhr", method="POST")
        with urllib.request.urlopen(opened, timeout=GUARD) as response:
            assert response.read() == b"o\n"
    finally:
        output = stop(process)
    assert "Traceback" not in output, output


def test_no_stomp_port_example_collides_with_the_tests() -> None:
    assert not re.search(rf"--stomp-port {TEST_PORT}|tcp_listener\([^)]*port={TEST_PORT}", README)


def test_run_options_table_matches_the_code() -> None:
    table = re.search(r"<!-- cli-run-options:.*?-->\n(.*?)<!-- /cli-run-options -->", README, re.S)
    assert table, "the README's table of the options every server subcommand takes"
    rows = [line for line in table.group(1).splitlines() if line.startswith("| `")]
    documented = {re.match(r"\| `([^`]+)`", row).group(1): row for row in rows}  # type: ignore[union-attr]
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    options = {
        max(action.option_strings, key=len): action
        for action in parser._actions
        if action.option_strings and action.dest not in ("help", "verbose")
    }
    assert set(documented) == set(options)
    for name, action in options.items():
        default = "off" if action.default in (None, False) else f"`{action.default}`"
        assert f"| `{name}` | {default} |" in documented[name], (name, documented[name])


# -- installed from a package, outside a checkout --------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built as a wheel and installed into a directory of its own."""
    work = tmp_path_factory.mktemp("installed")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheels = list((work / "dist").glob("sockjs_server-*.whl"))
    assert len(wheels) == 1
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(work / "site"), str(wheels[0])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    assert not (work / "site" / "demo").exists()  # the page is not in the package
    return work


def run_installed(installed: Path, *argv: str) -> subprocess.Popen[bytes]:
    # PYTHONPATH puts the installed copy first; the dependencies come from this environment.
    env = {**os.environ, "PYTHONPATH": str(installed / "site")}
    return subprocess.Popen(
        [sys.executable, "-m", "sockjs_server", *argv],
        cwd=installed,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_installed_package_is_the_one_running(installed: Path) -> None:
    code = "import sockjs_server, sys; print(sockjs_server.__file__)"
    env = {**os.environ, "PYTHONPATH": str(installed / "site")}
    done = subprocess.run([sys.executable, "-c", code], cwd=installed, env=env, capture_output=True, text=True)
    assert done.stdout.strip().startswith(str(installed / "site")), done.stdout
    process = run_installed(installed, "--version")
    assert process.wait(timeout=GUARD) == 0
    assert process.stdout is not None and process.stdout.read().decode().startswith("sockjs-server ")


def test_installed_demo_without_its_folder_says_what_to_do(installed: Path) -> None:
    process = run_installed(installed, "demo", "--port", str(free_port()))
    assert process.wait(timeout=GUARD) == 2
    assert process.stdout is not None
    output = process.stdout.read().decode()
    assert "--demo-dir" in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_installed_demo_serves_the_folder_given(installed: Path) -> None:
    demo = ROOT / "demo"
    if not (demo / "node_modules").is_dir():
        pytest.skip("demo/node_modules is missing: npm ci --prefix demo (CI installs it)")
    port = free_port()
    process = run_installed(installed, "demo", "--port", str(port), "--demo-dir", str(demo))
    try:
        wait_listening(process, [port])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=GUARD) as response:
            assert response.status == 200
            assert b"<html" in response.read().lower()
    finally:
        output = stop(process)
    assert f"Chat demo at http://127.0.0.1:{port}/" in output, output
    assert "Traceback" not in output

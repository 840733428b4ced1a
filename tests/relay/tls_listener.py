"""A TLS STOMP listener of the local RabbitMQ, with a throw-away CA, for the relay's TLS tests.

``openssl`` makes a CA and a server certificate for ``localhost`` /
``127.0.0.1`` in a temporary directory; ``rabbitmqctl eval`` then starts one
more listener of RabbitMQ's STOMP plugin (``stomp/ssl``, the listener that
``stomp.listeners.ssl.1`` and ``ssl_options.*`` would configure at boot) on a
free port with these files, next to the plain one, and removes it again when
the test ends. Nothing is restarted and the broker's configuration files are
not touched, so a running broker needs no preparation and other users of it
are not disturbed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tcp_proxy import free_port

_START = """
fun() ->
  [Plain | _] = [Id || {Id, _, _, _} <- supervisor:which_children(rabbit_stomp_sup),
                       lists:suffix(":@PLAIN_PORT@", atom_to_list(Id))],
  {ok, #{start := {_, _, [_, _, _, _, _, Conf | _]}}} = supervisor:get_childspec(rabbit_stomp_sup, Plain),
  {ok, SockOpts} = application:get_env(rabbitmq_stomp, tcp_listen_options),
  _ = rabbit_networking:ensure_ssl(),
  Ssl = [{cacertfile, "@CA@"}, {certfile, "@CERT@"}, {keyfile, "@KEY@"},
         {verify, verify_none}, {fail_if_no_peer_cert, false}],
  [Address] = rabbit_networking:tcp_listener_addresses({"127.0.0.1", @PORT@}),
  Spec = rabbit_networking:tcp_listener_spec(rabbit_stomp_listener_sup, Address, SockOpts ++ Ssl, ranch_ssl,
           rabbit_stomp_client_sup, Conf, 'stomp/ssl', 2, 1, "STOMP TLS listener (test)"),
  supervisor:start_child(rabbit_stomp_sup, Spec)
end().
"""

_STOP = """
Id = list_to_atom("rabbit_stomp_listener_sup_127.0.0.1:@PORT@"),
{supervisor:terminate_child(rabbit_stomp_sup, Id), supervisor:delete_child(rabbit_stomp_sup, Id)}.
"""


@dataclass(frozen=True)
class TlsListener:
    port: int
    ca: Path  # the CA that signed the broker's certificate
    other_ca: Path  # a CA that did not


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> Path:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def make_server_cert(directory: Path, ca: str) -> tuple[Path, Path]:
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=directory)  # fmt: skip
    return directory / "server.pem", directory / "server.key"


def _fill(template: str, **values: object) -> str:
    for name, value in values.items():
        template = template.replace(f"@{name}@", str(value))
    return template


def _eval(code: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", "eval", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl eval failed: {done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def tls_listener(plain_port: int = 61613) -> Iterator[TlsListener]:
    """Start a TLS STOMP listener on a free port for the duration of the block."""
    if shutil.which("openssl") is None or shutil.which("rabbitmqctl") is None:
        raise RuntimeError("the TLS relay test needs openssl and rabbitmqctl (.ci/install-rabbitmq installs them)")
    directory = Path(tempfile.mkdtemp(prefix="relay-tls-"))
    try:
        os.chmod(directory, 0o755)  # the broker runs as its own user and reads the files
        ca = make_ca(directory, "test-ca")
        other = make_ca(directory, "other-ca")
        cert, key = make_server_cert(directory, "test-ca")
        for path in directory.iterdir():
            os.chmod(path, 0o644)
        port = free_port()
        out = _eval(_fill(_START, PLAIN_PORT=plain_port, CA=ca, CERT=cert, KEY=key, PORT=port))
        if not out.startswith("{ok,"):
            raise RuntimeError(f"RabbitMQ did not start the TLS STOMP listener: {out}")
        try:
            yield TlsListener(port, ca, other)
        finally:
            _eval(_fill(_STOP, PORT=port))
    finally:
        shutil.rmtree(directory, ignore_errors=True)

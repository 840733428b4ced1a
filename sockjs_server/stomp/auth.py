"""Who is connected: principals, what the hooks are given, hook types, and the
users file the command line checks logins against."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import tempfile
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Union

from .errors import AccessDenied
from .frames import Command, Version

__all__ = [
    "Principal",
    "ConnectionInfo",
    "ConnectInfo",
    "Authenticator",
    "Authorizer",
    "Users",
    "UsersAuthenticator",
    "UsersFileError",
    "hash_password",
    "verify_password",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user. ``name`` is what user destinations address."""

    name: str
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What handlers and hooks may know about a client connection."""

    #: The STOMP session id (the ``session`` header of CONNECTED).
    session_id: str
    #: "websocket", "xhr-streaming", ... for SockJS sessions; "tcp" for the TCP listener.
    transport: str
    remote: str | None = None
    #: HTTP headers of the request that opened the SockJS session (empty over TCP).
    http_headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cookies: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    principal: Principal | None = None
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """Input of the ``authenticate`` hook: the CONNECT frame and its transport."""

    login: str | None
    passcode: str | None
    host: str | None
    #: All CONNECT headers, first value of each.
    headers: Mapping[str, str]
    connection: ConnectionInfo


#: ``authenticate(info)`` returns a Principal, a user name, or None to refuse
#: (it may also raise AccessDenied with its own message). May be async.
Authenticator = Callable[[ConnectInfo], Union[Principal, str, None, Awaitable[Union[Principal, str, None]]]]

#: ``authorize(principal, command, destination)`` returns True to allow a SEND
#: or SUBSCRIBE. May be async.
Authorizer = Callable[[Union[Principal, None], Command, str], Union[bool, Awaitable[bool]]]


# --- users file: login/passcode checking for the command line ---------------------------------

#: scrypt cost parameters of new hashes (RFC 7914's interactive-login figures: 16 MiB, tens of ms).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_SALT_BYTES = 16
_SCHEME = "scrypt"
#: The ``version`` header RabbitMQ's STOMP plugin puts on a refused CONNECT's ERROR.
_VERSIONS_HEADER = (("version", "1.0,1.1,1.2"),)


class UsersFileError(ValueError):
    """The users file cannot be read or parsed (the message names the file and line)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password`` with a fresh random salt."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=_maxmem(n, r, p))
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _maxmem(n: int, r: int, p: int) -> int:
    # scrypt needs 128 * r * (n + p) bytes; leave room over OpenSSL's 32 MiB default.
    return 128 * r * (n + p) + 1024 * 1024


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown password scheme {scheme!r}")
    values = int(n), int(r), int(p)
    # Bounds keep a tampered file from making a CONNECT cost gigabytes or minutes.
    if not (2 <= values[0] <= 2**20 and values[0] & (values[0] - 1) == 0 and 1 <= values[1] <= 32 and 1 <= values[2] <= 16):
        raise ValueError("scrypt parameters out of range")
    return *values, base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` result (constant-time comparison)."""
    try:
        n, r, p, salt, expected = _parse_hash(stored)
    except ValueError:
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=_maxmem(n, r, p)
    )
    return hmac.compare_digest(digest, expected)


def _check_name(name: str) -> None:
    if not name or name != name.strip() or any(c in name for c in ":\r\n\0") or name.startswith("#"):
        raise ValueError(f"invalid user name {name!r}: not empty, no surrounding spaces, no ':' or line breaks, not starting with '#'")


class Users:
    """Users and their scrypt password hashes, as kept in a users file.

    The file has one ``name:scrypt$N$r$p$salt$hash`` line per user; empty
    lines and lines starting with ``#`` are ignored. Passwords are never
    stored, only salted scrypt hashes (:func:`hash_password`).
    """

    def __init__(self, hashes: Mapping[str, str] | None = None) -> None:
        self._hashes: dict[str, str] = dict(hashes or {})
        # Unknown names are checked against this, so they take as long as known ones.
        self._dummy = hash_password("")

    def __contains__(self, name: object) -> bool:
        return name in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def names(self) -> list[str]:
        return sorted(self._hashes)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Users:
        """Read a users file; :class:`UsersFileError` says which line is wrong."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsersFileError(f"{path}: cannot read the users file: {exc}") from None
        hashes: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, stored = line.rpartition(":")
            try:
                if not sep:
                    raise ValueError("expected name:hash")
                _check_name(name)
                _parse_hash(stored)
            except ValueError as exc:
                raise UsersFileError(f"{path}, line {number}: {exc}") from None
            if name in hashes:
                raise UsersFileError(f"{path}, line {number}: user {name!r} appears twice")
            hashes[name] = stored
        return cls(hashes)

    def set_password(self, name: str, password: str) -> None:
        """Add ``name`` or replace its password."""
        _check_name(name)
        if not password:
            raise ValueError("the password must not be empty")
        self._hashes[name] = hash_password(password)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file atomically, readable by its owner only."""
        target = Path(path)
        lines = ["# sockjs-server STOMP users: name:scrypt$N$r$p$salt$hash (sockjs-server stomp adduser)"]
        lines += [f"{name}:{stored}" for name, stored in sorted(self._hashes.items())]
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def check(self, name: str, password: str) -> bool:
        """Whether ``name`` exists and ``password`` is its password (same cost either way)."""
        stored = self._hashes.get(name)
        ok = verify_password(password, stored if stored is not None else self._dummy)
        return ok and stored is not None


class UsersAuthenticator:
    """An :data:`Authenticator` checking CONNECT against :class:`Users` and known virtual hosts.

    As RabbitMQ's STOMP plugin does: the ``host`` header names the virtual
    host (``default_vhost`` when absent); an unknown one is refused with
    ``ERROR message:Bad CONNECT`` ``Virtual host '<host>' access denied``, a
    wrong login or passcode with ``Access refused for user '<login>'``.
    A missing ``login`` or ``passcode`` counts as empty (RabbitMQ would use
    its configured default user; there is none here). The scrypt check runs
    in a worker thread so it never stalls the event loop.
    """

    def __init__(self, users: Users, vhosts: Collection[str] = ("/",), default_vhost: str = "/") -> None:
        if default_vhost not in vhosts:
            raise ValueError(f"the default virtual host {default_vhost!r} is not among the virtual hosts")
        self.users = users
        self.vhosts = frozenset(vhosts)
        self.default_vhost = default_vhost

    async def __call__(self, info: ConnectInfo) -> Principal:
        vhost = info.host if info.host is not None else self.default_vhost
        if vhost not in self.vhosts:
            raise AccessDenied("Bad CONNECT", f"Virtual host '{vhost}' access denied", headers=_VERSIONS_HEADER)
        login = info.login or ""
        passcode = info.passcode or ""
        ok = await asyncio.get_running_loop().run_in_executor(None, self.users.check, login, passcode)
        if not ok:
            raise AccessDenied("Bad CONNECT", f"Access refused for user '{login}'\n", headers=_VERSIONS_HEADER)
        return Principal(login, MappingProxyType({"vhost": vhost}))

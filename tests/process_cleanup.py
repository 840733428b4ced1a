"""Servers started by the tests never outlive the test run.

Tests start real server processes (``sockjs-server``, Node, HAProxy, Chromium)
and stop them in ``finally`` blocks, which do not run when the run itself is
killed. On SIGTERM or SIGHUP (CI cancelling a job, a closed terminal) this
terminates every process the run started, children of children included, then
lets the signal end the run as it would have. Linux (reads ``/proc``).

Loaded by ``tests/conftest.py``; ``-p process_cleanup`` loads it elsewhere.
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType

__all__ = ["descendants", "install", "terminate_descendants"]

_installed = False


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def terminate_descendants(grace: float = 3.0) -> None:
    """SIGTERM every descendant of this process, SIGKILL those still there after ``grace`` seconds."""
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [pid for pid in pids if _alive(pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        # Reap our own children so they do not linger as zombies.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    terminate_descendants()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install() -> None:
    """Clean up on SIGTERM and SIGHUP (once per process; main thread only)."""
    global _installed
    if _installed or not os.path.isdir("/proc"):
        return
    _installed = True
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)


def pytest_configure(config: object) -> None:
    install()

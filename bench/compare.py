#!/usr/bin/env python3
"""Benchmark sockjs_server against its peers in one run.

    python3 bench/compare.py                 # full run (>= 3 repetitions), rewrites bench/RESULTS.md
    python3 bench/compare.py --quick         # smoke run: 1 repetition, short steps, bench/.work/RESULTS-quick.md
    python3 bench/compare.py --scenarios ws-pingpong,broadcast --servers ours,sockjs-node

It installs the peers into bench-local environments (bench/.envs/), starts every
server pinned to core 0 (taskset -c 0) with the load generator on core 1, runs each
scenario interleaved (A B C A B C ...), prints medians and ratios, and stops every
server it started, also on Ctrl-C and on errors.  Standard library only.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ENVS = BENCH / ".envs"
WORK = BENCH / ".work"
PY_ENV = ENVS / "py"
NODE_ENV = ENVS / "node"
BIN_DIR = ENVS / "bin"
HOST = "127.0.0.1"
CANDIDATE = [""]  # --candidate: another checkout of sockjs_server to measure side by side
OURS_EXTRA: list[str] = []  # --metrics: arguments only server "ours" gets
OURS_PATH = [str(REPO)]  # where sockjs_server is imported from: a snapshot taken when the run starts
NICE = [0]  # --nice


def _pinned(cpu: str, cmd: list[str]) -> list[str]:
    prefix = ["nice", "-n", str(NICE[0])] if NICE[0] else []
    return [*prefix, "taskset", "-c", cpu, *cmd]


SERVER_CPU = "0"
LOAD_CPU = "1"

# ------------------------------------------------------------------ servers


@dataclasses.dataclass(frozen=True)
class Server:
    key: str
    label: str
    argv: Callable[[int, str], list[str]]  # (port, scenario) -> command
    env: Callable[[], dict[str, str]]
    skip: frozenset[str] = frozenset()  # scenarios it does not serve
    default: bool = True  # part of "--servers all"


def _py() -> str:
    return str(PY_ENV / "bin" / "python")


RABBITMQ_STOMP = ("127.0.0.1", 61613)


def _relay_args(scenario: str) -> list[str]:
    if scenario != "stomp-rabbitmq":
        return []
    return ["--relay", f"stomp://guest:guest@{RABBITMQ_STOMP[0]}:{RABBITMQ_STOMP[1]}/"]


def rabbitmq_pending() -> str | None:
    """None if the RabbitMQ relay scenario can run, else why not."""
    probe = subprocess.run([_py(), "-c", "from sockjs_server.stomp.relay import relay_from_url"],
                           env={**os.environ, "PYTHONPATH": OURS_PATH[0]}, capture_output=True)
    if probe.returncode:
        return "needs sockjs_server.stomp.relay (the RabbitMQ relay)"
    try:
        socket.create_connection(RABBITMQ_STOMP, timeout=1).close()
    except OSError:
        return f"needs RabbitMQ's STOMP plugin listening on {RABBITMQ_STOMP[0]}:{RABBITMQ_STOMP[1]}"
    return None


SERVERS: dict[str, Server] = {
    s.key: s
    for s in [
        Server(
            "ours",
            "sockjs_server",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_server.py"), "--host", HOST, "--port", str(port),
                              *_relay_args(sc), *OURS_EXTRA],
            lambda: {"PYTHONPATH": OURS_PATH[0]},
        ),
        Server(
            "ours-uvloop",
            "sockjs_server + uvloop",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_server.py"), "--host", HOST, "--port", str(port),
                              "--loop", "uvloop", *_relay_args(sc)],
            lambda: {"PYTHONPATH": OURS_PATH[0]},
            default=False,
        ),
        Server(
            "ours-asgi",
            "sockjs_server ASGI on uvicorn",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_asgi_server.py"), "--host", HOST, "--port", str(port)],
            lambda: {"PYTHONPATH": OURS_PATH[0]},
            skip=frozenset({"stomp-rabbitmq"}),
            default=False,
        ),
        Server(
            "ours-granian",
            "sockjs_server ASGI on granian",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_asgi_server.py"), "--host", HOST, "--port", str(port),
                              "--server", "granian"],
            lambda: {"PYTHONPATH": OURS_PATH[0]},
            skip=frozenset({"stomp-rabbitmq"}),
            default=False,
        ),
        Server(
            "ours-builtin",
            "sockjs_server ASGI on its own server",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_asgi_server.py"), "--host", HOST, "--port", str(port),
                              "--server", "builtin"],
            lambda: {"PYTHONPATH": OURS_PATH[0]},
            skip=frozenset({"stomp-rabbitmq"}),
            default=False,
        ),
        Server(
            "candidate-builtin",
            "candidate ASGI on its own server",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_asgi_server.py"), "--host", HOST, "--port", str(port),
                              "--server", "builtin"],
            lambda: {"PYTHONPATH": CANDIDATE[0]},
            skip=frozenset({"stomp-rabbitmq"}),
            default=False,
        ),
        Server(
            "candidate-asgi",
            "candidate ASGI on uvicorn",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_asgi_server.py"), "--host", HOST, "--port", str(port)],
            lambda: {"PYTHONPATH": CANDIDATE[0]},
            skip=frozenset({"stomp-rabbitmq"}),
            default=False,
        ),
        Server(
            "candidate-granian",
            "candidate ASGI on granian",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_asgi_server.py"), "--host", HOST, "--port", str(port),
                              "--server", "granian"],
            lambda: {"PYTHONPATH": CANDIDATE[0]},
            skip=frozenset({"stomp-rabbitmq"}),
            default=False,
        ),
        Server(
            "candidate",
            "sockjs_server candidate",
            lambda port, sc: [_py(), str(BENCH / "servers" / "ours_server.py"), "--host", HOST, "--port", str(port),
                              *_relay_args(sc)],
            lambda: {"PYTHONPATH": CANDIDATE[0]},
            default=False,
        ),
        Server(
            "sockjs-node",
            "sockjs-node 0.3.24",
            lambda port, sc: ["node", str(BENCH / "servers" / "sockjs_node_server.js"), "--host", HOST, "--port", str(port)],
            lambda: {"NODE_PATH": str(NODE_ENV / "node_modules")},
            skip=frozenset({"stomp-rabbitmq"}),
        ),
        Server(
            "aio-libs",
            "aio-libs sockjs 0.13.0",
            lambda port, sc: [_py(), str(BENCH / "servers" / "aiolibs_sockjs_server.py"), "--host", HOST, "--port", str(port)],
            lambda: {},
            skip=frozenset({"stomp-rabbitmq"}),
        ),
        Server(
            "bare",
            "bare aiohttp",
            lambda port, sc: [_py(), str(BENCH / "servers" / "bare_aiohttp_server.py"), "--host", HOST, "--port", str(port)],
            lambda: {},
            skip=frozenset({"stomp-memory", "stomp-rabbitmq"}),
        ),
        Server(
            "bare-uvloop",
            "bare aiohttp + uvloop",
            lambda port, sc: [_py(), str(BENCH / "servers" / "bare_aiohttp_server.py"), "--host", HOST, "--port", str(port),
                              "--loop", "uvloop"],
            lambda: {},
            skip=frozenset({"stomp-memory", "stomp-rabbitmq"}),
            default=False,
        ),
    ]
}

OUR_VARIANTS = ("ours-uvloop", "ours-asgi", "ours-granian", "ours-builtin", "candidate", "candidate-asgi", "candidate-granian",
                "candidate-builtin")
"""Servers running sockjs_server besides "ours": each gets a ratio against sockjs-node."""
BASELINE = {"candidate": "ours", "candidate-asgi": "ours-asgi", "candidate-granian": "ours-granian",
            "candidate-builtin": "ours-builtin"}
"""A candidate server and the same server of this checkout (a ratio column when both run)."""

# ------------------------------------------------------------------ scenarios


@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    metric: str  # key in the load generator's result
    unit: str
    higher_is_better: bool
    websocket: bool  # served by the bare aiohttp server too
    config: Callable[[bool], dict[str, Any]]  # quick -> load generator config
    pending: str | None = None


def _echo(transport: str, window: int, size: int = 16, batch: int = 1) -> Callable[[bool], dict[str, Any]]:
    def config(quick: bool) -> dict[str, Any]:
        return {
            "kind": "echo",
            "transport": transport,
            "sessions": 50,
            "window": window,
            "size": size,
            "batch": batch,
            "warmup": 0.5 if quick else 1.0,
            "duration": 1.5 if quick else 3.0,
        }

    return config


def _broadcast(quick: bool) -> dict[str, Any]:
    return {
        "kind": "broadcast",
        "sessions": 1000,
        "p99_limit_ms": 100,
        "start_rate": 20,
        "factor": 1.6,
        "bisect": 2 if quick else 3,
        "step_seconds": 0.8 if quick else 1.25,
        "max_search_s": 20 if quick else 40,
    }


def _stomp(quick: bool) -> dict[str, Any]:
    return {**_broadcast(quick), "kind": "stomp", "prefix": "/stomp"}


def _stomp_relay(quick: bool) -> dict[str, Any]:
    return {**_stomp(quick), "prefix": "/stomp-relay"}


def _idle(transport: str, sessions: int) -> Callable[[bool], dict[str, Any]]:
    def config(quick: bool) -> dict[str, Any]:
        return {
            "kind": "idle",
            "transport": transport,
            "sessions": sessions,
            "warm_sessions": 100,
            "open_concurrency": 100,
            "settle_s": 0.5 if quick else 2.0,
            "open_timeout_s": 60,
        }

    return config


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in [
        Scenario("ws-echo", "websocket echo, 50 sessions, 16 B messages, 16 in flight each",
                 "msgs_per_s", "msg/s", True, True, _echo("websocket", 16)),
        Scenario("ws-echo-1k", "websocket echo, 50 sessions, 1 KiB messages, 16 in flight each",
                 "msgs_per_s", "msg/s", True, True, _echo("websocket", 16, size=1024)),
        Scenario("ws-pingpong", "websocket ping-pong, 50 sessions, 1 in flight each",
                 "msgs_per_s", "msg/s", True, True, _echo("websocket", 1)),
        Scenario("xhr-streaming", "xhr-streaming echo (xhr_send), 50 sessions, 10 in flight each",
                 "msgs_per_s", "msg/s", True, False, _echo("xhr_streaming", 10)),
        Scenario("xhr-polling", "xhr-polling echo (xhr_send), 50 sessions, 10 in flight each",
                 "msgs_per_s", "msg/s", True, False, _echo("xhr", 10)),
        Scenario("eventsource", "eventsource receive: echo of 10-message xhr_send batches, 50 sessions",
                 "msgs_per_s", "msg/s", True, False, _echo("eventsource", 20, batch=10)),
        Scenario("broadcast", "broadcast to 1000 websocket sessions, highest rate with p99 < 100 ms",
                 "deliveries_per_s", "deliveries/s", True, True, _broadcast),
        Scenario("idle-ws", "idle: 5000 websocket sessions, server RSS per session",
                 "kib_per_session", "KiB/session", False, True, _idle("websocket", 5000)),
        Scenario("idle-xhr-streaming", "idle: 2000 xhr-streaming sessions, server RSS per session",
                 "kib_per_session", "KiB/session", False, False, _idle("xhr_streaming", 2000)),
        Scenario("stomp-memory", "STOMP over SockJS websocket: 1 publisher -> 1000 subscribers of one topic, "
                 "MemoryBroker (peers: a minimal STOMP topic fan-out script), highest rate with p99 < 100 ms",
                 "deliveries_per_s", "deliveries/s", True, False, _stomp),
        Scenario("stomp-rabbitmq", "STOMP over SockJS websocket: 1 publisher -> 1000 subscribers of one topic "
                 "through the RabbitMQ relay (sockjs_server only: the peers have no relay)",
                 "deliveries_per_s", "deliveries/s", True, False, _stomp_relay),
    ]
}

# ------------------------------------------------------------------ processes

_started: list[subprocess.Popen[bytes]] = []


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=3)
    if proc in _started:
        _started.remove(proc)


def stop_all() -> None:
    for proc in list(_started):
        _stop(proc)


def _on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(server: Server, log_dir: Path, scenario: str = "") -> Iterator[tuple[int, int]]:
    """Start ``server`` on core 0 in its own process group; yield (port, pid); stop it."""
    port = _free_port()
    env = {**os.environ, **server.env(), "PYTHONUNBUFFERED": "1"}
    log = open(log_dir / f"{server.key}-{port}.log", "wb")
    proc = subprocess.Popen(
        _pinned(SERVER_CPU, server.argv(port, scenario)),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _started.append(proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.label} exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.label} did not listen on {port} within 30 s")
            time.sleep(0.05)
        time.sleep(0.3)
        yield port, proc.pid  # nice and taskset exec the server: same pid
    finally:
        _stop(proc)
        log.close()


WSLOAD = BIN_DIR / "wsload"
USE_WSLOAD = True


def run_load(config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the load generator on core 1 and return its JSON result.

    Websocket scenarios use wsload (C, epoll), the HTTP transports loadgen.js (Node, raw sockets).
    """
    if config.get("kind") == "stomp" or (USE_WSLOAD and WSLOAD.exists() and config.get("transport", "websocket") == "websocket"):
        cmd = [str(WSLOAD), *(f"{k}={v}" for k, v in config.items() if k != "transport")]
    else:
        cmd = ["node", str(BENCH / "loadgen" / "loadgen.js"), json.dumps(config)]
    cmd = _pinned(LOAD_CPU, cmd)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _started.append(proc)  # type: ignore[arg-type]
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)  # type: ignore[arg-type]
        return {"error": f"load generator timed out after {timeout:.0f} s"}
    except BaseException:
        _stop(proc)  # type: ignore[arg-type]
        raise
    finally:
        if proc in _started:
            _started.remove(proc)  # type: ignore[arg-type]
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": f"load generator failed: {err.decode(errors='replace')[-400:]}"}
    return dict(json.loads(lines[-1]))


# ------------------------------------------------------------------ environments


def _digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def our_requirements() -> list[str]:
    """Our declared runtime dependencies (and optional speed-ups), read from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra, deps in project.get("optional-dependencies", {}).items():
        if extra in {"speedups", "speed", "fast", "uvloop", "orjson", "metrics", "uvicorn", "granian"}:
            reqs += deps
    return reqs


def ensure_envs(log: Callable[[str], None]) -> None:
    ENVS.mkdir(parents=True, exist_ok=True)
    reqs = BENCH / "requirements-peers.txt"
    ours = our_requirements()
    stamp = PY_ENV / ".bench-stamp"
    want = _digest(reqs, extra="\n".join(ours))
    if not stamp.exists() or stamp.read_text() != want:
        log(f"installing the Python peers into {PY_ENV.relative_to(REPO)} ...")
        if not (PY_ENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(PY_ENV)], check=True)
        subprocess.run([_py(), "-m", "pip", "install", "-q", "-r", str(reqs), *ours], check=True)
        stamp.write_text(want)
    pkg = BENCH / "peers-node" / "package.json"
    lock = BENCH / "peers-node" / "package-lock.json"
    stamp = NODE_ENV / ".bench-stamp"
    want = _digest(pkg, lock)
    if not stamp.exists() or stamp.read_text() != want:
        log(f"installing sockjs-node into {NODE_ENV.relative_to(REPO)} ...")
        NODE_ENV.mkdir(parents=True, exist_ok=True)
        shutil.copy(pkg, NODE_ENV / "package.json")
        shutil.copy(lock, NODE_ENV / "package-lock.json")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_ENV, check=True)
        stamp.write_text(want)
    src = BENCH / "loadgen" / "wsload.c"
    stamp = BIN_DIR / ".wsload-stamp"
    want = _digest(src)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc and (not stamp.exists() or stamp.read_text() != want or not WSLOAD.exists()):
        log("building the websocket load generator (wsload) ...")
        BIN_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([cc, "-O2", "-o", str(WSLOAD), str(src), "-lm"], check=True)
        stamp.write_text(want)
    elif not cc:
        log("no C compiler: the Node load generator serves the websocket scenarios too")


def snapshot_ours(stamp: str) -> str:
    """Copy sockjs_server/ as it is now, so that every server of this run runs the same code
    (the work tree may change while a run goes on). Returns the commit and whether it was modified."""
    dest = WORK / "snapshots" / stamp
    shutil.copytree(REPO / "sockjs_server", dest / "sockjs_server", ignore=shutil.ignore_patterns("__pycache__"))
    OURS_PATH[0] = str(dest)
    head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "sockjs_server"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" + uncommitted changes in sockjs_server/" if dirty else "")


def ours_available() -> str | None:
    """None if our server can run, else why not."""
    probe = subprocess.run(
        [_py(), "-c", "from sockjs_server import add_endpoint, Options, Endpoint, Session"],
        env={**os.environ, "PYTHONPATH": OURS_PATH[0]},
        capture_output=True,
    )
    if probe.returncode:
        return probe.stderr.decode(errors="replace").strip().splitlines()[-1]
    return None


def _lock_paths() -> list[Path]:
    """This checkout's lock file and those of the repository's other worktrees: a run from any
    checkout of the repository shares the same two cores."""
    paths = {WORK / "bench.lock"}
    listing = subprocess.run(["git", "-C", str(REPO), "worktree", "list", "--porcelain"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if line.startswith("worktree "):
            other = Path(line.removeprefix("worktree ")) / "bench" / ".work" / "bench.lock"
            if other.exists():
                paths.add(other.resolve())
    return sorted(paths)  # one order for every run: no two runs wait for each other's second lock


def exclusive_machine(log: Callable[[str], None]) -> object:
    """Hold a lock for the whole run: two benchmark runs at once would share the cores and
    halve each other's numbers, so a second run waits for the first (also one started from
    another worktree of the repository)."""
    WORK.mkdir(parents=True, exist_ok=True)
    own = (WORK / "bench.lock").resolve()
    held = []
    for path in _lock_paths():
        lock = open(path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            log(f"another benchmark run holds {path} ({lock.read().strip() or 'unknown'}): waiting for it to end")
            fcntl.flock(lock, fcntl.LOCK_EX)
        held.append(lock)
        if path == own:
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
            lock.flush()
    return held  # keep them open: closing them releases the locks


def raise_fd_limit(log: Callable[[str], None]) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < 8192:
        log(f"warning: open files limit is {target}; the idle scenarios need about 7000 per process")
    return target


# ------------------------------------------------------------------ reporting


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def fmt_num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    if unit == "KiB/session":
        return f"{v:.1f}"
    if v >= 100_000:
        return f"{v / 1000:.0f}k"
    if v >= 10_000:
        return f"{v / 1000:.1f}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def advantage(ours: float | None, peer: float | None, higher_is_better: bool) -> float | None:
    """How many times better ours is than peer (> 1: ours is better)."""
    if ours is None or peer is None or ours <= 0 or peer <= 0:
        return None
    return ours / peer if higher_is_better else peer / ours


def fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def summarize(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for sk, per_server in results.items():
        sc = SCENARIOS[sk]
        out[sk] = {}
        for srv, runs in per_server.items():
            ok = [r for r in runs if "error" not in r and r.get(sc.metric) is not None]
            out[sk][srv] = {
                "value": _median([r[sc.metric] for r in ok]),
                "values": [r.get(sc.metric) for r in runs],
                "p50_ms": _median([r.get("p50_ms") for r in ok]),
                "p99_ms": _median([r.get("p99_ms") for r in ok]),
                "server_cpu": _median([r.get("server_cpu") for r in ok]),
                "loadgen_cpu": _median([r.get("loadgen_cpu") for r in ok]),
                # throughput per second of server CPU: steadier than raw throughput when other
                # processes share the server's core
                "per_cpu": _median([r[sc.metric] / r["server_cpu"] for r in ok
                                    if sc.higher_is_better and (r.get("server_cpu") or 0) > 0.05]),
                "errors": [r["error"] for r in runs if "error" in r]
                + [f"{r['closed_sessions']} sessions closed: {r.get('close_reasons')}" for r in ok if r.get("closed_sessions")]
                + [p for r in ok for p in r.get("problems", [])],
                "n": len(ok),
            }
    return out


def render_tables(summary: dict[str, dict[str, dict[str, Any]]], servers: list[str], pending_ours: str | None) -> str:
    lines: list[str] = []
    labels = [SERVERS[s].label for s in servers]
    head = ["scenario", "unit", *labels]
    if "ours" in servers:
        head += ["ours vs sockjs-node", "ours vs aio-libs", "ours vs bare aiohttp", "ours vs sockjs-node per CPU-s"]
    else:
        head += ["aio-libs vs sockjs-node"]
    # Our other servers (the ASGI layer, a candidate checkout) against sockjs-node, and a candidate
    # against the same server of this checkout.
    extra = [(s, "sockjs-node") for s in servers if s in OUR_VARIANTS and "sockjs-node" in servers]
    extra += [(s, BASELINE[s]) for s in servers if s in BASELINE and BASELINE[s] in servers]
    head += [f"{s} vs {peer}" for s, peer in extra]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for sk, per in summary.items():
        sc = SCENARIOS[sk]
        row = [sk, sc.unit + ("" if sc.higher_is_better else " (lower is better)")]
        for s in servers:
            cell = per.get(s)
            if s == "ours" and pending_ours:
                row.append("pending")
            elif cell is None:
                row.append("n/a")
            else:
                row.append(fmt_num(cell["value"], sc.unit) + (" ⚠" if cell["errors"] else ""))
        val = {s: (per.get(s) or {}).get("value") for s in servers}
        if "ours" in servers:
            for peer in ("sockjs-node", "aio-libs", "bare"):
                row.append(fmt_ratio(advantage(val.get("ours"), val.get(peer), sc.higher_is_better)))
            pc = {s: (per.get(s) or {}).get("per_cpu") for s in servers}
            row.append(fmt_ratio(advantage(pc.get("ours"), pc.get("sockjs-node"), True)) if sc.higher_is_better else "")
        else:
            row.append(fmt_ratio(advantage(val.get("aio-libs"), val.get("sockjs-node"), sc.higher_is_better)))
        for s, peer in extra:
            row.append(fmt_ratio(advantage(val.get(s), val.get(peer), sc.higher_is_better)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_latency_cpu(summary: dict[str, dict[str, dict[str, Any]]], servers: list[str]) -> str:
    labels = [SERVERS[s].label for s in servers]
    head = ["scenario", *[f"{lb}: p50 / p99 ms" for lb in labels]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sk, per in summary.items():
        if not SCENARIOS[sk].higher_is_better:
            continue
        row = [sk]
        for s in servers:
            c = per.get(s)
            if not c or c["p50_ms"] is None:
                row.append("–")
            else:
                row.append(f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    head = ["scenario", *[f"{lb}: server / load CPU, per server CPU-s" for lb in labels]]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sk, per in summary.items():
        if not SCENARIOS[sk].higher_is_better:
            continue
        row = [sk]
        for s in servers:
            c = per.get(s)
            if not c or c["server_cpu"] is None:
                row.append("–")
            else:
                row.append(f"{c['server_cpu'] * 100:.0f}% / {c['loadgen_cpu'] * 100:.0f}%, {fmt_num(c['per_cpu'])}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_targets(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows: list[str] = []

    def check(name: str, sk: str, peer: str, bar: float) -> None:
        # Throughput is judged per second of server CPU (steady when other processes share the
        # server's core); memory as measured.
        sc = SCENARIOS[sk]
        per = summary[sk]
        raw = advantage((per.get("ours") or {}).get("value"), (per.get(peer) or {}).get("value"), sc.higher_is_better)
        ratio = raw
        how = ""
        if sc.higher_is_better:
            ratio = advantage((per.get("ours") or {}).get("per_cpu"), (per.get(peer) or {}).get("per_cpu"), True)
            how = f" per server CPU-s (raw {fmt_ratio(raw)})"
        if ratio is None:
            rows.append(f"- {name}: not measured")
        else:
            rows.append(f"- {'met' if ratio >= bar else 'NOT met'}: {name}: {ratio:.2f}×{how} (bar {bar:g}×)")

    for sk in summary:
        if sk == "stomp-rabbitmq":
            rows.append("- stomp-rabbitmq: no peer has a RabbitMQ relay; reported for reference")
            continue
        check(f"{sk} vs sockjs-node", sk, "sockjs-node", 1.0)
        if sk in ("xhr-streaming", "xhr-polling", "eventsource"):
            check(f"{sk} vs aio-libs sockjs", sk, "aio-libs", 3.0)
        if sk in ("ws-echo", "ws-echo-1k"):
            check(f"{sk} vs bare aiohttp", sk, "bare", 0.9)
    return "\n".join(rows)


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"

    def version(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[-1]
        return "?"

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": mem,
        "kernel": platform.release(),
        "python": version([_py(), "-c", "import sys, aiohttp; print(sys.version.split()[0], 'aiohttp', aiohttp.__version__)"]),
        "node": version(["node", "--version"]),
    }


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, short steps (~3 min)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per scenario (default 3; --quick: 1)")
    ap.add_argument("--scenarios", default="all", help="comma-separated: " + ",".join(SCENARIOS))
    ap.add_argument("--servers", default="all", help="comma-separated: " + ",".join(SERVERS))
    ap.add_argument("--no-install", action="store_true", help="use bench/.envs as it is")
    ap.add_argument("--candidate", metavar="PATH", default=None,
                    help="another checkout of the repository (e.g. a git worktree with an optimisation) "
                    "measured as server 'candidate' next to the others (or 'candidate-asgi', 'candidate-granian' "
                    "given in --servers: its ASGI layer on uvicorn or granian)")
    ap.add_argument("--metrics", action="store_true",
                    help="server 'ours' also mounts its Prometheus metrics route (counters are always kept); "
                    "compare with --candidate to measure what metrics cost")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness for the servers and load generators (e.g. -10 on a machine busy with other work; "
                    "needs root for negative values)")
    ap.add_argument("--node-loadgen", action="store_true",
                    help="drive the websocket scenarios with loadgen.js too (cross-check of wsload)")
    ap.add_argument("--results", default=None, help="where to write the Markdown results "
                    "(default: bench/RESULTS.md for a full run of every scenario, else bench/.work/)")
    args = ap.parse_args(argv)

    global USE_WSLOAD
    USE_WSLOAD = not args.node_loadgen
    NICE[0] = args.nice
    reps = args.reps or (1 if args.quick else 3)
    scen = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    servers = [k for k, s in SERVERS.items() if s.default] if args.servers == "all" else args.servers.split(",")
    if args.metrics:
        OURS_EXTRA[:] = ["--metrics-path", "/metrics"]
    if args.candidate:
        CANDIDATE[0] = str(Path(args.candidate).resolve())
        if not any(s.startswith("candidate") for s in servers):
            servers.insert(1, "candidate")
    elif any(s.startswith("candidate") for s in servers):
        ap.error("--servers candidate needs --candidate PATH")
    for name in scen:
        if name not in SCENARIOS:
            ap.error(f"unknown scenario {name!r}")
    for name in servers:
        if name not in SERVERS:
            ap.error(f"unknown server {name!r}")

    def log(msg: str) -> None:
        print(msg, flush=True)

    for tool in ("taskset", "node", "npm"):
        if not shutil.which(tool):
            log(f"error: {tool} is needed")
            return 2
    if (os.cpu_count() or 1) < 2:
        log("error: needs 2 cores (server on core 0, load on core 1)")
        return 2

    WORK.mkdir(parents=True, exist_ok=True)
    machine_lock = exclusive_machine(log)  # noqa: F841 (held until the process ends)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = WORK / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)  # also when started in the background (SIGINT ignored)
    signal.signal(signal.SIGHUP, _on_signal)
    fd_limit = raise_fd_limit(log)

    if not args.no_install:
        ensure_envs(log)
    ours_version = snapshot_ours(stamp)
    pending_ours = ours_available() if "ours" in servers else None
    if pending_ours:
        log(f"sockjs_server cannot run yet ({pending_ours}): measuring the peers only")
        servers = [s for s in servers if s != "ours"]

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pending_scenarios: dict[str, str] = {}
    interrupted = False
    t_start = time.monotonic()
    try:
        for sk in scen:
            sc = SCENARIOS[sk]
            pending = sc.pending or (rabbitmq_pending() if sk == "stomp-rabbitmq" else None)
            if pending:
                log(f"[{sk}] pending: {pending}")
                pending_scenarios[sk] = pending
                continue
            results[sk] = {}
            cfg = sc.config(args.quick)
            hint: dict[str, float] = {}
            for rep in range(reps):
                for srv_key in servers:
                    server = SERVERS[srv_key]
                    if sc.key in server.skip:
                        continue
                    c = dict(cfg)
                    if sc.metric == "deliveries_per_s" and srv_key in hint:  # later repetitions search near the last answer
                        c.update(start_rate=hint[srv_key] * 0.9, factor=1.25, bisect=2)
                    t0 = time.monotonic()
                    try:
                        with running_server(server, log_dir, sk) as (port, pid):
                            c.update(host=HOST, port=port, server_pid=pid, hard_deadline_s=150)
                            res = run_load(c, timeout=170)
                    except RuntimeError as exc:
                        res = {"error": str(exc)}
                    results[sk].setdefault(srv_key, []).append(res)
                    if sc.metric == "deliveries_per_s" and res.get("rate"):
                        hint[srv_key] = float(res["rate"])
                    val = res.get(sc.metric)
                    extra = ""
                    if "p99_ms" in res and res["p99_ms"] is not None:
                        extra += f" p50 {res.get('p50_ms') or 0:.2f} ms p99 {res['p99_ms']:.2f} ms"
                    if res.get("server_cpu") is not None:
                        extra += f" cpu server {res['server_cpu'] * 100:.0f}% load {res['loadgen_cpu'] * 100:.0f}%"
                    if res.get("error") or res.get("closed_sessions") or res.get("problems"):
                        extra += f" !! {res.get('error') or ''} {res.get('close_reasons') or ''} {res.get('problems') or ''}"
                    log(f"[{sk}] rep {rep + 1}/{reps} {server.label:24s} {fmt_num(val, sc.unit):>8s} {sc.unit}"
                        f"{extra}  ({time.monotonic() - t0:.1f} s)")
    except KeyboardInterrupt:
        log("interrupted: stopping servers, reporting what was measured")
        interrupted = True
    finally:
        stop_all()
    elapsed = time.monotonic() - t_start

    raw_path = WORK / f"results-{stamp}.json"
    raw_path.write_text(json.dumps(results, indent=1))
    summary = summarize(results)
    shown = [s for s in SERVERS if s in servers or (s == "ours" and pending_ours)]
    table = render_tables(summary, shown, pending_ours)
    log("\nmedians of %d repetition(s):\n" % reps + table)
    details = render_latency_cpu(summary, [s for s in shown if not (s == "ours" and pending_ours)])
    log("\n" + details)
    targets = render_targets(summary) if "ours" in servers else ""
    if targets:
        log("\n" + targets)

    full = args.scenarios == "all" and args.servers == "all" and not args.quick and not interrupted
    out = Path(args.results) if args.results else (BENCH / "RESULTS.md" if full else WORK / f"RESULTS-{stamp}.md")
    write_results(out, summary, table, details, targets, reps, args, elapsed, pending_ours, fd_limit, pending_scenarios,
                  ours_version)
    log(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} (raw: {raw_path.relative_to(REPO)})")
    return 0


def write_results(out: Path, summary: dict[str, dict[str, dict[str, Any]]], table: str, details: str, targets: str,
                  reps: int, args: argparse.Namespace, elapsed: float, pending_ours: str | None, fd_limit: int,
                  pending_scenarios: dict[str, str], ours_version: str) -> None:
    info = machine_info()
    cmd = "python3 bench/compare.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    notes: list[str] = []
    for sk, per in summary.items():
        for srv, cell in per.items():
            if cell["errors"]:
                notes.append(f"- ⚠ {sk} / {SERVERS[srv].label}: " + "; ".join(sorted(set(map(str, cell["errors"]))))[:300])
            if sk == "stomp-rabbitmq":
                if cell["server_cpu"] is not None and cell["server_cpu"] < 0.8:
                    notes.append(f"- {sk}: the server used {cell['server_cpu'] * 100:.0f}% of its core: RabbitMQ (not "
                                 "pinned, on either core) and the relay's round trips to it bound this scenario")
            elif SCENARIOS[sk].higher_is_better and cell["server_cpu"] is not None and cell["server_cpu"] < 0.8:
                notes.append(f"- {sk} / {SERVERS[srv].label}: the server got only {cell['server_cpu'] * 100:.0f}% of its "
                             "core (median): other processes shared it; the per-CPU-second column is steadier")
            if (cell["loadgen_cpu"] or 0) > 0.9:
                notes.append(f"- {sk} / {SERVERS[srv].label}: the load generator used {cell['loadgen_cpu'] * 100:.0f}% "
                             "of its core: the number may be bounded by the client, not the server")
    for sk, why in pending_scenarios.items():
        notes.append(f"- {sk}: pending — {why}")
    if pending_ours:
        notes.append(f"- sockjs_server itself: pending — {pending_ours}")
    scen_lines = "\n".join(f"- `{s.key}`: {s.title}" for s in SCENARIOS.values())
    body = f"""# Benchmark results

Generated by `{cmd}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min:
medians of {reps} interleaved repetition(s) per scenario (each server started fresh for every measurement).
Do not edit by hand: rerun the command.

## Machine

- CPU: {info['cpu']}; memory {info['memory']}; Linux {info['kernel']}; open files limit {fd_limit}
- server pinned to core {SERVER_CPU} (`taskset -c {SERVER_CPU}`), load generator to core {LOAD_CPU}; loopback only
- Python {info['python']} (every Python server runs on this one interpreter and aiohttp); Node {info['node']}
- sockjs_server at `{ours_version}` (copied when the run started; every server of the run ran that copy)
- other processes may have shared the machine: compare ratios within this run, not absolute numbers across runs

## Results

Throughput (higher is better) and idle memory (lower is better). Ratios read "how many times better
ours is": throughput ours ÷ peer, memory peer ÷ ours; > 1.00× means ours is ahead.

{table}

Latency (median of the per-run p50 / p99) and CPU use (fraction of one core) while measuring;
for broadcast, at the highest sustainable rate.

{details}
"""
    if targets:
        body += f"\n## Targets (issue: benchmarks against the peers)\n\n{targets}\n"
    body += f"""
## Scenarios

{scen_lines}

Every scenario is bounded in sessions and time and talks to 127.0.0.1 only. Echo scenarios run 50 sessions
with a fixed window of messages in flight per session (a new message goes out when an echo comes back)
and report echoed messages per second; HTTP transports send each message in its own `xhr_send` request
(eventsource: 10 messages per request). Broadcast searches the highest publishing rate at which all
1000 sessions receive every message with p99 latency under 100 ms (1.25 s steps, a failing step is run
again once, rate ×1.6 up then bisected; later repetitions start near the previous answer) and reports
deliveries per second (rate × 1000); `stomp-memory` does the same with STOMP SEND → MESSAGE frames. Idle scenarios open the sessions after 100
warm-up sessions and report the growth of the server's RSS divided by the number of sessions.

Profiles of sockjs_server on these scenarios and what to optimise: `bench/PROFILING.md`
(`python3 bench/profile.py --scenario NAME` reproduces them).

## Notes

{chr(10).join(notes) if notes else '- none'}
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body)


if __name__ == "__main__":
    sys.exit(main())

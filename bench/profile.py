#!/usr/bin/env python3
"""Profile one of our servers' hot paths under a benchmark scenario with py-spy.

    python3 bench/profile.py --scenario ws-pingpong [--server ours] [--seconds 6] [--top 25]
    python3 bench/profile.py --scenario xhr-polling --server ours-granian   # the ASGI layer (ours-asgi: uvicorn)

Starts the server pinned to core 0, runs the scenario's load from core 1 (as compare.py
does), samples the server with py-spy (installed into bench/.envs/py on first use), and
prints the functions with the most samples: self time (where the CPU is spent) and
inclusive time (what the time is spent under), and how the server's CPU time splits over its
threads (granian parses HTTP in Rust threads that py-spy does not see).  The collapsed stacks
are kept in bench/.work/profiles/ for flame graphs.  Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402


def ensure_pyspy() -> Path:
    exe = compare.PY_ENV / "bin" / "py-spy"
    if not exe.exists():
        subprocess.run([compare._py(), "-m", "pip", "install", "-q", "py-spy"], check=True)
    return exe


def _function(frame: str) -> str:
    """'Session.send (sockjs_server/session.py:185)' -> 'Session.send (sockjs_server/session.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else frame


def _package(frame: str) -> str:
    where = frame.partition(" (")[2]
    if "selectors.py" in where and "select" in frame:
        return "idle (select)"
    for key in ("sockjs_server/", "aiohttp/", "uvicorn/", "granian/", "httptools/", "websockets/", "asyncio/",
                "multidict/", "yarl/", "json/"):
        if key in where:
            return key.rstrip("/")
    if "servers/" in where or "_server.py" in where:
        return "handler script"
    return "other"


def summarize(collapsed: Path, top: int, focus: str) -> str:
    self_fn: collections.Counter[str] = collections.Counter()
    incl_fn: collections.Counter[str] = collections.Counter()
    by_pkg: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        self_fn[_function(leaf)] += count
        by_pkg[_package(leaf)] += count
        for f in {_function(f) for f in frames}:
            incl_fn[f] += count
    total = max(total, 1)
    out = [f"{total} samples; self time by package: "
           + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in by_pkg.most_common())]
    out.append(f"\ntop {top} functions by self time (% of samples):")
    for f, c in self_fn.most_common(top):
        out.append(f"  {100 * c / total:5.1f}%  {f}")
    out.append(f"\ntop {top} {focus} functions by inclusive time:")
    ranked = [(f, c) for f, c in incl_fn.most_common() if focus in f][:top]
    for f, c in ranked:
        out.append(f"  {100 * c / total:5.1f}%  {f}")
    return "\n".join(out)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by the main thread of ``pid`` (where Python runs the event loop)
    and by its other threads, by name (granian's Rust threads, uvloop's or asyncio's helpers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = "main thread" if task.name == str(pid) else "other threads: " + (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[name] += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return dict(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="ws-pingpong", choices=[k for k, s in compare.SCENARIOS.items() if not s.pending])
    ap.add_argument("--server", default="ours", choices=["ours", "ours-asgi", "ours-granian", "ours-builtin", "aio-libs", "bare"])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--focus", default="sockjs_server", help="path fragment whose frames are listed first")
    ap.add_argument("--checkout", metavar="PATH", default=None,
                    help="profile the sockjs_server of another checkout (e.g. the state before a change)")
    args = ap.parse_args()
    if args.checkout:
        compare.OURS_PATH[0] = str(Path(args.checkout).resolve())

    machine_lock = compare.exclusive_machine(print)  # noqa: F841 (held until the process ends)
    compare.raise_fd_limit(print)
    compare.ensure_envs(print)
    pyspy = ensure_pyspy()
    sc = compare.SCENARIOS[args.scenario]
    cfg = sc.config(False)
    if cfg["kind"] == "echo":
        cfg.update(warmup=1.0, duration=args.seconds + 2)
    out_dir = compare.WORK / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    collapsed = out_dir / f"{args.server}-{args.scenario}-{stamp}.txt"
    server = compare.SERVERS[args.server]
    result: dict[str, object] = {}
    try:
        with compare.running_server(server, out_dir, args.scenario) as (port, pid):
            cfg.update(host=compare.HOST, port=port, server_pid=pid, hard_deadline_s=150)
            load = threading.Thread(target=lambda: result.update(compare.run_load(cfg, timeout=170)))
            load.start()
            time.sleep(1.5 if cfg["kind"] == "echo" else 3.0)
            before, t0 = thread_cpu(pid), time.monotonic()
            # py-spy runs on the load generator's core, so it does not steal from the server
            subprocess.run(["taskset", "-c", compare.LOAD_CPU, str(pyspy), "record", "--pid", str(pid),
                            "--rate", str(args.rate), "--duration", str(int(args.seconds)), "--format", "raw",
                            "--nonblocking", "--output", str(collapsed)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            after, elapsed = thread_cpu(pid), time.monotonic() - t0
            load.join()
    finally:
        compare.stop_all()
    metric = result.get(sc.metric)
    print(f"{server.label}, {args.scenario}: {sc.metric} = {metric}, server CPU {result.get('server_cpu')}")
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    print("server CPU by thread while sampled (fraction of one core): "
          + ", ".join(f"{name} {sec / elapsed:.2f}" for name, sec in sorted(used.items(), key=lambda kv: -kv[1]) if sec > 0))
    print(summarize(collapsed, args.top, args.focus))
    print(f"\ncollapsed stacks: {collapsed.relative_to(compare.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

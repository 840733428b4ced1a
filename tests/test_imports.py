"""Every module imports on its own (no import cycles, no hidden import order)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sockjs_server

ROOT = Path(__file__).resolve().parent.parent

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(sockjs_server.__path__, "sockjs_server.")
    if not info.name.endswith("__main__")
)

SANS_IO = ["sockjs_server.framing", "sockjs_server.envelopes", "sockjs_server.state", "sockjs_server.options"]


# One interpreter, but every module is imported first, from a clean slate: all of
# the package is dropped from sys.modules before each import, so an import cycle
# shows up whatever module a user happens to import first.
_IMPORT_EACH_FIRST = """
import importlib, json, sys
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "sockjs_server" or m.startswith("sockjs_server.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as error:
        failures[name] = repr(error)
print(json.dumps(failures))
"""


def test_every_module_imports_first() -> None:
    assert "sockjs_server.state" in MODULES
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FIRST, json.dumps(["sockjs_server", *MODULES])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


_IMPORT_SANS_IO = """
import json, sys, types
# Load the modules without the package __init__, which mounts the aiohttp layer.
package = types.ModuleType("sockjs_server")
package.__path__ = [sys.argv[1]]
sys.modules["sockjs_server"] = package
for name in json.loads(sys.argv[2]):
    __import__(name)
print(json.dumps(sorted(m for m in ("aiohttp", "asyncio", "multidict", "yarl") if m in sys.modules)))
"""


def test_sans_io_modules_use_only_the_standard_library() -> None:
    # The protocol core is plain stdlib code: no event loop, no web framework.
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_SANS_IO, str(ROOT / "sockjs_server"), json.dumps(SANS_IO)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []

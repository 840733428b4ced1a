"""The README's STOMP limits tables match the code (once the STOMP section is in the README)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from sockjs_server.stomp import MemoryBroker, StompOptions

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def _rows(marker: str) -> dict[str, str]:
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    if f"<!-- {marker}" not in text:
        pytest.skip(f"README.md has no {marker} yet")
    block = text.split(f"<!-- {marker}", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    rows = {}
    for line in block.splitlines():
        match = re.match(r"\| `(\w+)` \| `([^`]*)` \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def _shown(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def test_stomp_options_table() -> None:
    rows = _rows("stomp-options-table")
    fields = dataclasses.fields(StompOptions)
    assert sorted(rows) == sorted(f.name for f in fields)
    defaults = StompOptions()
    for f in fields:
        assert rows[f.name] == _shown(getattr(defaults, f.name)), f.name


def test_memory_broker_table() -> None:
    rows = _rows("memory-broker-table")
    params = {n: p.default for n, p in inspect.signature(MemoryBroker).parameters.items()}
    assert sorted(rows) == sorted(params)
    for name, default in params.items():
        assert rows[name] == _shown(default), name

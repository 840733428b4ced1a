"""The README's options table matches the code: every option, with its real default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from sockjs_server import Options

README = Path(__file__).resolve().parent.parent / "README.md"


def _table_rows() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- options-table", 1)[1].split("<!-- /options-table -->", 1)[0]
    rows = {}
    for line in block.splitlines():
        match = re.match(r"\| `(\w+)` \| `([^`]*)` \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_option_is_documented_with_its_default() -> None:
    rows = _table_rows()
    fields = dataclasses.fields(Options)
    assert sorted(rows) == sorted(f.name for f in fields)
    defaults = Options()
    for field in fields:
        value = getattr(defaults, field.name)
        expected = value if isinstance(value, str) else repr(value)
        assert rows[field.name] == expected, field.name


def test_readme_has_the_two_fresh_machine_commands() -> None:
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in quick_start.splitlines() if line.startswith("    ")]
    assert len(commands) == 2
    assert commands[1] == "bash .ci/test"

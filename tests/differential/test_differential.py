"""The differential harness as a CI gate: every scenario x target, against the real RabbitMQ.

The RabbitMQ transcript of each scenario is recorded once per run and is
the expected value for the MemoryBroker and the relay. ``python -m
tests.differential`` prints the same comparison as a table.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.differential.harness import Targets, targets  # noqa: E402
from tests.differential.scenarios import KNOWN, SCENARIOS, Scenario  # noqa: E402

pytestmark = [pytest.mark.rabbitmq]

_reference: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def world() -> Iterator[Targets]:
    with targets() as t:
        yield t


def reference(world: Targets, scenario: Scenario) -> list[str]:
    if scenario.name not in _reference:
        _reference[scenario.name] = scenario.compared(world.run(scenario.reference_steps, "rabbit"))
    return _reference[scenario.name]


def _diff(expected: list[str], got: list[str]) -> str:
    return "\n".join(difflib.unified_diff(expected, got, "rabbitmq", "ours", lineterm=""))


@pytest.mark.parametrize("target", ["rabbit", "memory", "relay"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(world: Targets, scenario: Scenario, target: str) -> None:
    expected = reference(world, scenario)
    if target == "rabbit":
        # The script itself is sound: RabbitMQ answered everything it waited for.
        assert not [line for line in expected if "<timeout" in line], "\n".join(expected)
        return
    if scenario.differs:
        pytest.skip(f"documented difference: {scenario.differs}")
    if target == "memory" and scenario.rabbit_only:
        pytest.skip(f"RabbitMQ-only: {scenario.rabbit_only}")
    got = scenario.compared(world.run(scenario.steps, target))
    if got != expected:
        # RabbitMQ is shared on a developer's machine (another test may restart
        # it): a difference counts only against a second recording.
        expected = _reference[scenario.name] = scenario.compared(world.run(scenario.reference_steps, "rabbit"))
    if scenario.sockjs and got == expected:
        got = scenario.compared(world.run(scenario.steps, target, sockjs=True))
    if (scenario.name, target) in KNOWN:
        if got != expected:
            pytest.xfail(f"known difference from RabbitMQ: {KNOWN[scenario.name, target]}")
        return
    assert got == expected, _diff(expected, got)

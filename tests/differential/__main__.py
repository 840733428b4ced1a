"""``python -m tests.differential [-k SUBSTRING] [-v] [--json FILE]``: the agreement table.

Plays every scenario against RabbitMQ, our server with the MemoryBroker and
our server relaying to RabbitMQ, and prints scenario x target: ``agree``,
``known`` (a difference listed in ``scenarios.KNOWN``, explained in the
README's "Differences from RabbitMQ"), ``DIFFER`` (an unexpected one), or
``n/a`` (a RabbitMQ-only feature on the MemoryBroker), then the counts.
Exits 1 when a difference is not listed (the CI gate). ``-v`` prints the
differing transcripts.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys

from .harness import targets
from .scenarios import KNOWN, SCENARIOS


def compare(reference: list[str], other: list[str]) -> str:
    return "\n".join(difflib.unified_diff(reference, other, "rabbit", "ours", lineterm="", n=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.differential")
    parser.add_argument("-k", default="", help="only scenarios whose name contains this")
    parser.add_argument("-v", action="store_true", help="print the differences")
    parser.add_argument("--json", help="write the table as JSON to this file")
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if args.k in s.name]
    rows: list[dict[str, str]] = []
    kinds = ("agree", "known", "DIFFER", "n/a")
    counts = {target: dict.fromkeys(kinds, 0) for target in ("memory", "relay")}
    fixed: list[str] = []
    with targets() as t:
        for scenario in chosen:
            reference = scenario.compared(t.run(scenario.reference_steps, "rabbit"))
            rerecorded = False
            row = {"scenario": scenario.name}
            for target in ("memory", "relay"):
                if target == "memory" and scenario.rabbit_only:
                    row[target] = "n/a"
                else:
                    got = scenario.compared(t.run(scenario.steps, target))
                    same = got == reference
                    if not same and not rerecorded:
                        # RabbitMQ is shared on a developer's machine (another test may
                        # restart it): a difference counts only against a second recording.
                        reference, rerecorded = scenario.compared(t.run(scenario.reference_steps, "rabbit")), True
                        same = got == reference
                    if scenario.sockjs and same:
                        got = scenario.compared(t.run(scenario.steps, target, sockjs=True))
                        same = got == reference
                    known = (scenario.name, target) in KNOWN
                    row[target] = "agree" if same else "known" if known else "DIFFER"
                    if same and known:
                        fixed.append(f"{scenario.name} [{target}]")
                    if not same and (args.v or not known):
                        print(f"--- {scenario.name} [{target}]" + (f" (known: {KNOWN[scenario.name, target]})" if known else ""))
                        print(compare(reference, got))
                counts[target][row[target]] += 1
            if any("<timeout" in line for line in reference):
                row["rabbit"] = "timeout"
            rows.append(row)
    width = max(len(r["scenario"]) for r in rows) if rows else 10
    print(f"{'scenario':<{width}}  {'memory':<7} {'relay':<7}")
    for r in rows:
        note = "  (RabbitMQ itself timed out)" if r.get("rabbit") == "timeout" else ""
        print(f"{r['scenario']:<{width}}  {r['memory']:<7} {r['relay']:<7}{note}")
    print(f"\n{len(rows)} scenarios")
    for target, c in counts.items():
        print(
            f"{target}: {c['agree']} agree, {c['known'] + c['DIFFER']} differ"
            f" ({c['known']} known, {c['DIFFER']} unexpected), {c['n/a']} n/a"
        )
    for name in fixed:
        print(f"listed as a known difference but agrees now: {name}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "counts": counts}, f, indent=1)
    return 0 if all(c["DIFFER"] == 0 for c in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Plot a fleet CSV (bench/fleet.py): median wall time against the number of hosts per tool,
one panel per scenario, log-log; the same look as bench/plot.py draws for converge.

    bench/.venvs/plot/bin/python bench/fleet_plot.py bench/results/fleet-STAMP.csv [OUT.png]
"""

from __future__ import annotations

import collections
import csv
import sys

from plot import draw  # bench/plot.py, beside this script

SCENARIOS = ("first", "noop", "plan", "change")
LABELS = {
    "fleet": "fleet apply / plan",
    "ansible": "ansible-playbook (templates)",
    "export": "fleet export + ansible-playbook",
}


def main(argv: list[str]) -> int:
    source = argv[1]
    target = argv[2] if len(argv) > 2 else source.rsplit(".", 1)[0] + ".png"
    walls: dict[tuple[str, str, int], list[float]] = collections.defaultdict(list)
    with open(source, newline="") as stream:
        for row in csv.DictReader(stream):
            if row["status"] == "ok" and row["wall_s"]:
                walls[(row["tool"], row["scenario"], int(row["n"]))].append(float(row["wall_s"]))
    labels = {tool: label for tool, label in LABELS.items() if any(k[0] == tool for k in walls)}
    title = "system-recipes fleet benchmark (over ssh, same hosts and forks)"
    draw(walls, labels, SCENARIOS, "hosts (N)", title, target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

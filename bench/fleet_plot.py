#!/usr/bin/env python3
"""Plot a fleet CSV (bench/fleet.py): median wall time against the number of hosts per tool,
one panel per scenario, log-log; the same look as bench/plot.py draws for converge.

    bench/.venvs/plot/bin/python bench/fleet_plot.py bench/results/fleet-STAMP.csv [OUT.png]
"""

from __future__ import annotations

import collections
import csv
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
    tools = [tool for tool in LABELS if any(key[0] == tool for key in walls)]
    figure, axes = plt.subplots(1, len(SCENARIOS), figsize=(4.2 * len(SCENARIOS), 4.2), sharey=True)
    for ax, scenario in zip(axes, SCENARIOS, strict=True):
        for tool in tools:
            points = sorted(
                (n, statistics.median(v))
                for (t, s, n), v in walls.items()
                if t == tool and s == scenario
            )
            if points:
                ax.plot(
                    [p[0] for p in points], [p[1] for p in points], marker="o", label=LABELS[tool]
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(scenario)
        ax.set_xlabel("hosts (N)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("wall time, median (s)")
    axes[0].legend(fontsize="small")
    figure.suptitle("system-recipes fleet benchmark (over ssh, same hosts and forks)")
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

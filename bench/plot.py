#!/usr/bin/env python3
"""Plot a converge CSV: median wall time against N per tool and shape, one panel per scenario, log-log.

    bench/.venvs/plot/bin/python bench/plot.py bench/results/converge-STAMP.csv [OUT.png]

Runs in the bench-only venv that has matplotlib (bench/converge.py creates it on demand).
"""

from __future__ import annotations

import collections
import csv
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCENARIOS = ("first", "noop", "change", "plan")


def draw(
    walls: dict[tuple[str, str, int], list[float]],
    labels: dict[str, str],
    scenarios: tuple[str, ...],
    xlabel: str,
    title: str,
    target: str,
) -> None:
    """Median wall time against N, one line per tool of ``labels`` (in its order), one panel
    per scenario, log-log (bench/fleet_plot.py draws with it too)."""
    figure, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 4.2), sharey=True)
    for ax, scenario in zip(axes, scenarios, strict=True):
        for tool, label in labels.items():
            points = sorted(
                (n, statistics.median(v))
                for (t, s, n), v in walls.items()
                if t == tool and s == scenario
            )
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(scenario)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("wall time, median (s)")
    axes[0].legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(target, dpi=110)


def main(argv: list[str]) -> int:
    source = argv[1]
    target = argv[2] if len(argv) > 2 else source.rsplit(".", 1)[0] + ".png"
    walls: dict[tuple[str, str, int], list[float]] = collections.defaultdict(list)
    stand_ins = ""
    with open(source, newline="") as stream:
        for row in csv.DictReader(stream):
            if row["status"] == "ok" and row["wall_s"]:
                # one line per tool and shape (older CSVs have no shape column)
                label = f"{row['tool']} {row.get('shape') or ''}".strip()
                walls[(label, row["scenario"], int(row["n"]))].append(float(row["wall_s"]))
                stand_ins = stand_ins or row.get("stand_ins", "")
    tools = sorted(
        {tool for tool, _, _ in walls}, key=lambda t: (not t.startswith("system-recipes"), t)
    )
    title = "system-recipes converge benchmark"
    if stand_ins:
        title += f" (stand-in: {stand_ins})"
    draw(walls, {tool: tool for tool in tools}, SCENARIOS, "services (N)", title, target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""The fleet benchmark: `system-recipes fleet apply` / `fleet plan` against Ansible over ssh.

    sudo .venv/bin/python bench/fleet.py --hosts 2 5 10 20 --repeat 3
    sudo .venv/bin/python bench/fleet.py --hosts 2 --repeat 1 --no-peers     # fleet alone

N test hosts are built on this machine (tests/support/fleet_hosts.py: network namespaces, each
with its own sshd; root only). Each of them runs M services (a config file and an NRPE check
each). Every tool gets freshly built hosts of the same shape for each repeat, so `first`
starts from an empty tree, and then runs, on those hosts:

    first   apply from nothing          noop    the same again
    plan    a no-op plan (Ansible: --check --diff)
    change  one option of one service changed (svc01's greeting, on every host), applied

Tools: `fleet` (system-recipes fleet apply/plan), `ansible` (ansible-playbook of template tasks
writing the same files, pinned ansible-core in a bench venv), `export` (`system-recipes fleet
export ansible`, then ansible-playbook of the export; empty while the CLI has no such command).
All of them use the same ssh_config, the same pinned host keys and the same forks. Writes
bench/results/fleet-STAMP.csv and .png. See bench/README.md, "The fleet benchmark".
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path[:0] = [BENCH, os.path.join(REPO, "tests")]

import fleet_work  # noqa: E402

# the converge benchmark's bench venvs (the same pinned ansible-core) and timed subprocess
from converge_run import timed  # noqa: E402
from converge_venvs import PEERS, ensure_venv, installed_copy, plot  # noqa: E402

SCENARIOS = ("first", "noop", "plan", "change")
TOOLS = ("fleet", "ansible", "export")
#: what a successful run exits with: a no-op plan is in sync (0)
EXPECTED_EXIT = 0
TARGET_RATIO = 5.0
TARGET_N = 10
FLAT = 1.25  # "flat in N": the largest N's peak RSS at most this times the smallest N's


@dataclass
class Row:
    tool: str
    n: int
    services: int
    scenario: str
    run: int
    wall_s: float
    maxrss_kb: int
    exit: int
    changed: int | None
    status: str
    note: str = ""


def changed_count(tool: str, stdout: str) -> int | None:
    """fleet: hosts changed (its closing line); Ansible: tasks changed over every host."""
    if tool == "fleet":
        found = re.search(r"^(?:apply|plan): \d+ hosts?, (.*)$", stdout, re.M)
        if not found:
            return None
        counted = re.search(r"(\d+) (?:changed|pending)", found.group(1))
        return int(counted.group(1)) if counted else 0
    counts = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", stdout, re.M)
    return sum(map(int, counts)) if counts else None


class Runner:
    """Runs one tool's scenarios on one set of hosts."""

    def __init__(self, args, workload, tool: str):
        self.args, self.work, self.tool = args, workload, tool
        self.env = dict(os.environ, LC_ALL="C.UTF-8")
        if tool != "fleet":
            self.env = workload.ansible_env(self.env)

    def commands(self, scenario: str) -> list[list[str]]:
        plan = scenario == "plan"
        if self.tool == "fleet":
            return [self.work.fleet_args("plan" if plan else "apply", self.args.bin)]
        if self.tool == "ansible":
            return [self.work.ansible_args(self.args.ansible, plan)]
        export = os.path.join(self.work.directory, "export")
        return [
            [
                os.path.join(self.args.bin, "system-recipes"),
                "fleet",
                "export",
                "ansible",
                "-m",
                self.work.model,
                "--profiles",
                self.work.profiles,
                "--entry-point",
                os.path.join(self.args.bin, "system-recipes"),
                export,
            ],
            ["EXPORT", export, "--check", "--diff"] if plan else ["EXPORT", export],
        ]

    def run(self, scenario: str, repeat: int) -> Row:
        if scenario == "change":
            self.work.flip()
        wall, rss, code, out, note = 0.0, 0, 0, "", ""
        for argv in self.commands(scenario):
            cwd = self.work.directory
            if argv[0] == "EXPORT":  # the playbook of the export just written, with its config
                inventory, playbook = fleet_work.export_layout(argv[1])
                if not inventory:
                    code, note = 1, playbook
                    break
                argv, cwd = [self.args.ansible, "-i", inventory, playbook, *argv[2:]], argv[1]
            outcome = timed(argv, self.env, cwd, self.args.timeout)
            wall += outcome.wall
            rss = max(rss, outcome.maxrss_kb)
            code, out = outcome.returncode, out + outcome.stdout
            if outcome.timed_out:
                note = f"timed out after {self.args.timeout:g} s"
            if code:
                text = (outcome.stdout + outcome.stderr).strip().splitlines()
                note = note or " / ".join(text[-3:])[:300]
                break
        changed = changed_count(self.tool, out)
        if self.tool == "fleet" and not code:  # where the time went, from the run's own logs
            note = fleet_work.fleet_breakdown(self.work.directory, wall)
        status = "ok" if code == EXPECTED_EXIT else f"exit {code}"
        if status == "ok" and scenario in ("noop", "plan") and changed:
            status, note = "not a no-op", f"{changed} changed"
        row = Row(
            self.tool,
            len(self.work.fleet),
            self.work.m,
            scenario,
            repeat,
            wall,
            rss,
            code,
            changed,
            status,
            note,
        )
        if self.args.verbose:
            print(
                f"  {self.tool:8} N={row.n:<3} {scenario:7} run {repeat}: {wall:7.2f} s "
                f"{rss / 1024:6.1f} MB changed={changed} {status} {note}",
                flush=True,
            )
        return row


def bench_hosts(args, n: int, repeat: int, tools: list[str], rows: list[Row], files: dict) -> None:
    """Each tool on freshly built hosts: first, noop, plan, change."""
    from support.fleet_hosts import make_fleet_hosts

    for tool in tools:
        fleet = make_fleet_hosts(n)
        try:
            directory = tempfile.mkdtemp(prefix=f"{tool}-{n}-", dir=args.workdir)
            workload = fleet_work.Workload(directory, fleet, args.services, args.forks, args.bin)
            runner = Runner(args, workload, tool)
            for scenario in SCENARIOS:
                row = runner.run(scenario, repeat)
                rows.append(row)
                if scenario == "first" and row.status == "ok":
                    files.setdefault((tool, n), workload.contents(fleet[0]))
                if row.status != "ok" and scenario == "first":
                    break  # nothing to no-op on
        finally:
            fleet.close()


# -- the table -----------------------------------------------------------------------------------
def medians(rows: list[Row]) -> dict[tuple[str, int, str], tuple[float, float, float, int, int]]:
    """(tool, n, scenario) -> (median, min, max, peak RSS kB, successful runs)."""
    found: dict[tuple[str, int, str], list[Row]] = {}
    for row in rows:
        found.setdefault((row.tool, row.n, row.scenario), []).append(row)
    result = {}
    for key, group in found.items():
        walls = [r.wall_s for r in group if r.status == "ok"]
        rss = max((r.maxrss_kb for r in group), default=0)
        if walls:
            result[key] = (statistics.median(walls), min(walls), max(walls), rss, len(walls))
        else:
            result[key] = (float("nan"), 0.0, 0.0, rss, 0)
    return result


def cell(stats, key) -> str:
    if key not in stats:
        return "-"
    median, low, high, _, runs = stats[key]
    if not runs:
        return "failed"
    return f"{median:.2f} ({low:.2f}-{high:.2f})"


def ratio(stats, tool: str, n: int, scenario: str) -> float | None:
    ours, theirs = stats.get(("fleet", n, scenario)), stats.get((tool, n, scenario))
    if not ours or not theirs or not ours[4] or not theirs[4]:
        return None
    return theirs[0] / ours[0]


def format_table(stats, ns: list[int], tools: list[str]) -> str:
    header = ["N", "scenario"]
    for tool in tools:
        header += [f"{tool} median s (min-max)", f"{tool} RSS MB"]
    header += [f"{tool}/fleet" for tool in tools if tool != "fleet"]
    lines = [header]
    for n in ns:
        for scenario in SCENARIOS:
            line = [str(n), scenario]
            for tool in tools:
                key = (tool, n, scenario)
                line += [cell(stats, key), f"{stats[key][3] / 1024:.0f}" if key in stats else "-"]
            for tool in tools:
                if tool != "fleet":
                    value = ratio(stats, tool, n, scenario)
                    line.append(f"{value:.1f}x" if value else "-")
            lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def targets(stats, ns: list[int]) -> list[str]:
    """The issue's three targets, each met or MISSED, in words."""
    out = []
    n = TARGET_N if TARGET_N in ns else max(ns)
    for scenario, words in (("plan", "no-op `fleet plan`"), ("noop", "no-op `fleet apply`")):
        value = ratio(stats, "ansible", n, scenario)
        if value is None:
            out.append(f"target: {words} >= {TARGET_RATIO:g}x faster than Ansible: not measured")
            continue
        verdict = "met" if value >= TARGET_RATIO else "MISSED"
        fleet_s, ansible_s = stats[("fleet", n, scenario)][0], stats[("ansible", n, scenario)][0]
        out.append(
            f"target: {words} of {n} hosts >= {TARGET_RATIO:g}x faster than Ansible: "
            f"{value:.1f}x ({fleet_s:.2f} s against {ansible_s:.2f} s): {verdict}"
        )
    peaks = {
        m: max(stats[key][3] for key in stats if key[0] == "fleet" and key[1] == m)
        for m in ns
        if any(key[0] == "fleet" and key[1] == m for key in stats)
    }
    if len(peaks) > 1:
        low, high = peaks[min(peaks)], peaks[max(peaks)]
        verdict = "met" if high <= FLAT * low else "MISSED"
        shown = ", ".join(f"N={m}: {kb / 1024:.0f} MB" for m, kb in sorted(peaks.items()))
        out.append(
            f"target: controller memory flat in N (largest N <= {FLAT:g}x smallest): "
            f"{shown}: {verdict}"
        )
    else:
        out.append("target: controller memory flat in N: one N only, not measured")
    return out


def compare_files(files: dict, ns: list[int], tools: list[str]) -> str:
    differ = []
    for n in ns:
        ours = files.get(("fleet", n))
        for tool in tools:
            theirs = files.get((tool, n))
            if tool == "fleet" or ours is None or theirs is None:
                continue
            differ += [f"{tool} N={n} {path}" for path in ours if ours[path] != theirs.get(path)]
    if differ:
        return "files that differ from fleet apply's: " + ", ".join(differ[:10])
    return "every tool wrote byte-identical files (host1, after first)"


def write_csv(path: str, rows: list[Row]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fields = list(Row.__dataclass_fields__)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(fields)
        for row in rows:
            writer.writerow(
                [f"{row.wall_s:.4f}" if f == "wall_s" else getattr(row, f) for f in fields]
            )


def read_csv(paths: list[str]) -> list[Row]:
    """The rows of earlier runs' CSVs (``--table``: one table over runs made one N at a time)."""
    rows = []
    for path in paths:
        with open(path, newline="") as stream:
            for raw in csv.DictReader(stream):
                rows.append(
                    Row(
                        raw["tool"],
                        int(raw["n"]),
                        int(raw["services"]),
                        raw["scenario"],
                        int(raw["run"]),
                        float(raw["wall_s"]),
                        int(raw["maxrss_kb"]),
                        int(raw["exit"]),
                        int(raw["changed"]) if raw["changed"] not in ("", "None") else None,
                        raw["status"],
                        raw["note"],
                    )
                )
    return rows


def report(rows: list[Row], ns: list[int], tools: list[str]) -> None:
    stats = medians(rows)
    print(format_table(stats, ns, tools))
    print()
    if "ansible" in tools:
        print("\n".join(targets(stats, ns)))
    breakdown = [r for r in rows if r.tool == "fleet" and r.note and r.status == "ok"]
    if breakdown:
        largest = max(r.n for r in breakdown)
        print(f"where fleet's time goes (N={largest}, median host):")
        for scenario in SCENARIOS:
            for row in [r for r in breakdown if r.n == largest and r.scenario == scenario][:1]:
                print(f"  {scenario:7} {row.wall_s:.2f} s: {row.note}")


def peer_tools(args: argparse.Namespace, notes: list[str]) -> list[str]:
    """The tools measured beside fleet (ansible, and the export when it can run), each noted
    in ``notes``; ``args.ansible`` becomes ansible's venv, or None."""
    tools: list[str] = []
    args.ansible = None
    if args.no_peers:
        return tools
    args.ansible, problem = ensure_venv(*PEERS["ansible"][:3])
    if args.ansible:
        tools.append("ansible")
        notes.append("  ansible: ansible-core 2.19.14, template tasks writing the same files")
    else:
        notes.append(f"  ansible: NOT RUN: {problem}")
    if args.no_export:
        notes.append("  export: not run (--no-export)")
    elif not args.ansible:
        notes.append("  export: NOT RUN: no ansible-playbook")
    elif fleet_work.export_available(args.bin):
        tools.append("export")
        notes.append("  export: `fleet export ansible` + ansible-playbook of the export")
    else:
        notes.append(
            "  export: EMPTY: this system-recipes has no `fleet export ansible` yet "
            "(issue 14); the column fills in once it has"
        )
    return tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[2, 5, 10, 20], metavar="N")
    parser.add_argument("--services", type=int, default=10, metavar="M", help="per host (10)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh hosts per tool (3)")
    parser.add_argument("--forks", type=int, default=10, help="for every tool (10)")
    parser.add_argument("--no-peers", action="store_true", help="fleet alone: no Ansible")
    parser.add_argument("--no-export", action="store_true", help="no `fleet export` column")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--results", default=os.path.join(BENCH, "results"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--bin", default=None, help="directory with system-recipes")
    parser.add_argument("--editable", action="store_true", help="use the project's .venv/bin")
    parser.add_argument("--workdir", default=None, help="keep the models and runs here")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    parser.add_argument(
        "--table",
        nargs="+",
        metavar="CSV",
        help="print the table of earlier runs' CSVs; run nothing",
    )
    args = parser.parse_args(argv)
    if args.table:
        rows = read_csv(args.table)
        ns = sorted({r.n for r in rows})
        report(rows, ns, [tool for tool in TOOLS if any(r.tool == tool for r in rows)])
        return 0
    if args.repeat < 1 or args.services < 1 or min(args.hosts) < 1 or max(args.hosts) > 100:
        parser.error("--repeat and --services must be >= 1, --hosts between 1 and 100")
    if os.geteuid() != 0:
        parser.error("the test hosts are network namespaces: run it as root")
    if args.bin is None:
        args.bin = os.path.join(REPO, ".venv", "bin") if args.editable else installed_copy()
    args.bin = os.path.abspath(args.bin)
    if not os.path.exists(os.path.join(args.bin, "system-recipes")):
        parser.error(f"{args.bin}/system-recipes not found (--bin)")

    notes = [
        f"bench/fleet.py: N={' '.join(map(str, args.hosts))} hosts x {args.services} services "
        f"(a config file and an NRPE check each), forks {args.forks}, {args.repeat} run(s); "
        "wall seconds of the controller's command; RSS: its peak (wait4)",
        # the bench venv's name is a digest of the checkout's sources: which code was measured
        f"  system-recipes: {os.path.relpath(os.path.dirname(args.bin), BENCH)}",
    ]
    tools = ["fleet", *peer_tools(args, notes)]

    keep = bool(args.workdir)
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="bench-fleet-")
    os.makedirs(args.workdir, exist_ok=True)
    rows: list[Row] = []
    files: dict = {}
    try:
        for n in args.hosts:
            for repeat in range(1, args.repeat + 1):
                bench_hosts(args, n, repeat, tools, rows, files)
    finally:
        if not keep:
            shutil.rmtree(args.workdir, ignore_errors=True)

    print("\n".join(notes))
    print("  " + compare_files(files, args.hosts, tools))
    print()
    report(rows, args.hosts, tools)
    failed = [r for r in rows if r.status != "ok"]
    for row in failed[:10]:
        print(f"FAILED: {row.tool} N={row.n} {row.scenario} run {row.run}: {row.status} {row.note}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(args.results, f"fleet-{stamp}.csv")
    write_csv(path, rows)
    print(f"results: {os.path.relpath(path)}")
    if not args.no_plot:
        print(plot(path, "fleet_plot.py"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

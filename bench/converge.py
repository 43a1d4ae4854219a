#!/usr/bin/env python3
"""Converge benchmark: N services, five files each, into a scratch root; prints a table.

    .venv/bin/python bench/converge.py --n 1 10 100 1000 [--shape meta explicit] [--peers]

Every service is an application config (system_recipes:template), a /etc/cron.d file
(system_recipes:cron), a /etc/logrotate.d file (system_recipes:logrotate), a supervisor program
(system_recipes:supervisor) and an NRPE command file (system_recipes:nrpe), written either by
one system_recipes:service section (``--shape meta``, the default) or by five level-1 sections
(``--shape explicit``). Scenarios, each timed as a subprocess of the real executable: ``first``
(empty root), ``noop`` (re-run), ``change`` (one option of one service changed: the port of
svc0000, which three of its files use), ``plan`` (``system-recipes plan`` with that change).
``system-recipes converge`` runs the first three again when it exists. See bench/README.md for
the columns and the targets (printed under the table). In the explicit shape, a recipe whose
module does not exist yet, or fails on one service, is replaced by a template part writing
the same file, and the output says "STAND-IN".
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile

from converge_run import Failed, Row, bench_tool, timed
from converge_table import format_table, summarize, targets, write_csv
from converge_tools import (
    Ansible,
    Converge,
    Floor,
    Pyinfra,
    Salt,
    SystemRecipes,
    Tool,
    converge_available,
)
from converge_venvs import PEERS, ensure_venv, installed_copy, plot
from converge_work import (
    BENCH,
    KINDS,
    RECIPE_OF,
    REPO,
    SHAPES,
    STANDS_IN,
    fresh_root,
    service_contents,
)


def recipe_available(kind: str, python: str) -> bool:
    module = RECIPE_OF[kind]
    if not os.path.isfile(os.path.join(REPO, "system_recipes", "recipes", module + ".py")):
        return False
    result = subprocess.run(
        [python, "-c", f"import system_recipes.recipes.{module}"], capture_output=True, text=True
    )
    return result.returncode == 0


def probe_recipes(args, real: dict[str, bool]) -> dict[str, str]:
    """Converge one service with the real recipes. A recipe module that exists but fails
    (being written) is replaced by its stand-in, so the rest can still be measured: updates
    ``real`` and returns {kind: why}."""
    optional = [kind for kind in STANDS_IN if real[kind]]

    def attempt(kinds_real: dict[str, bool]) -> str:
        work = tempfile.mkdtemp(prefix="bench-probe-")
        try:
            tool = SystemRecipes(work, args, "explicit", kinds_real)
            fresh_root(tool.root, 1)
            tool.write_inputs(1, changed=False)
            out = timed(tool.argv("first"), tool.env, work, args.timeout)
            if out.returncode == 0:
                return ""
            lines = [
                line
                for line in (out.stderr + out.stdout).splitlines()
                if line.startswith("Error") or line.startswith("[")
            ]
            return (lines or [f"exit {out.returncode}"])[0]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    if not optional or not attempt(real):
        return {}
    problems = {}
    for kind in optional:  # which of them fails: each alone, the others stood in
        alone = {k: (k == kind or k not in STANDS_IN) and real[k] for k in KINDS}
        problem = attempt(alone)
        if problem:
            problems[kind] = f"fails: {problem[:160]}"
    for kind in problems:
        real[kind] = False
    return problems


ORDER = ["system-recipes", "converge", "floor", *sorted(PEERS)]
PEER_CLASSES = {"salt": Salt, "pyinfra": Pyinfra, "ansible": Ansible}


def make_tools(args, workdir, n, shape, real, peers, max_n, skipped) -> list[tuple[Tool, bool]]:
    """The tools to run at N in a shape, each with its work directory; (tool, is a peer)."""

    def work(name: str) -> str:
        return os.path.join(workdir, f"{name}-{shape}-{n}")

    tools: list[tuple[Tool, bool]] = [(SystemRecipes(work("sr"), args, shape, real), False)]
    if args.converge:
        tools.append((Converge(work("converge"), args, shape, real), False))
    if not args.no_floor:
        tools.append((Floor(work("floor"), args, shape), False))
    if shape not in (args.peer_shape or args.shape):
        return tools
    for name, executable in peers.items():
        if n > max_n[name]:
            skipped.setdefault(name, f"not run above N={max_n[name]} (--peer-max-n)")
            continue
        if name in skipped:
            continue
        tools.append((PEER_CLASSES[name](work(name), args, shape, executable), True))
    return tools


def run_tools(args, tools, n, shape, rows, skipped, mismatches) -> bool:
    """Every tool's scenarios; False when system-recipes (or the floor) failed."""
    reference: dict[str, bytes | None] = {}
    for tool, peer in tools:
        try:
            bench_tool(tool, n, args.repeat, rows, peer)
            # every tool must have written the same bytes, or the race is not fair
            contents = service_contents(tool.root, n, shape)
            if tool.name == "system-recipes":
                reference = contents
            else:
                differ = [p for p, data in contents.items() if data != reference.get(p)]
                if differ:
                    mismatches.append(
                        f"  {tool.name} {shape} N={n}: {len(differ)} of {len(contents)} "
                        f"files differ from system-recipes' (e.g. {differ[0]})"
                    )
        except Failed as error:
            print(f"bench: {error}", file=sys.stderr)
            if not peer:
                return False
            skipped[tool.name] = f"failed at N={n} ({shape}): not run above"
        finally:
            if not args.workdir:
                shutil.rmtree(tool.work, ignore_errors=True)
    return True


def checked_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, int]:
    """The options checked (``parser.error`` on a wrong one) and ``args.bin``/``args.python``
    set; returns the largest N of each peer."""
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.bin is None:
        args.bin = os.path.join(REPO, ".venv", "bin") if args.editable else installed_copy()
    args.python = os.path.join(args.bin, "python")
    for executable in ("buildout", "system-recipes", "python"):
        if not os.path.exists(os.path.join(args.bin, executable)):
            parser.error(f"{args.bin}/{executable} not found (--bin)")
    max_n = {name: spec[3] for name, spec in PEERS.items()}
    for text in args.peer_max_n:
        name, _, value = text.partition("=")
        if name not in PEERS or not value.isdigit():
            parser.error(f"--peer-max-n {text}: expected PEER=N, PEER one of {sorted(PEERS)}")
        max_n[name] = int(value)
    return max_n


def recipe_notes(real: dict[str, bool], why_not: dict[str, str]) -> list[str]:
    """One note per kind: the recipe that writes its file, or the stand-in and why."""
    notes = []
    for kind in KINDS:
        if real[kind]:
            notes.append(f"  {kind:10} system_recipes:{RECIPE_OF[kind]}")
        else:
            notes.append(
                f"  {kind:10} STAND-IN: system_recipes:template part writing the same "
                f"file, not validated (system_recipes/recipes/{RECIPE_OF[kind]}.py "
                f"{why_not[kind]})"
            )
    return notes


def peer_paths(args: argparse.Namespace, notes: list[str]) -> dict[str, str]:
    """With --peers: each peer's executable (its venv made if needed); a peer that cannot run
    is noted in ``notes`` instead."""
    peers: dict[str, str] = {}
    peer_problems: dict[str, str] = {}
    if args.peers:
        for name in args.only_peers or sorted(PEERS):
            venv, packages, executable, _ = PEERS[name]
            path, problem = ensure_venv(venv, packages, executable)
            if path:
                peers[name] = path
            else:
                peer_problems[name] = problem
    for name, problem in peer_problems.items():
        notes.append(f"  peer {name}: NOT RUN: {problem}")
    return peers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=[1, 10, 100],
        help="numbers of services (default: 1 10 100)",
    )
    parser.add_argument(
        "--shape",
        nargs="+",
        choices=SHAPES,
        default=["meta"],
        help="meta: one system_recipes:service section per service (default); explicit: five "
        "level-1 sections per service; both: --shape meta explicit",
    )
    parser.add_argument(
        "--peer-shape",
        nargs="+",
        choices=SHAPES,
        default=None,
        help="with --peers: the shapes the peers run in (default: every --shape)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (default 5)")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also Salt, pyinfra and Ansible (installed into bench/.venvs/)",
    )
    parser.add_argument(
        "--only-peers",
        nargs="*",
        choices=sorted(PEERS),
        default=None,
        help="with --peers: only these peers",
    )
    parser.add_argument(
        "--peer-max-n",
        action="append",
        default=[],
        metavar="PEER=N",
        help="largest N for a peer (default: ansible=100, others 1000)",
    )
    parser.add_argument(
        "--slow",
        type=float,
        default=30.0,
        help="a peer run slower than this many seconds ends that scenario's repeats (default 30)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--no-floor", action="store_true", help="skip the plain-python floor")
    parser.add_argument(
        "--stand-in",
        nargs="*",
        default=[],
        choices=["cron", "logrotate", "supervisor"],
        help="use the template stand-in even though the recipe exists",
    )
    parser.add_argument(
        "--results",
        default=os.path.join(BENCH, "results"),
        help="directory for the CSV and PNG (default bench/results)",
    )
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--bin",
        default=None,
        help="directory with buildout and system-recipes (default: a bench venv "
        "with system-recipes installed from this checkout, as on a host)",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="use the project's .venv/bin (an editable install: buildout hashes "
        "the whole checkout on every run)",
    )
    parser.add_argument("--workdir", default=None, help="keep the scratch trees here")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    args = parser.parse_args(argv)
    max_n = checked_options(parser, args)

    real = {
        kind: kind not in args.stand_in and recipe_available(kind, args.python) for kind in KINDS
    }
    why_not = {
        kind: "not used (--stand-in)" if kind in args.stand_in else "missing"
        for kind in KINDS
        if not real[kind]
    }
    why_not.update(probe_recipes(args, real))
    stand_ins = [kind for kind in KINDS if not real[kind]]
    shapes = list(dict.fromkeys(args.shape))
    notes = [
        f"bench/converge.py: N={' '.join(map(str, args.n))}, shape {' '.join(shapes)}, "
        f"{args.repeat} run(s) per scenario; five files per service; times are wall seconds "
        "of the subprocess"
    ]
    if stand_ins and "meta" in shapes:
        # a service section expands into the real recipes: there is nothing to stand in for
        shapes.remove("meta")
        notes.append(f"  shape meta: NOT RUN: it needs every recipe (stand-ins: {stand_ins})")
    args.converge = converge = converge_available(args.bin)
    if converge:
        notes.append("  converge: system-recipes converge -c host.cfg (first, noop, change)")
    else:
        notes.append(
            f"  converge: not available (system-recipes converge --help fails in {args.bin})"
        )
    notes += recipe_notes(real, why_not)

    peers = peer_paths(args, notes)

    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-converge-")
    os.makedirs(workdir, exist_ok=True)
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    mismatches: list[str] = []
    try:
        for n in args.n:
            for shape in shapes:
                print(f"bench: N={n} shape {shape} ...", file=sys.stderr, flush=True)
                tools = make_tools(args, workdir, n, shape, real, peers, max_n, skipped)
                if not run_tools(args, tools, n, shape, rows, skipped, mismatches):
                    return 1
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    for name, why in skipped.items():
        notes.append(f"  peer {name}: {why}")
    notes.extend(mismatches or ["  every tool wrote byte-identical files (within each shape)"])
    for tool in (Floor, Salt, Pyinfra, Ansible):
        if any(r.tool == tool.name for r in rows):
            notes.append(f"  {tool.name}: {tool.note}")
    table = summarize(rows, ORDER)
    print(format_table(table, notes, converge_shown=converge))
    print("\n" + "\n".join(targets(table)))
    os.makedirs(args.results, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    csv_path = os.path.join(args.results, f"converge-{stamp}.csv")
    write_csv(csv_path, rows, stand_ins)
    print(f"\nraw results: {os.path.relpath(csv_path)}")
    if not args.no_plot:
        print(plot(csv_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``system-recipes``: plan a run, generate the option reference, build a release and its RPM."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys

import zc.buildout

from system_recipes.commands.parser import ArgumentParser, Exit
from system_recipes.core.plan import report
from system_recipes.daemons import every  # noqa: F401  (registers every validator and reload handler)
from system_recipes.planning import load_and_plan


def version() -> str:
    try:
        return importlib.metadata.version("system-recipes")
    except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="system-recipes")
    parser.add_argument("--version", action="version", version=f"system-recipes {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="show what `buildout -c CONFIG` would change")
    plan.add_argument("-c", "--config", default="buildout.cfg", help="the host configuration")
    plan.add_argument("-q", "--quiet", action="store_true", help="no diffs, only part lines")
    plan.add_argument(
        "-a",
        "--all",
        action="store_true",
        dest="all_problems",
        help="report every problem of the configuration (each part, each "
        "option), not only the first; exit 1 when there is any",
    )
    plan.add_argument(
        "assignments",
        nargs="*",
        metavar="section:option=value",
        help="override options, as buildout's command line does",
    )
    converge = commands.add_parser(
        "converge",
        add_help=False,
        help="run the host buildout; a no-op is found without importing zc.buildout "
        "(see `system-recipes converge --help`)",
    )
    converge.add_argument("arguments", nargs=argparse.REMAINDER)
    explain = commands.add_parser(
        "explain", help="print the sections meta-recipes generate, as cfg text"
    )
    explain.add_argument("-c", "--config", default="buildout.cfg", help="the host configuration")
    explain.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help="meta sections to explain (default: all of them)",
    )
    docs = commands.add_parser(
        "docs",
        help="write the option reference (docs/recipes/*.md) "
        "and the system model's (docs/systems-reference.md)",
    )
    docs.add_argument(
        "-o",
        "--output",
        default=None,
        help="directory (default: docs/recipes); systems-reference.md goes beside it",
    )
    docs.add_argument(
        "--check", action="store_true", help="exit 1 when the checked-in reference is stale"
    )
    _release_commands(commands)
    _fleet_commands(commands)
    from system_recipes.fleet.host.step import add_parser as add_fleet_host

    add_fleet_host(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; every failure is one line on stderr (README: exit statuses)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly. Python would report the failed
        # flush of stdout again at exit, so stdout is pointed at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.CLOSED_PIPE
    except KeyboardInterrupt:
        return Exit.INTERRUPTED


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "plan":
            return run_plan(
                args.config, args.assignments, quiet=args.quiet, all_problems=args.all_problems
            )
        if args.command == "converge":  # normally answered by commands/entry.py before this import
            from system_recipes.commands.converge import main as converge

            return converge(args.arguments)
        if args.command == "explain":
            from system_recipes.meta.explain import run_explain

            return run_explain(args.config, args.sections)
        if args.command == "docs":
            from system_recipes.docs import write_reference

            return write_reference(args.output, check=args.check)
        if args.command in ("release", "rpm", "profiles"):
            return run_release_command(args)
        if args.command == "fleet":
            return run_fleet_command(args)
        if args.command == "fleet-host":
            from system_recipes.fleet.host.step import run as run_fleet_host

            return run_fleet_host(args)
    except zc.buildout.UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return Exit.ERROR
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        # a file named on the command line that is missing, a directory, unreadable...
        print(f"Error: {_os_error(error)}", file=sys.stderr)
        return Exit.ERROR
    return Exit.OK


def _os_error(error: OSError) -> str:
    text = error.strerror or str(error)
    if error.filename is not None:
        return f"{error.filename}: {text}"
    return text


def run_plan(
    config: str, assignments: list[str], quiet: bool = False, all_problems: bool = False
) -> int:
    """Render and validate every part, print the changes; exit 0 (none), 2 (some), 1 (error)."""
    from system_recipes.core.hooks import reload

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    problems: list | None = [] if all_problems else None
    active, plan = load_and_plan(config, assignments, problems)
    if problems:
        for problem in problems:
            for line in str(problem).splitlines():
                print(f"Error: {line}", file=sys.stderr)
        print(f"plan: {len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return 1
    if os.path.isdir(active.journal.directory):
        report.say("plan: an interrupted run will be rolled back first")
    for name, expansion in active.expansions.items():
        report.say(
            f"  [{name}] expands into {', '.join(expansion.sections)} "
            f"(`system-recipes explain -c {config} {name}` shows each value and its source)"
        )
    for line in report.part_lines(plan, "future"):
        report.say(line)
    if not quiet:
        report.say_diffs(plan)  # coloured on a terminal
    grouped = reload.group(plan.reloads)
    report.say(report.summary(plan, reload.describe(grouped) or "none", "future"))
    return 2 if plan.changed or plan.drift else 0


def _release_commands(commands) -> None:
    commands.add_parser(
        "profiles",
        help="print the directory of the shipped profiles "
        "(base.cfg, roles/) that a host.cfg extends",
    )
    release = commands.add_parser(
        "release",
        help="build NAME-VERSION.tar.gz: the application, every distribution it "
        "needs, zc.buildout and an offline install script",
    )
    release.add_argument("path", help="a Python project (pyproject.toml) or application buildout")
    release.add_argument("-o", "--output", default=".", help="directory for the tarball")
    release.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR",
        help="also take distributions from DIR (repeatable)",
    )
    release.add_argument(
        "--offline",
        action="store_true",
        help="use no index: every distribution must be in --find-links",
    )
    release.add_argument(
        "--system-recipes",
        default=None,
        metavar="PATH",
        help="the system-recipes to ship (a checkout or a wheel; default: this one's source tree)",
    )
    release.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="pip's cache directory: downloads and built wheels are kept there",
    )
    rpm = commands.add_parser("rpm", help="build an RPM from a release tarball with rpmbuild")
    rpm.add_argument("tarball", help="NAME-VERSION.tar.gz from `system-recipes release`")
    rpm.add_argument("-o", "--output", default=".", help="directory for the .rpm")
    for option, helptext in (
        ("name", "package name (default: the project's)"),
        ("version", "package version (default: the project's)"),
        ("release", "package release (default: 1)"),
        ("summary", "one-line summary (default: the project's)"),
        ("license", "license (default: the project's)"),
        ("prefix", "install directory (default: /opt/NAME)"),
        ("host-config", "the host buildout %%post runs (default: /etc/NAME/host.cfg)"),
        ("python", "the Python the venv is made with (default: /usr/bin/python3)"),
        ("template", "a spec template to use instead of the packaged release.spec.j2"),
    ):
        rpm.add_argument(f"--{option}", default=None, help=helptext)
    rpm.add_argument(
        "--requires",
        action="append",
        default=None,
        metavar="REQ",
        help="a Requires: line (repeatable; default: python(abi) = "
        "the Python version of the release)",
    )


def _fleet_commands(commands) -> None:
    fleet = commands.add_parser(
        "fleet",
        help="systems (level 4): compile a model of services "
        "spanning hosts into one host.cfg per host",
    )
    actions = fleet.add_subparsers(dest="action", required=True)
    compile_ = actions.add_parser(
        "compile", help="allocate hosts and ports (the lock), then write one host.cfg per host"
    )
    explain = actions.add_parser(
        "explain", help="each value of a host's compiled configuration and where it came from"
    )
    for parser in (compile_, explain):
        parser.add_argument("-m", "--model", required=True, help="the system model (TOML)")
        parser.add_argument(
            "--profiles",
            default=None,
            metavar="DIR",
            help="where to read the roles (default: the profiles that ship "
            "with system-recipes, `system-recipes profiles`)",
        )
    compile_.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DIR",
        help="directory for HOST.cfg (default: beside the model, named "
        "after it: shop.toml -> shop/)",
    )
    compile_.add_argument(
        "--allow-moves",
        action="store_true",
        help="allow moving a placed instance or changing an allocated port",
    )
    compile_.add_argument(
        "--force",
        action="store_true",
        help="replace or remove files in DIR that fleet compile did not write, or that were "
        "changed by hand since (default: refused; DIR/.fleet-compile.json records what it wrote)",
    )
    explain.add_argument("host", help="a host of the model")
    from system_recipes.fleet.controller.commands import add_run_parsers
    from system_recipes.fleet.controller.trust import add_parser as add_trust

    add_trust(actions)
    add_run_parsers(actions)


def run_fleet_command(args: argparse.Namespace) -> int:
    from system_recipes.fleet.controller.commands import run_compile, run_explain, run_fleet
    from system_recipes.shipped import profiles_directory

    if args.action == "trust":
        from system_recipes.fleet.controller.trust import run_trust

        return run_trust(args)
    profiles = args.profiles or profiles_directory()
    if args.action in ("plan", "apply", "status", "export"):
        return run_fleet(args, profiles)
    if args.action == "compile":
        return run_compile(args.model, args.output, args.allow_moves, profiles, force=args.force)
    return run_explain(args.model, args.host, profiles)


def run_release_command(args) -> int:
    if args.command == "profiles":
        from system_recipes.shipped import profiles_directory

        path = profiles_directory()
    elif args.command == "release":
        from system_recipes.release.tarball import build_release

        path = build_release(
            args.path,
            args.output,
            find_links=args.find_links,
            offline=args.offline,
            system_recipes=args.system_recipes,
            cache=args.cache,
        )
    else:
        from system_recipes.release.rpm import build_rpm

        path = build_rpm(
            args.tarball,
            args.output,
            name=args.name,
            version=args.version,
            release=args.release,
            summary=args.summary,
            license=args.license,
            prefix=args.prefix,
            host_config=args.host_config,
            python=args.python,
            template=args.template,
            requires=args.requires,
        )
    report.say(path)
    return 0

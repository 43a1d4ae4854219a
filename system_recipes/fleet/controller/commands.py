"""``system-recipes fleet compile`` and ``fleet explain`` (and ``fleet plan|apply|status``):
what system_recipes/commands/cli.py calls."""

from __future__ import annotations

import argparse
import os

from system_recipes.core.plan import report
from system_recipes.fleet.compile.compiler import check_output, compile_hosts, write
from system_recipes.fleet.files import read_text, write_atomic
from system_recipes.fleet.model.allocate import update
from system_recipes.fleet.model.spec import lock_path


def default_output(model_path: str) -> str:
    """``profiles/systems/shop.toml`` -> ``profiles/systems/shop/``: beside the model and its
    lock, one directory per model."""
    return os.path.splitext(model_path)[0]


def run_compile(
    model_path: str,
    output: str | None,
    allow_moves: bool,
    profiles: str,
    force: bool = False,
) -> int:
    """Allocate, compile every host, then write the lock and the host.cfg files: one line per
    allocation change and per host. Nothing is written when anything is refused: a file in
    the output that fleet compile did not write (or one changed by hand since) included,
    unless ``force``."""
    model, allocation = update(model_path, allow_moves=allow_moves, write=False)
    configs = compile_hosts(model, allocation, profiles)
    writes = check_output(
        output or default_output(model_path),
        model,
        {host: config.text() for host, config in configs.items()},
        force,
    )
    lock = lock_path(model_path)
    text = allocation.text(model)
    if read_text(lock) != text:
        write_atomic(lock, text)
    for line in allocation.changes:
        report.say(line)
    for line in write(writes):
        report.say(line)
    return 0


def run_explain(model_path: str, host: str, profiles: str) -> int:
    """Each value of ``host``'s compiled configuration and where it came from. Reads the lock
    as it is (a model that needs a new allocation is refused: compile it first)."""
    model, allocation = update(model_path, allow_moves=False, write=False)
    if host not in model.hosts:
        from system_recipes.fleet.model.tables import ModelError

        raise ModelError(
            "hosts",
            None,
            f"{host[:100]!r} is not a host of the model",
            "one of " + ", ".join(model.hosts),
        )
    if allocation.changes:
        from system_recipes.fleet.model.tables import ModelError

        raise ModelError(
            None,
            None,
            f"the lock is not current ({allocation.changes[0]}); run "
            "`system-recipes fleet compile` first",
            source=lock_path(model_path),
        )
    config = compile_hosts(model, allocation, profiles)[host]
    instances = [
        f"{i.name} (port {i.port})" if i.port else i.name for i in allocation.instances(host=host)
    ]
    report.say(
        f"{host} ({model.hosts[host].address}) runs "
        f"{', '.join(instances) or 'no instance'}; model {os.path.basename(model_path)}, "
        f"lock {os.path.basename(lock_path(model_path))}"
    )
    for section, option, value, origin in config.rows():
        if "\n" in value:
            report.say(f"[{section}] {option} =")
            for line in value.split("\n"):
                report.say(f"    {line}")
        else:
            report.say(f"[{section}] {option} = {value}")
        report.say(f"    <- {origin}")
    return 0


def add_run_parsers(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``fleet plan|apply|status``: the options of a run over ssh."""
    helps = {
        "plan": "what applying the system would change on each host (over ssh)",
        "apply": "apply the system, host by host in waves (over ssh)",
        "status": "what each host applied, and its drift (over ssh)",
    }
    for action, text in helps.items():
        parser = actions.add_parser(action, help=text)
        parser.add_argument("-m", "--model", required=True, help="the system model (TOML)")
        parser.add_argument(
            "--profiles",
            default=None,
            metavar="DIR",
            help="where to read the roles (default: the shipped profiles)",
        )
        parser.add_argument(
            "--forks",
            type=int,
            default=10,
            metavar="N",
            help="hosts in flight at once (default 10)",
        )
        parser.add_argument(
            "-F",
            dest="ssh_config",
            default=None,
            metavar="FILE",
            help="an ssh_config to use instead of ~/.ssh/config",
        )
        parser.add_argument(
            "--entry-point",
            default="system-recipes",
            metavar="PATH",
            help="the hosts' system-recipes (default: system-recipes)",
        )
        parser.add_argument(
            "--log-dir",
            default=None,
            metavar="DIR",
            help="where this run's logs go (default: .fleet/runs/ID/ beside the model)",
        )
        parser.add_argument(
            "--allow-moves",
            action="store_true",
            help="allow an allocation change (apply writes the lock)",
        )
        if action != "status":
            parser.add_argument(
                "--force",
                action="store_true",
                help="send a revision older than what a host applied",
            )
    from system_recipes.fleet.export.ansible import add_parser as add_export

    add_export(actions)
    plan, apply = actions.choices["plan"], actions.choices["apply"]
    plan.add_argument("--diff", action="store_true", help="show each host's file diffs")
    apply.add_argument(
        "--max-fail",
        default="0",
        metavar="N|P%",
        help="failed hosts tolerated before no new host starts (default 0)",
    )
    apply.add_argument(
        "--check-timeout",
        type=float,
        default=30,
        metavar="S",
        help="how long a host's checks may take to pass (default 30)",
    )
    apply.add_argument(
        "--confirm-timeout",
        type=float,
        default=60,
        metavar="S",
        help="a changed host rolls itself back unless confirmed over a new "
        "connection within S seconds (default 60; 0: off)",
    )


def run_fleet(args: argparse.Namespace, profiles: str) -> int:
    """``fleet plan|apply|status`` (and ``fleet export``): 1 for a model error (no host
    contacted)."""
    if args.action == "export":
        from system_recipes.fleet.export.ansible import run_export

        return run_export(args, profiles)
    from system_recipes.fleet.compile.prepare import prepare
    from system_recipes.fleet.controller.orchestrate import (
        FleetRun,
        RunOptions,
        controller_connections,
        failure_limit,
    )
    from system_recipes.fleet.controller.output import Output, run_directory
    from system_recipes.fleet.controller.transport import ControllerError
    from system_recipes.fleet.controller.trust import known_hosts_path
    from system_recipes.fleet.model.tables import ModelError

    if args.forks < 1:
        raise ModelError(None, None, f"--forks: {args.forks} (expected 1 or more)", source="fleet")
    settings = RunOptions(
        forks=args.forks,
        known_hosts=known_hosts_path(args.model),
        ssh_config=args.ssh_config,
        entry_point=args.entry_point,
        force=getattr(args, "force", False),
        diff=getattr(args, "diff", False),
        max_fail=getattr(args, "max_fail", "0"),
        check_timeout=getattr(args, "check_timeout", 30),
        confirm_timeout=getattr(args, "confirm_timeout", 0),
    )
    try:
        failure_limit(settings.max_fail, 1)
    except ValueError as error:
        raise ModelError(None, None, str(error), source="fleet") from None
    system = prepare(args.model, profiles, allow_moves=args.allow_moves)
    try:  # a file the controller cannot read is its mistake: one line, before any host
        connections = controller_connections(system, settings, check=True)
    except ControllerError as error:
        raise ModelError(None, None, error.problem, source=error.source) from None
    output = Output(
        args.action, list(system.hosts), run_directory(args.model, args.action, args.log_dir)
    )
    return FleetRun(args.action, system, settings, output, connections).run()

"""Daemon reloads, batched: each kind of reload runs once per run, after the commit.

A handler says what it did: the targets it acted on, those it skipped (its daemon is not
running: nothing was reloaded, and the summary must not claim it was) and its problems.
Restarts (``supervisor-restart``, ``systemd-restart``, ``sysv-restart``) run after the reloads
and leave out what the reload of their daemon already restarted in the same run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from system_recipes.core.declare.schema import Lines, Option, OptionType
from system_recipes.core.declare.settings import Settings
from system_recipes.core.declare.specs import Reload


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    #: targets not acted on, with why: ``{"shop": "supervisord is not running"}``
    skipped: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> Outcome:
        self.done += other.done
        self.skipped.update(other.skipped)
        self.problems += other.problems
        return self


Handler = Callable[[list[str], Settings], "Outcome | list[str]"]
HANDLERS: dict[str, Handler] = {}
#: a handler as it is declared (its own, narrower signature is kept for its callers)
H = TypeVar("H", bound=Handler)
#: restart kind -> the reload kind whose targets it already restarts (done once, not twice)
COVERED_BY: dict[str, str] = {}
#: how a ``restart`` option names a restart: ``supervisor PROGRAM`` -> ``supervisor-restart``
RESTART_KINDS = {
    "supervisor": "supervisor-restart",
    "systemd": "systemd-restart",
    "sysv": "sysv-restart",
}


def register(kind: str, covered_by: str | None = None) -> Callable[[H], H]:
    """Register ``handler(targets, settings) -> Outcome`` (or a list of problems, meaning every
    target was done) for reloads of ``kind``."""

    def decorate(handler: H) -> H:
        HANDLERS[kind] = handler
        if covered_by:
            COVERED_BY[kind] = covered_by
        return handler

    return decorate


def parse_restart(text: str) -> Reload:
    """``supervisor shop`` / ``systemd shop.service`` / ``sysv shop`` -> a restart; ValueError."""
    words = text.split()
    if len(words) != 2 or words[0] not in RESTART_KINDS:
        raise ValueError(f"{text.strip()[:100]!r} is not a restart")
    return Reload(RESTART_KINDS[words[0]], words[1])


class Restart(OptionType):
    expected = "supervisor PROGRAM, systemd UNIT or sysv NAME"

    def parse(self, text: str) -> Reload:
        return parse_restart(text)


def restart_option() -> Option:
    return Option(
        "restart",
        Lines(Restart()),
        default=[],
        help="services to restart once, after the commit, when this changed: one per "
        "line, `supervisor PROGRAM`, `systemd UNIT` or `sysv NAME`; a service "
        "that is not running stays stopped (reported as skipped)",
    )


@register("command")
def run_commands(targets: list[str], settings: Settings) -> list[str]:
    problems = []
    for command in targets:
        result = subprocess.run(command, shell=True, capture_output=True, text=True)
        if result.returncode:
            output = (result.stderr or result.stdout).strip().splitlines()
            problems.append(
                f"{command!r} exited {result.returncode}" + (f": {output[-1]}" if output else "")
            )
    return problems


def group(reloads: list[Reload]) -> dict[str, list[str]]:
    """Targets by kind, each once; restarts last, without what their daemon's reload covers."""
    grouped: dict[str, list[str]] = {}
    for item in sorted(reloads, key=lambda r: r.kind in COVERED_BY or r.kind.endswith("-restart")):
        targets = grouped.setdefault(item.kind, [])
        if item.target not in targets:
            targets.append(item.target)
    for kind, base in COVERED_BY.items():
        if kind in grouped:
            grouped[kind] = [t for t in grouped[kind] if t not in grouped.get(base, ())]
            if not grouped[kind]:
                del grouped[kind]
    return grouped


#: a summary names this many targets of a kind, and counts the rest (all of them with -v): a
#: host of 1000 programs made one summary line of 10 KB
HANDFUL = 5


def names(targets: list[str], verbose: bool = False) -> str:
    """``a b c``, or ``a b c d e and 995 more``."""
    if verbose or len(targets) <= HANDFUL:
        return " ".join(targets)
    return " ".join(targets[:HANDFUL]) + f" and {len(targets) - HANDFUL} more"


def describe(grouped: dict[str, list[str]], verbose: bool = False) -> str:
    return ", ".join(f"{kind} ({names(targets, verbose)})" for kind, targets in grouped.items())


def perform(
    reloads: list[Reload], settings: Settings, verbose: bool = False
) -> tuple[str, list[str]]:
    """Run the reloads; returns (what happened, problems). What happened names a handful of
    targets of each kind (all of them when ``verbose``); problems are all there."""
    grouped = group(reloads)
    if not grouped:
        return "none", []
    if settings.reload == "off":
        return describe(grouped, verbose) + " skipped (reload = off)", []
    if not settings.live:
        return describe(grouped, verbose) + f" skipped (root is {settings.root}, not /)", []
    problems: list[str] = []
    said: list[str] = []
    for kind, targets in grouped.items():
        handler = HANDLERS.get(kind)
        if handler is None:
            problems.append(f"no reload handler for {kind!r} ({' '.join(targets)})")
            continue
        outcome = handler(targets, settings)
        if not isinstance(outcome, Outcome):
            outcome = Outcome(done=list(targets), problems=list(outcome))
        problems += outcome.problems
        if outcome.done:
            said.append(f"{kind} ({names(outcome.done, verbose)})")
        reasons: dict[str, list[str]] = {}
        for target, reason in outcome.skipped.items():
            reasons.setdefault(reason, []).append(target)
        for reason, skipped in reasons.items():
            said.append(f"{kind} ({names(skipped, verbose)}) skipped ({reason})")
    return ", ".join(said) or "none", problems

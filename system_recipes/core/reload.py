"""Daemon reloads, batched: each kind of reload runs once per run, after the commit."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from .model import Reload
from .settings import Settings

Handler = Callable[[list[str], Settings], list[str]]
HANDLERS: dict[str, Handler] = {}


def register(kind: str):
    """Register ``handler(targets, settings) -> problems`` for reloads of ``kind``."""

    def decorate(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return decorate


@register("command")
def run_commands(targets: list[str], settings: Settings) -> list[str]:
    problems = []
    for command in targets:
        result = subprocess.run(command, shell=True, capture_output=True, text=True)
        if result.returncode:
            output = (result.stderr or result.stdout).strip().splitlines()
            problems.append(f"{command!r} exited {result.returncode}"
                            + (f": {output[-1]}" if output else ""))
    return problems


def group(reloads: list[Reload]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for item in reloads:
        targets = grouped.setdefault(item.kind, [])
        if item.target not in targets:
            targets.append(item.target)
    return grouped


def describe(grouped: dict[str, list[str]]) -> str:
    return ", ".join(f"{kind} ({' '.join(targets)})" for kind, targets in grouped.items())


def perform(reloads: list[Reload], settings: Settings) -> tuple[str, list[str]]:
    """Run the reloads; returns (what happened, problems)."""
    grouped = group(reloads)
    if not grouped:
        return "none", []
    if settings.reload == "off":
        return describe(grouped) + " skipped (reload = off)", []
    if not settings.live:
        return describe(grouped) + f" skipped (root is {settings.root}, not /)", []
    problems = []
    for kind, targets in grouped.items():
        handler = HANDLERS.get(kind)
        if handler is None:
            problems.append(f"no reload handler for {kind!r} ({' '.join(targets)})")
            continue
        problems += handler(targets, settings)
    return describe(grouped), problems

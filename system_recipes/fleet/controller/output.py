"""What a fleet run shows and keeps: one line per host per state change, the run's logs.

On a terminal (stdout is a tty) the hosts are a live table, one line per host and the counters
under it (``rich``, imported only then); otherwise each state change of a host is one line,
``HOST: STATE[: DETAIL]``, and the run ends with a summary line. Whatever the output, the run
keeps a directory (``.fleet/runs/ID/`` beside the model, or ``--log-dir``): ``HOST.log``, the
JSON lines fleet-host printed for that host, the controller's notes and the host's stderr, and
``summary.json``, every host's final state. The closing lines name the log of each host that
failed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from system_recipes.core.plan import report
from system_recipes.fleet.protocol import HostState, Step

if TYPE_CHECKING:
    from rich.console import Group


def counted(number: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``0 file changes``: a count and its noun (an ``s`` unless 1)."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def run_directory(model_path: str, action: str, log_dir: str | None) -> str:
    """A new directory for this run's logs: ``--log-dir`` as given, else
    ``.fleet/runs/YYYYmmddTHHMMSSZ-ACTION[-N]/`` beside the model (``.fleet/`` ignores itself
    in git)."""
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        return log_dir
    base = os.path.join(os.path.dirname(os.path.abspath(model_path)), ".fleet")
    runs = os.path.join(base, "runs")
    os.makedirs(runs, exist_ok=True)
    ignore = os.path.join(base, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w") as stream:
            stream.write("# the logs of fleet runs (system-recipes fleet plan|apply|status)\n*\n")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{action}"
    for number in range(1, 1000):
        path = os.path.join(runs, stamp if number == 1 else f"{stamp}-{number}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise OSError(f"{runs}: no free run directory for {stamp}")


@dataclass
class HostLine:
    name: str
    wave: int = 0
    state: HostState = HostState.WAITING
    detail: str = ""
    started: float | None = None
    seconds: float | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state.final


class Output:
    """Thread-safe: the workers report their hosts' states and events from their threads."""

    def __init__(self, action: str, hosts: list[str], directory: str, live: bool | None = None):
        self.action, self.directory = action, directory
        self.hosts = {name: HostLine(name) for name in hosts}
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.notes: list[str] = []
        self.live = sys.stdout.isatty() if live is None else live
        self.view = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self.console = Console()
            self.view = Live(
                self.render(), console=self.console, refresh_per_second=8, transient=False
            )
            self.view.start()

    # -- what the workers report ----------------------------------------------------------------

    def log(self, host: str, text: str) -> None:
        """A line into the host's log only."""
        with self.lock, open(self.log_path(host), "a", encoding="utf-8") as stream:
            stream.write(text.rstrip("\n") + "\n")

    def event(self, host: str, event: dict) -> None:
        """A JSON line of fleet-host: into the log; on the live view, its step as detail."""
        line = self.hosts[host]
        line.events.append(event)
        self.log(host, json.dumps(event))
        if self.view is not None and not line.final and event.get("step") != Step.DONE:
            line.detail = f"{event.get('step')}: {event.get('result')}"
            self.refresh()

    def state(self, host: str, state: HostState, detail: str = "") -> None:
        state = HostState(state)
        line = self.hosts[host]
        now = time.monotonic()
        if (
            line.started is None
            and state not in (HostState.WAITING, HostState.NOT_STARTED)
            or state == HostState.APPLYING
        ):  # an apply's time is its own, not its wave's wait
            line.started = now
        if state.final and line.started is not None:
            line.seconds = now - line.started
        line.state, line.detail = state, detail
        text = f"{host}: {state}" + (f": {detail}" if detail else "")
        if state.final and line.seconds is not None:
            text += f" ({line.seconds:.1f} s)"
        self.log(host, f"# {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {text}")
        if self.view is None:
            report.say(text)
        else:
            self.refresh()

    def say(self, text: str) -> None:
        """A line about the whole run (printed above the live table on a terminal)."""
        self.notes.append(text)
        if self.view is None:
            report.say(text)
        else:
            self.console.print(text, highlight=False, markup=False)

    # -- the live view --------------------------------------------------------------------------

    def refresh(self) -> None:
        if self.view is not None:
            self.view.update(self.render())

    def render(self) -> Group:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("host", "wave", "state", "detail", "time"):
            table.add_column(column, no_wrap=column != "detail", overflow="ellipsis")
        now = time.monotonic()
        for line in self.hosts.values():
            seconds = (
                line.seconds
                if line.seconds is not None
                else (now - line.started if line.started is not None else None)
            )
            style = (
                "red"
                if line.state.failed
                else "green"
                if line.final
                else "yellow"
                if line.started is not None
                else "dim"
            )
            table.add_row(
                line.name,
                str(line.wave or ""),
                f"[{style}]{line.state}[/]",
                line.detail,
                f"{seconds:.1f}s" if seconds is not None else "",
            )
        from rich.console import Group
        from rich.text import Text

        return Group(table, Text(self.counters(), style="bold"))

    def counters(self) -> str:
        counts = self.counts()
        running = sum(
            1 for line in self.hosts.values() if line.started is not None and not line.final
        )
        waiting = sum(1 for line in self.hosts.values() if line.started is None and not line.final)
        parts = [counted(len(self.hosts), "host"), f"{running} running", f"{waiting} waiting"]
        parts += [f"{count} {state}" for state, count in counts.items()]
        return ", ".join(parts) + f" ({time.monotonic() - self.started:.1f} s)"

    def counts(self) -> dict[HostState, int]:
        counts = {state: 0 for state in HostState.counted()}
        for line in self.hosts.values():
            if line.state in counts:
                counts[line.state] += 1
        return {state: count for state, count in counts.items() if count}

    # -- the end ------------------------------------------------------------------------------

    def log_path(self, host: str) -> str:
        return os.path.join(self.directory, f"{host}.log")

    def close(self, code: int, revision: int, stopped: str | None = None) -> None:
        """The summary: summary.json, the closing line, then one line per host that failed
        (naming its log) and the hosts never started."""
        if self.view is not None:
            self.view.update(self.render())
            self.view.stop()
            self.view = None
        seconds = time.monotonic() - self.started
        summary = {
            "action": self.action,
            "exit": code,
            "revision": revision,
            "stopped": stopped,
            "seconds": round(seconds, 3),
            "counts": self.counts(),
            "hosts": {
                name: {
                    "state": line.state,
                    "detail": line.detail,
                    "wave": line.wave,
                    "log": self.log_path(name),
                    "seconds": None if line.seconds is None else round(line.seconds, 3),
                }
                for name, line in self.hosts.items()
            },
        }
        with open(os.path.join(self.directory, "summary.json"), "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=2)
            stream.write("\n")
        counts = ", ".join(f"{count} {state}" for state, count in self.counts().items())
        report.say(
            f"{self.action}: {counted(len(self.hosts), 'host')}, {counts or 'nothing done'}"
            f"{', stopped: ' + stopped if stopped else ''} ({seconds:.1f} s, revision "
            f"{revision}); exit {code}; logs in {self.directory}"
        )
        for name, line in self.hosts.items():
            if line.state.failed and line.state != HostState.NOT_STARTED:
                report.say(f"  {name}: {line.state}: {line.detail} (log: {self.log_path(name)})")
        never = [name for name, line in self.hosts.items() if line.state == HostState.NOT_STARTED]
        if never:
            report.say(f"  not started: {', '.join(never)}")

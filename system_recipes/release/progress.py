"""What step ``system-recipes release`` or ``rpm`` is at, for an operator watching a terminal.

Both take seconds (pip resolving and building wheels; rpmbuild installing the venv), which
would otherwise pass in silence. When stderr is a terminal, one line there says the step
running and the seconds it has taken so far (``rpm: rpmbuild %install: install.sh installs
the venv (4 s)``), rewritten in place as the step changes and every second, and erased
before the command prints its result or its error. When stderr is not a terminal (a pipe, a
file, a test capturing it) nothing is written, and the tools run exactly as without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """The step a command is at, on one line of ``stream`` rewritten in place, or nothing when
    ``stream`` is not a terminal. Use as a context manager: the line is erased on the way out,
    whatever ends the command."""

    def __init__(self, command: str, stream: TextIO | None = None, enabled: bool | None = None):
        self.command = command
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            try:
                enabled = self.stream.isatty()
            except (AttributeError, ValueError):  # a closed or file-less stream
                enabled = False
        self.enabled = enabled
        self.text = ""
        self.started = time.monotonic()
        self.shown = 0  # how many characters the line holds now
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self.ticker = threading.Thread(target=self._tick, daemon=True)
            self.ticker.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join()
        with self.lock:
            self._write("")

    def step(self, text: str) -> None:
        """A new step: shown at once, its seconds counted from now (the same step again goes
        on counting)."""
        if not self.enabled:
            return
        with self.lock:
            if text != self.text:
                self.text, self.started = text, time.monotonic()
            self._write(self._line())

    def _tick(self) -> None:
        while not self.stopped.wait(1.0):
            with self.lock:
                if self.text:
                    self._write(self._line())

    def _line(self) -> str:
        return f"{self.command}: {self.text} ({int(time.monotonic() - self.started)} s)"

    def _write(self, line: str) -> None:
        if not self.enabled or (not line and not self.shown):
            return
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns or 80  # 0: not known
        except (OSError, ValueError):
            width = 80
        line = line[: max(width - 1, 10)]  # a line that wraps could not be rewritten in place
        try:
            # back to the line's start, the new text, blanks over what is left of the old one
            blanks = " " * (self.shown - len(line))
            self.stream.write("\r" + line + blanks + ("\r" if not line else ""))
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the command goes on
            self.enabled = False
        self.shown = len(line)


def run(
    command: list[str],
    progress: Progress,
    watch: Callable[[str], str | None],
    **options,
) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True, **options)``; on a terminal,
    each line the command prints (stdout or stderr) is given to ``watch`` as it comes, and a
    step it returns is shown. Not on a terminal, exactly ``subprocess.run``."""
    if not progress.enabled:
        return subprocess.run(command, capture_output=True, text=True, **options)
    timeout = options.pop("timeout", None)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    )
    captured: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def read(stream: TextIO, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            step = watch(line.strip())
            if step:
                progress.step(step)

    assert process.stdout is not None and process.stderr is not None  # PIPE above
    readers = [
        threading.Thread(target=read, args=(process.stdout, captured["stdout"]), daemon=True),
        threading.Thread(target=read, args=(process.stderr, captured["stderr"]), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=timeout)
    except BaseException:  # the timeout, or Ctrl-C: as subprocess.run, kill and wait
        process.kill()
        process.wait()
        raise
    finally:
        for reader in readers:
            reader.join()
        process.stdout.close()
        process.stderr.close()
    return subprocess.CompletedProcess(
        command, process.returncode, "".join(captured["stdout"]), "".join(captured["stderr"])
    )


def rpmbuild_step(line: str) -> str | None:
    """The step an ``rpmbuild`` output line starts, in the operator's words."""
    if line.startswith(("Processing files:", "Executing(%doc)")):
        return PACKAGING  # %doc copies release.json, among the files being packaged
    if line.startswith("Executing(%"):
        section = line[len("Executing(") :].split(")", 1)[0]
        return f"rpmbuild {section}" + SECTIONS.get(section, "")
    if line.startswith("Wrote:"):
        return "rpmbuild: written"
    return None


PACKAGING = "rpmbuild: packaging the files (digests, compressed payload)"
SECTIONS = {
    "%prep": ": unpacking the release",
    "%install": ": install.sh installs the venv, offline",
    "%clean": ": removing the build root",
}


def pip_wheel_step(line: str) -> str | None:
    """The step a ``pip wheel`` output line starts: the distribution being resolved or built."""
    words = line.split()
    if len(words) >= 2 and words[0] == "Collecting":
        return f"pip wheel: collecting {words[1]}"
    if len(words) >= 4 and words[:3] == ["Building", "wheel", "for"]:
        return f"pip wheel: building the wheel of {words[3]}"
    return None

"""Validators: the real tools judge rendered content before anything is written.

A validator sees only files whose content changed, all of them at once, so a run starts at
most one process per tool (none on a no-op run). Results are cached by content hash.
A validator whose tool is missing is an error (``validate = required``), a warning (``warn``),
or skipped (``off``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from system_recipes.core.declare.errors import PROBLEM, clip, shown
from system_recipes.core.declare.specs import Check, FileSpec

SBIN_PATH = os.pathsep.join(
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
)
PROCESS_COUNT = {"n": 0}


@dataclass(frozen=True)
class ValidationContext:
    """What every validator of one run may know besides the files it judges: the install root
    it judges against, the directories the run is about to make, and the files it removes
    (another file of an include directory that is leaving must not count as a clash)."""

    root: str = "/"
    planned_directories: frozenset[str] = frozenset()
    leaving: frozenset[str] = frozenset()

    def below(self, path: str) -> str:
        """``path`` of the host as seen from here (below the root)."""
        return os.path.join(self.root, path.lstrip("/"))


Context = TypeVar("Context")


@dataclass(frozen=True)
class Item:
    part: str
    file: FileSpec
    check: Check

    def given(self, kind: type[Context]) -> Context:
        """The context the recipe gave this item's check: a ``kind`` (the validator's own frozen
        dataclass), or ``kind()`` when it gave none (a kind whose fields all have defaults).
        Anything else is a recipe's mistake, not the user's: TypeError."""
        context = self.check.context
        if context is None:
            try:
                return kind()
            except TypeError:
                pass
        if not isinstance(context, kind):
            raise TypeError(
                f"the {self.check.validator} check of {self.file.path} needs a {kind.__name__} "
                f"as its context, not {context!r}"
            )
        return context


# a tool's message may quote a whole value; beside the line it names (echoed shorter still)
# it gets less room
TOOL_MESSAGE, LINE_SHOWN = 150, 30


@dataclass(frozen=True)
class Problem:
    """A validator's complaint about one line of a file, with the option that wrote that line
    (see :func:`trace`), so the error names what the user wrote rather than a generated file."""

    message: str
    line: int | None = None
    option: str | None = None
    text: str = ""  # the line itself, as written in the file


@dataclass(frozen=True)
class Finding:
    part: str
    path: str
    message: str
    fatal: bool
    line: int | None = None
    option: str | None = None
    text: str = ""

    def __str__(self) -> str:
        """``[part] option: message (line N of PATH: 'text')``, or ``[part] PATH: message``
        when no option wrote the line. Tool output is clipped: it may echo a whole value."""
        if self.line is None:
            if self.option:
                return f"[{self.part}] {self.option}: {clip(self.message, PROBLEM)} ({self.path})"
            return f"[{self.part}] {self.path}: {clip(self.message, PROBLEM)}"
        message = clip(self.message, TOOL_MESSAGE)
        where = f"line {self.line} of {self.path}" if self.option else f"line {self.line}"
        where += f": {shown(self.text, LINE_SHOWN)}" if self.text else ""
        if self.option:
            return f"[{self.part}] {self.option}: {message} ({where})"
        return f"[{self.part}] {self.path}: {message} ({where})"


def _normal(line: str) -> str:
    return " ".join(line.split())


def trace(content: bytes | str, claims: list[tuple[str, str]]) -> tuple[str, ...]:
    """The option that wrote each line of a rendered file (``""``: the template itself).

    ``claims`` are ``(option, line)`` in the order the template writes them; each claims the
    next line of the file with the same text (blanks are not compared). The file is matched,
    not counted, so a template that adds or drops lines still maps every claimed line right;
    an unclaimed line (a header, a brace) belongs to no option.
    """
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    lines = [_normal(line) for line in text.split("\n")]
    origins = [""] * len(lines)
    position = 0
    for option, line in claims:
        wanted = _normal(line)
        if not wanted:
            continue
        for number in range(position, len(lines)):
            if lines[number] == wanted and not origins[number]:
                origins[number] = option
                position = number + 1
                break
    return tuple(origins)


def locate(message: str, content: bytes | str, number: int, origins: tuple[str, ...]) -> Problem:
    """A tool's ``message`` about line ``number`` (1-based) of ``content``."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    lines = text.split("\n")
    line = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    option = origins[number - 1] if 0 < number <= len(origins) else ""
    return Problem(message, number, option or None, line)


class Validator:
    """Subclasses set ``name`` and ``tools`` and implement :meth:`check`."""

    name = ""
    tools: tuple[str, ...] = ()

    def check(self, items: list[Item], context: ValidationContext) -> Mapping[int, str | Problem]:
        """Map item index -> error message (or a :class:`Problem` naming a line) for every item
        the tool rejects."""
        raise NotImplementedError


REGISTRY: dict[str, Validator] = {}


def register(cls: type[Validator]) -> type[Validator]:
    REGISTRY[cls.name] = cls()
    return cls


def which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + os.pathsep + SBIN_PATH)


def run_tool(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a validator process (counted, so benchmarks can show how many a run starts)."""
    PROCESS_COUNT["n"] += 1
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + os.pathsep + SBIN_PATH, LC_ALL="C")
    return subprocess.run(command, env=env, **kwargs)


class Validation:
    def __init__(self, mode: str):
        self.mode = mode  # required, warn, off
        self._cache: dict[tuple, str | Problem | None] = {}

    def run(self, items: list[Item], context: ValidationContext) -> list[Finding]:
        if self.mode == "off":
            return []
        findings: list[Finding] = []
        by_validator: dict[str, list[Item]] = {}
        for item in items:
            key = (item.check, item.file.sha256, item.file.path)
            if key in self._cache:
                cached = self._cache[key]
                if cached:
                    findings.append(finding(item, cached))
                continue
            by_validator.setdefault(item.check.validator, []).append(item)
        for name, batch in by_validator.items():
            validator = REGISTRY[name]
            missing = [tool for tool in validator.tools if which(tool) is None]
            if missing:
                fatal = self.mode == "required"
                hint = "install it, or set [system-recipes] validate = warn"
                for item in batch:
                    findings.append(
                        Finding(
                            item.part,
                            item.file.path,
                            f"cannot validate: {missing[0]} is not installed ({hint})",
                            fatal,
                        )
                    )
                continue
            errors = validator.check(batch, context)
            for index, item in enumerate(batch):
                message = errors.get(index)
                self._cache[(item.check, item.file.sha256, item.file.path)] = message
                if message:
                    findings.append(finding(item, message))
        return findings


def finding(item: Item, message: str | Problem) -> Finding:
    if isinstance(message, Problem):
        return Finding(
            item.part,
            item.file.path,
            message.message,
            True,
            message.line,
            message.option,
            message.text,
        )
    return Finding(item.part, item.file.path, message, True)


def first_error_line(output: str, markers: tuple[str, ...] = ("error",)) -> str | None:
    for line in output.splitlines():
        if any(marker in line.lower() for marker in markers):
            return line.strip()
    return None


ValidatorFactory = Callable[[], Validator]


class ContentCache:
    """What an in-process check made of some text (python-crontab's reading of a cron file,
    supervisor's parse of a program file), by the sha256 of that text: the same content is
    read once per process, as :class:`Validation` asks an external validator once per content.
    Only pure functions of the text belong here (nothing that looks at the disk); a result is
    shared, so callers only read it. Bounded: the oldest results go first."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.results: OrderedDict[str, Any] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, compute: Callable[[], Any], *inputs: str) -> Any:
        digest = hashlib.sha256()
        for text in inputs:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
        key = digest.hexdigest()
        if key in self.results:
            self.hits += 1
            self.results.move_to_end(key)
            return self.results[key]
        self.misses += 1
        result = compute()  # an exception is not remembered: the next call raises it again
        self.results[key] = result
        if len(self.results) > self.size:
            self.results.popitem(last=False)
        return result

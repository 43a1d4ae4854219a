"""Validators: the real tools judge rendered content before anything is written.

A validator sees only files whose content changed, all of them at once, so a run starts at
most one process per tool (none on a no-op run). Results are cached by content hash.
A validator whose tool is missing is an error (``validate = required``), a warning (``warn``),
or skipped (``off``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from .model import Check, FileSpec

SBIN_PATH = os.pathsep.join(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                             "/sbin", "/bin"])
PROCESS_COUNT = {"n": 0}


@dataclass(frozen=True)
class Item:
    part: str
    file: FileSpec
    check: Check


@dataclass(frozen=True)
class Finding:
    part: str
    path: str
    message: str
    fatal: bool


class Validator:
    """Subclasses set ``name`` and ``tools`` and implement :meth:`check`."""

    name = ""
    tools: tuple[str, ...] = ()

    def check(self, items: list[Item]) -> dict[int, str]:
        """Map item index -> error message for every item the tool rejects."""
        raise NotImplementedError


REGISTRY: dict[str, Validator] = {}


def register(cls: type[Validator]) -> type[Validator]:
    REGISTRY[cls.name] = cls()
    return cls


def which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + os.pathsep + SBIN_PATH)


def run_tool(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a validator process (counted, so benchmarks can show how many a run starts)."""
    PROCESS_COUNT["n"] += 1
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + os.pathsep + SBIN_PATH, LC_ALL="C")
    return subprocess.run(command, env=env, **kwargs)


class Validation:
    def __init__(self, mode: str):
        self.mode = mode  # required, warn, off
        self._cache: dict[tuple, str | None] = {}

    def run(self, items: list[Item]) -> list[Finding]:
        if self.mode == "off":
            return []
        findings: list[Finding] = []
        by_validator: dict[str, list[Item]] = {}
        for item in items:
            key = (item.check, item.file.sha256, item.file.path)
            if key in self._cache:
                if self._cache[key]:
                    findings.append(Finding(item.part, item.file.path, self._cache[key], True))
                continue
            by_validator.setdefault(item.check.validator, []).append(item)
        for name, batch in by_validator.items():
            validator = REGISTRY[name]
            missing = [tool for tool in validator.tools if which(tool) is None]
            if missing:
                fatal = self.mode == "required"
                hint = "install it, or set [system-recipes] validate = warn"
                for item in batch:
                    findings.append(Finding(item.part, item.file.path,
                                            f"cannot validate: {missing[0]} is not installed "
                                            f"({hint})", fatal))
                continue
            errors = validator.check(batch)
            for index, item in enumerate(batch):
                message = errors.get(index)
                self._cache[(item.check, item.file.sha256, item.file.path)] = message
                if message:
                    findings.append(Finding(item.part, item.file.path, message, True))
        return findings


def first_error_line(output: str, markers: tuple[str, ...] = ("error",)) -> str | None:
    for line in output.splitlines():
        if any(marker in line.lower() for marker in markers):
            return line.strip()
    return None


ValidatorFactory = Callable[[], Validator]

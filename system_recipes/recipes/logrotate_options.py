"""The option types of ``system_recipes:logrotate``: what logrotate accepts in each place
(paths, sizes, date formats, ownership, scripts), as small converters that raise ValueError."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.schema import Account, Bool, Line, Name, OptionType, Text
from system_recipes.daemons.logrotate import ignored_by_logrotate

SIZE_UNITS = {"": 1, "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3}


PATH_FORBIDDEN = set("\"'\\{}")


CREATE_SYNTAX = "MODE [OWNER [GROUP]] (for instance 0640 app adm), true or false"


class FileName(Name):
    expected = Name.expected + ", not ending in a logrotate taboo extension (.bak, .rpmsave ...)"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        taboo = ignored_by_logrotate(value)
        if taboo:
            raise ValueError(f"logrotate ignores files named *{taboo} in its include directory")
        return value


class LogPath(Line):
    """An absolute glob; written in double quotes when it holds white space."""

    expected = "an absolute path or glob, without quotes or braces"

    def parse(self, text: str) -> str:
        value = text.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]  # quoting is allowed and done again when written
        value = super().parse(value)
        if not value.startswith("/"):
            raise ValueError(f"{shown(value)} is not absolute")
        if ".." in value.split("/"):
            raise ValueError(f"{shown(value)} contains '..'")
        bad = sorted(PATH_FORBIDDEN.intersection(value)) + [
            c for c in value if ord(c) < 32 and c != "\t"
        ]
        if bad:
            raise ValueError(
                f"{shown(value)} holds {shown(bad[0])}, which logrotate cannot read in a path"
            )
        return posixpath.normpath(value)


class Size(Line):
    expected = "a size in bytes, or with a unit: 100k, 10M, 1G"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        match = re.fullmatch(r"([0-9]+)([kKMG]?)", value)
        if not match:
            raise ValueError(f"{shown(value)} is not a size")
        if int(match.group(1)) * SIZE_UNITS[match.group(2)] >= 2**63:
            raise ValueError(f"{shown(value)} is too large")
        return value


class DateFormat(Line):
    expected = "strftime specifiers %Y %m %d %H %M %S %V %s and letters, digits, '-', '_', '.'"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not re.fullmatch(r"([A-Za-z0-9_.-]|%[YmdHMSVs])+", value):
            raise ValueError(f"{shown(value)} is not a logrotate date format")
        return value


class OldDir(Line):
    expected = "a directory (relative ones are relative to the log's), without spaces or quotes"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not value or any(c.isspace() or c in PATH_FORBIDDEN for c in value):
            raise ValueError(f"{shown(value)} is not a directory logrotate can read")
        return value


@dataclass(frozen=True)
class Ownership:
    """``create``/``createolddir`` arguments: ``MODE [OWNER [GROUP]]``."""

    mode: str | None
    owner: str | None = None
    group: str | None = None

    def words(self, substitute: bool = False) -> list[str]:
        names = [n for n in (self.owner, self.group) if n]
        return [w for w in [self.mode, *(["root"] * len(names) if substitute else names)] if w]


def parse_ownership(words: list[str]) -> Ownership:
    if not words or not re.fullmatch(r"[0-7]{3,4}", words[0]):
        raise ValueError(f"{shown(' '.join(words))} does not start with an octal mode")
    if len(words) > 3:
        raise ValueError(f"{shown(' '.join(words))} has more than MODE OWNER GROUP")
    names = [Account().parse(w) for w in words[1:]]
    return Ownership(words[0], *names)


class Create(OptionType):
    expected = CREATE_SYNTAX

    def parse(self, text: str) -> Ownership | bool:
        value = Line().parse(text)
        if value.lower() in Bool.TRUE | Bool.FALSE:
            return Bool().parse(value)
        return parse_ownership(value.split())


class AccountPair(OptionType):
    expected = "USER GROUP"

    def parse(self, text: str) -> tuple[str, str]:
        words = Line().parse(text).split()
        if len(words) != 2:
            raise ValueError(f"{shown(' '.join(words))} is not a user and a group")
        return Account().parse(words[0]), Account().parse(words[1])


class Script(OptionType):
    expected = "shell lines, none starting with endscript"

    def parse(self, text: str) -> list[str] | None:
        lines = [line.rstrip() for line in Text().parse(text).splitlines()]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        for line in lines:
            if line.lstrip().startswith("endscript"):
                raise ValueError(
                    f"the line {shown(line.strip())} would end the script early "
                    "(logrotate ends a script at any line starting with endscript)"
                )
            if "\r" in line:
                raise ValueError("holds a carriage return")
        return lines or None

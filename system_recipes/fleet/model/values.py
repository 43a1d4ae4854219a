"""Converters of the system model's TOML values: each states what it expects, raises ValueError.

TOML values arrive typed (str, int, bool, list, dict), so these check the type first and then
reuse the recipes' text converters (:mod:`system_recipes.core.declare.schema`) where one fits, so the
model and the recipes accept the same names, paths and numbers.

>>> Memory().parse("512M")
536870912
>>> size(1536 * 2**20)
'1536M'
>>> Port(auto=True).parse("auto")
'auto'
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from system_recipes.core.declare import datatypes
from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.schema import AbsolutePath, Integer, Line, OptionType
from system_recipes.core.declare.secret_names import (
    looks_secret as looks_secret,  # one rule for every floor
)

#: what a name in the model may be: it becomes a buildout section, a file name and (for a
#: service) an account, so lowercase letters, digits and '-' only
NAME = r"[a-z][a-z0-9-]{0,31}"
NAME_EXPECTED = "a name: a lowercase letter, then letters, digits or '-', at most 32"
TAG = r"[a-z0-9][a-z0-9_-]{0,62}"
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def type_name(value: Any) -> str:
    """How an error names a TOML value of the wrong type (never the value itself: it may be a
    table of anything)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {shown(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


class Str(OptionType):
    """A TOML string checked by one of the recipes' text converters."""

    def __init__(self, text: OptionType | None = None, expected: str | None = None):
        self.text = text or Line()
        self.expected = expected or self.text.expected

    def parse(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{type_name(value)} is not a string")
        return self.text.parse(value)


class Int(OptionType):
    """A TOML integer (not a boolean, not a string of digits)."""

    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.integer = Integer(minimum, maximum)
        self.expected = self.integer.expected

    def parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{type_name(value)} is not an integer")
        return self.integer.parse(str(value))


class Flag(OptionType):
    expected = "true or false"

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{type_name(value)} is not a boolean")
        return value


class Memory(OptionType):
    """A size in binary units: ``512M``, ``4G`` (1G = 1024M); the value is in bytes."""

    expected = "a size such as 512M or 4G, or 0; K, M, G and T are powers of 1024"

    def parse(self, value: Any) -> int:
        text = value.strip() if isinstance(value, str) else None
        if text == "0":
            return 0
        match = re.fullmatch(r"([0-9]{1,9})([KMGT])", text or "")
        if not match:
            raise ValueError(f"{type_name(value)} is not a size")
        return int(match.group(1)) * UNITS[match.group(2)]


def size(value: int) -> str:
    """Bytes in the largest unit that holds them exactly: ``1G``, ``1536M``."""
    for unit in "TGMK":
        if value and value % UNITS[unit] == 0:
            return f"{value // UNITS[unit]}{unit}"
    return str(value)


class Port(OptionType):
    """A TCP port number (:func:`..core.datatypes.port`, as the recipes read one), or
    (``auto=True``) the string ``"auto"``."""

    def __init__(self, auto: bool = False):
        self.auto = auto
        expected = datatypes.PORT_EXPECTED
        self.expected = f'{expected} or "auto"' if auto else expected

    def parse(self, value: Any) -> int | str:
        if self.auto and value == "auto":
            return "auto"
        return datatypes.port(Int().parse(value))


class PortRange(OptionType):
    expected = "a range of ports such as 20000-20999"

    def parse(self, value: Any) -> tuple[int, int]:
        text = Str().parse(value)
        match = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", text)
        if not match:
            raise ValueError(f"{shown(text)} is not a range")
        try:
            low, high = datatypes.port(match.group(1)), datatypes.port(match.group(2))
        except ValueError:
            low, high = 0, 0  # not ports: no range
        if not 0 < low <= high:
            raise ValueError(f"{shown(text)} is not a range of ports from low to high")
        return low, high


class List(OptionType):
    """A TOML array of items, each checked; duplicates are refused (they are always a slip)."""

    def __init__(self, item: OptionType):
        self.item = item
        self.expected = f"an array, each {item.expected}"

    def parse(self, value: Any) -> tuple:
        if not isinstance(value, list):
            raise ValueError(f"{type_name(value)} is not an array")
        items = []
        for element in value:
            item = self.item.parse(element)
            if item in items:
                raise ValueError(f"{shown(item)} is listed twice")
            items.append(item)
        return tuple(items)


class Address(OptionType):
    """Where the other hosts reach this one: an IP address or a DNS name."""

    expected = "an IP address or a DNS name"
    DNS = r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"

    def parse(self, value: Any) -> str:
        text = Str().parse(value)
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
        if re.fullmatch(r"[0-9.]+", text) or not re.fullmatch(self.DNS, text):
            raise ValueError(f"{shown(text)} is not an address")
        return text.lower()


class CheckOption(OptionType):
    """The meta-recipe's check forms; the port may be left out to mean the service's own port
    (which may be automatic), and the compiler writes the allocated number."""

    expected = "http [PORT] [PATH], tcp [PORT] or none; without PORT, the service's port"

    def parse(self, value: Any) -> tuple:
        words = tuple(Str().parse(value).split())
        if words == ("none",):
            return ("none",)
        kind, args = (words[0], list(words[1:])) if words else ("", [])
        port = None
        if args and args[0].isdigit():
            port = datatypes.port(int(args.pop(0)))
        if kind == "http" and len(args) <= 1:
            path = args[0] if args else "/"
            if not path.startswith("/"):
                raise ValueError(f"{shown(path)} is not a URL path")
            return ("http", port, Line(r"/[!-~]*", "a URL path").parse(path))
        if kind == "tcp" and not args:
            return ("tcp", port)
        raise ValueError(f"{shown(' '.join(words))} is not a check")


class SecretReference(OptionType):
    """Where the host reads a secret when the configuration is applied: never its value.

    An error never echoes what was written: it may be the secret itself."""

    expected = "a reference file:/ABSOLUTE/PATH, read on the host when it is applied"

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not value.startswith("file:/"):
            raise ValueError(
                "the value is not a reference (secrets by reference only; it is not shown)"
            )
        return "file:" + AbsolutePath().parse(value[len("file:") :])


class Setting(OptionType):
    """A refinement of a role's option: written into the host's buildout configuration."""

    expected = "a string, an integer or a boolean"

    def parse(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and "\0" not in value:
            return value
        raise ValueError(f"{type_name(value)} is not a setting")

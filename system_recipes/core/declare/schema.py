"""Options declared once: type, default, required, choices and help, checked in one place.

Each recipe declares a :class:`Schema`; :meth:`Schema.parse` turns a buildout section into typed
values or raises :class:`ConfigError` naming the section and option. The reference docs are
generated from the same declarations (``system-recipes docs``).

>>> schema = Schema([Option("rotate", Integer(minimum=0), default=14, help="copies to keep")])
>>> schema.parse("web-logs", {"rotate": "7"}).rotate
7
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from system_recipes.core.declare import datatypes
from system_recipes.core.declare.errors import ConfigError, clip, shown

IGNORED_OPTIONS = {"recipe"}


class OptionType:
    """Parses one option's text; raises ValueError with the problem, states what it expects."""

    expected = "text"

    def parse(self, text: str) -> Any:
        return text


class Text(OptionType):
    expected = "text"

    def parse(self, text: str) -> str:
        if "\0" in text:
            raise ValueError("contains a NUL byte")
        return text


class Line(OptionType):
    """A single line: a newline here would let a value inject lines into a config file."""

    expected = "a single line"

    def __init__(self, pattern: str | None = None, expected: str | None = None):
        self.pattern = re.compile(pattern) if pattern else None
        if expected:
            self.expected = expected

    def parse(self, text: str) -> str:
        value = text.strip()
        if any(c in value for c in "\n\r\0"):
            raise ValueError("must be a single line")
        if self.pattern and not self.pattern.fullmatch(value):
            raise ValueError(f"{shown(value)} is not valid")
        return value


class Bool(OptionType):
    expected = "true or false"
    TRUE = {"true", "yes", "on", "1"}
    FALSE = {"false", "no", "off", "0"}

    def parse(self, text: str) -> bool:
        value = text.strip().lower()
        if value in self.TRUE:
            return True
        if value in self.FALSE:
            return False
        raise ValueError(f"{shown(text.strip())} is not a boolean")


class Integer(OptionType):
    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        self.expected = "an integer" + (" " + " and ".join(bounds) if bounds else "")

    def parse(self, text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise ValueError(f"{shown(text.strip())} is not an integer") from None
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise ValueError(f"{clip(str(value))} is out of range")
        return value


class PortNumber(OptionType):
    """A TCP port (:func:`.datatypes.port`)."""

    expected = datatypes.PORT_EXPECTED

    def parse(self, text: str) -> int:
        return datatypes.port(text.strip())


class Mode(OptionType):
    expected = "an octal file mode such as 0644"

    def parse(self, text: str) -> int:
        value = text.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{3,4}", value):
            raise ValueError(f"{shown(text.strip())} is not an octal mode")
        return int(value, 8)


class Choice(OptionType):
    def __init__(self, *choices: str):
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)

    def parse(self, text: str) -> str:
        value = text.strip()
        if value not in self.choices:
            raise ValueError(f"{shown(value)} is not a choice")
        return value


class Lines(OptionType):
    """One item per line; blank lines and lines starting with # are dropped."""

    def __init__(self, item: OptionType | None = None):
        self.item = item or Line()
        self.expected = f"one item per line, each {self.item.expected}"

    def parse(self, text: str) -> list:
        items = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            items.append(self.item.parse(line))
        return items


class Name(Line):
    """A file name component: what becomes a file name must not escape its directory."""

    expected = "a name of letters, digits, '-', '_', '.' or '@', without '/' or '..'"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not value or value in (".", "..") or ".." in value or "/" in value:
            raise ValueError(f"{shown(value)} would escape its directory")
        if not re.fullmatch(r"[A-Za-z0-9_@][A-Za-z0-9_.@-]*", value):
            raise ValueError(f"{shown(value)} is not a plain file name")
        return value


class AbsolutePath(Line):
    """An absolute path on the host (it is written below the install root)."""

    expected = "an absolute path without '..'"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not value.startswith("/"):
            raise ValueError(f"{shown(value)} is not absolute")
        if ".." in value.split("/"):
            raise ValueError(f"{shown(value)} contains '..'")
        return posixpath.normpath(value)


class Directory(Line):
    """An absolute directory chosen by the operator (an install root): normalized."""

    expected = "an absolute directory"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not value.startswith("/"):
            raise ValueError(f"{shown(value)} is not absolute")
        return posixpath.normpath(value)


class Account(Line):
    expected = "a user or group name (lowercase letters, digits, '_' and '-')"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
            raise ValueError(f"{shown(value)} is not a valid account name")
        return value


class Assignments(OptionType):
    """Lines of KEY=value (environment variables)."""

    expected = "lines of KEY=value"

    def parse(self, text: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for line in Lines().parse(text):
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{shown(line)} is not KEY=value")
            result[key] = value.strip()
        return result


Default = Callable[["Values"], Any] | Any
REQUIRED = object()


@dataclass(frozen=True)
class Option:
    """One declared option. ``default`` may be a function of the values parsed so far."""

    name: str
    type: OptionType = field(default_factory=Line)
    default: Default = None
    required: bool = False
    help: str = ""

    def default_for(self, values: Values) -> Any:
        return self.default(values) if callable(self.default) else self.default

    def describe_default(self) -> str:
        if self.required:
            return "required"
        if callable(self.default):
            return (self.default.__doc__ or "computed").strip()
        if self.default is None:
            return "none"
        if isinstance(self.type, Mode):
            return f"{self.default:04o}"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default) if self.default != "" else "empty"


class Values(dict):
    """Parsed options; reachable as ``values['log-directory']`` or ``values.log_directory``."""

    # a slot, not an instance __dict__: every part keeps its Values (2 MB at 7000 parts)
    __slots__ = ("section",)

    def __init__(self) -> None:
        super().__init__()
        self.section = ""

    def __getattr__(self, name: str) -> Any:
        key = name.replace("_", "-")
        if key in self:
            return self[key]
        if name in self:
            return self[name]
        raise AttributeError(name)


def inline_comment_hint(problem: str, text: str) -> str:
    """buildout keeps ``value  # comment`` whole: say so when such a value is refused."""
    if re.search(r"\s[#;]", text):
        return problem + "; buildout keeps inline comments: put them on a line of their own"
    return problem


def unescape(text: str) -> str:
    """buildout hands ``$$`` to recipes unchanged; it means a literal ``$``."""
    return text.replace("$$", "$")


class Schema:
    """The declared options of one recipe, checked in one place."""

    def __init__(
        self,
        options: list[Option],
        extra: bool = False,
        extra_help: str = "",
        rules: list | None = None,
    ):
        self.options = {o.name: o for o in options}
        self.extra = extra
        self.extra_help = extra_help
        #: relations between options (core.rules): checked after the options themselves
        self.rules = list(rules or [])

    def __add__(self, other: Schema) -> Schema:
        return Schema(
            list(self.options.values()) + list(other.options.values()),
            extra=self.extra or other.extra,
            extra_help=self.extra_help or other.extra_help,
            rules=self.rules + other.rules,
        )

    def parse(self, section: str, raw: Mapping[str, str], ignore: Set[str] = frozenset()) -> Values:
        """Typed values, or ConfigError for the first problem; every problem of the section is
        on the error as ``problems`` (``plan --all`` shows them all)."""
        values = Values()
        values.section = section
        problems: list[ConfigError] = []
        known = set(self.options) | IGNORED_OPTIONS | set(ignore)
        unknown = sorted(k for k in raw if k not in known and not k.startswith("_"))
        if unknown and not self.extra:
            problems += [unknown_option(section, name, sorted(self.options)) for name in unknown]
        for name, option in self.options.items():
            if name in raw:
                try:
                    values[name] = option.type.parse(unescape(raw[name]))
                except ValueError as error:
                    problems.append(
                        ConfigError(
                            section,
                            name,
                            inline_comment_hint(str(error), raw[name]),
                            option.type.expected,
                        )
                    )
                    values[name] = None
            elif option.required:
                problems.append(
                    ConfigError(section, name, "missing required option", option.type.expected)
                )
                values[name] = None
            elif not problems:
                values[name] = option.default_for(values)
            else:
                try:  # a default computed from a value that was refused: not worth an error
                    values[name] = option.default_for(values)
                except Exception:  # noqa: BLE001
                    values[name] = None
        if not problems:
            given = set(raw)
            for rule in self.rules:
                found = rule.violation(values, given)
                if found:
                    problems.append(ConfigError(section, *found))
        if problems:
            first = problems[0]
            first.problems = problems
            raise first
        if self.extra:
            for key in unknown:
                try:
                    values[key] = Text().parse(unescape(raw[key]))
                except ValueError as error:
                    raise ConfigError(section, key, str(error), Text.expected) from None
        return values

    def markdown(self, title: str, doc: str = "") -> str:
        lines = [f"# {title}", ""]
        if doc:
            lines += [doc.strip(), ""]
        lines += ["| option | type | default | description |", "| --- | --- | --- | --- |"]
        for option in self.options.values():
            lines.append(
                f"| `{option.name}` | {option.type.expected} | {option.describe_default()} "
                f"| {option.help} |"
            )
        if self.extra:
            lines += ["", self.extra_help or "Other options are accepted."]
        if self.rules:
            lines += ["", "Rules between options (each refusal is one error line):", ""]
            lines += [f"- {rule.describe()}" for rule in self.rules]
        return "\n".join(lines) + "\n"


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest of ``candidates`` to a misspelled ``word`` (``secrte`` -> ``secret``)."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return close[0] if close else None


def unknown_option(section: str, option: str, known: list[str]) -> ConfigError:
    """``[web] rotat: unknown option (did you mean 'rotate'?)``, else the list of options."""
    guess = did_you_mean(option, known)
    if guess:
        return ConfigError(section, option, f"unknown option (did you mean {guess!r}?)")
    return ConfigError(section, option, "unknown option", f"one of {', '.join(known)}")


# -- options many recipes share -----------------------------------------------------------------
def section_name(values: Values) -> str:
    """the section name"""
    return values.section


def force_option() -> Option:
    return Option(
        "force",
        Bool(),
        default=False,
        help="replace a file that was not written by system-recipes or was edited by "
        "hand (a backup is kept in the state directory)",
    )

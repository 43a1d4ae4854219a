"""Tables of a TOML file declared once: their keys (the recipes' :class:`Option`), checked in
one place, and the reference generated from the same declaration.

A :class:`Table` has declared keys, or free keys (``[hosts.NAME]``: any name of a given form,
each value of one type). A key's type is a converter of :mod:`.values` or another table. Every
mistake is one :class:`ModelError` line naming the table and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zc.buildout

from system_recipes.core.declare.errors import ConfigError, clip, shown
from system_recipes.core.declare.schema import Line, Option, OptionType, Values, did_you_mean
from system_recipes.fleet.model.values import looks_secret, type_name


class ModelError(ConfigError):
    """A mistake in a system model or its lock, as one line: ``[services.shop] instances: ...``.

    ``source`` prefixes the line with the file when it is not the model (the lock); without a
    table (a TOML syntax error) the line is ``SOURCE: PROBLEM``."""

    def __init__(
        self,
        table: str | None,
        key: str | None,
        problem: str,
        expected: str | None = None,
        source: str | None = None,
    ):
        if table is None:
            zc.buildout.UserError.__init__(self, f"{source}: {clip(problem, 200)}")
            # a whole-file problem (TOML syntax): no table, no key
            self.section, self.option = None, None  # type: ignore[assignment]
            self.problem, self.expected = problem, None
            return
        super().__init__(table, key, problem, expected)
        if source:
            self.args = (f"{source}: {self.args[0]}",)  # type: ignore[has-type]


@dataclass
class Table(OptionType):
    """A TOML table: ``keys`` declared one by one, or ``free`` (any key named like
    ``free_name``, each value converted by ``free``)."""

    title: str
    doc: str = ""
    keys: list[Option] = field(default_factory=list)
    free: OptionType | None = None
    free_name: Line | None = None
    #: parsed from an empty table when absent (placement, settings); else absent is None
    implicit: bool = False

    def __post_init__(self) -> None:
        self.options = {option.name: option for option in self.keys}
        self.expected = "a table"

    def parse_table(self, where: str, data: Any, source: str | None = None) -> Values:
        """``data`` (a TOML table) as typed values; ``where`` names it in errors."""
        values = Values()
        values.section = where
        for key in data:
            if not self.options and self.free is not None:
                if self.free_name is not None:
                    try:
                        self.free_name.parse(key)
                    except ValueError:
                        raise ModelError(
                            join(where, key),
                            None,
                            f"{shown(key)} is not a valid name",
                            self.free_name.expected,
                            source,
                        ) from None
                values[key] = self.convert(
                    self.free, join(where, key), where, key, data[key], source
                )
            elif key not in self.options:
                raise unknown_key(where, key, sorted(self.options), source)
        for name, option in self.options.items():
            if name in data:
                values[name] = self.convert(
                    option.type, join(where, name), where, name, data[name], source
                )
            elif option.required:
                raise ModelError(*place(where, name), "missing", describe(option.type, ""), source)
            elif isinstance(option.type, Table) and option.type.implicit:
                values[name] = option.type.parse_table(join(where, name), {}, source)
            else:
                values[name] = option.default_for(values)
        return values

    @staticmethod
    def convert(
        kind: OptionType, inner: str, where: str, key: str, value: Any, source: str | None
    ) -> Any:
        if isinstance(kind, Table):
            if not isinstance(value, dict):
                raise ModelError(
                    *place(where, key),
                    f"{type_name(value)} is not a table",
                    describe(kind, ""),
                    source,
                )
            return kind.parse_table(inner, value, source)
        try:
            return kind.parse(value)
        except ValueError as error:
            raise ModelError(*place(where, key), str(error), kind.expected, source) from None

    def markdown(self, heading: str = "##", names: str = "") -> str:
        """The reference of this table and of the tables it holds; a table of free tables
        (``[hosts]``) is shown as the table each key holds (``[hosts.NAME]``)."""
        if isinstance(self.free, Table):
            label = self.free.title.rpartition(".")[2]
            free_name = self.free_name.expected if self.free_name else "any key"
            return self.free.markdown(
                heading, f"{self.doc.strip()}\n\n`{label}`: {free_name}.".strip()
            )
        lines = [f"{heading} `[{self.title}]`" if self.title else f"{heading} The file", ""]
        lines += [text + "\n" for text in (self.doc.strip(), names) if text]
        nested = []
        if self.options:
            lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
            for option in self.options.values():
                if isinstance(option.type, Table):
                    nested.append(option.type)
                lines.append(
                    f"| `{option.name}` | {describe(option.type)} "
                    f"| {describe_default(option)} | {option.help} |"
                )
        elif self.free is not None:
            name = self.free_name.expected if self.free_name else "any key"
            lines.append(f"Keys: {name}; each {describe(self.free)}.")
        text = "\n".join(lines) + "\n"
        for table in nested:
            text += "\n" + table.markdown(heading)
        return text


def describe_default(option: Option) -> str:
    if option.required:
        return "required"
    if isinstance(option.type, Table) and option.type.implicit or option.default in ((), {}):
        return "empty"
    return option.describe_default()


def describe(kind: OptionType, code: str = "`") -> str:
    """What a key holds, for the reference (``code``: markdown quotes) and for errors."""
    if isinstance(kind, Table) and isinstance(kind.free, Table):
        return f"tables {code}[{kind.free.title}]{code}"
    if isinstance(kind, Table):
        return f"a table {code}[{kind.title}]{code}"
    return kind.expected


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def place(where: str, key: str) -> tuple[str, str | None]:
    """Table and key of an error: a top-level table is named alone (``[monitoring]``)."""
    return (where, key) if where else (key, None)


def unknown_key(where: str, key: str, known: list[str], source: str | None) -> ModelError:
    """``[services.shop] instnaces: unknown key (did you mean 'instances'?)``; a key that
    looks like a secret is told where secrets go."""
    kind = "key" if where else "table"
    if looks_secret(key):
        return ModelError(
            *place(where, key),
            f"unknown {kind}: secrets by reference only",
            'secrets = { NAME = "file:/PATH" } in the service',
            source,
        )
    guess = did_you_mean(key, known)
    if guess:
        return ModelError(
            *place(where, key), f"unknown {kind} (did you mean {guess!r}?)", source=source
        )
    return ModelError(*place(where, key), f"unknown {kind}", "one of " + ", ".join(known), source)

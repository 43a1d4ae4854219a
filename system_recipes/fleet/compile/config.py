"""A compiled host configuration: sections whose every value knows where it came from.

The compiler (:mod:`.compile`) builds a :class:`HostConfig`; :meth:`HostConfig.text` is the
host.cfg, the same bytes for the same model and lock, and :meth:`HostConfig.rows` is what
``system-recipes fleet explain`` prints: each value with its origin (a model key, the
allocation, a role).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Value:
    text: str
    origin: str
    #: a value the compiler chose without the model saying it (haproxy's balance): a model
    #: setting may replace it; every other compiled value is wired and may not be replaced
    default: bool = False


@dataclass
class HostSection:
    name: str
    comment: str
    options: dict[str, Value] = field(default_factory=dict)

    def set(self, option: str, text: str, origin: str, default: bool = False) -> None:
        self.options[option] = Value(text, origin, default)


@dataclass
class HostConfig:
    host: str
    header: list[str]
    extends: list[Value] = field(default_factory=list)
    parts: list[Value] = field(default_factory=list)
    sections: list[HostSection] = field(default_factory=list)

    def section(self, name: str, comment: str) -> HostSection:
        """The section ``name``, added (with its comment) the first time it is asked for."""
        for section in self.sections:
            if section.name == name:
                return section
        section = HostSection(name, comment)
        self.sections.append(section)
        return section

    def body(self, extends: list[str] | None = None) -> str:
        """Everything below the header; ``extends`` replaces the profile paths (the draft the
        compiler loads reads the roles of this checkout)."""
        paths = extends if extends is not None else [value.text for value in self.extends]
        out = ["[buildout]", lines("extends", paths), lines("parts", [v.text for v in self.parts])]
        for section in self.sections:
            out.append("")
            out += [f"# {line}".rstrip() for line in section.comment.splitlines()]
            out.append(f"[{section.name}]")
            out += [
                lines(option, value.text.split("\n")) for option, value in section.options.items()
            ]
        return "\n".join(out) + "\n"

    def text(self) -> str:
        return "".join(f"# {line}".rstrip() + "\n" for line in self.header) + "\n" + self.body()

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(section, option, value, origin) of every value, in the file's order."""
        found = [("buildout", "extends", v.text, v.origin) for v in self.extends]
        found += [("buildout", "parts", v.text, v.origin) for v in self.parts]
        for section in self.sections:
            found += [
                (section.name, option, value.text, value.origin)
                for option, value in section.options.items()
            ]
        return found


def lines(option: str, values: list[str]) -> str:
    """``option = value``, or one value per indented line when there are several (buildout's
    multi-line values; ``parts -= NAME`` in a host.cfg that extends this one then works)."""
    if len(values) == 1:
        return f"{option} = {values[0]}".rstrip()
    return "\n".join([f"{option} ="] + [f"    {value}" for value in values])

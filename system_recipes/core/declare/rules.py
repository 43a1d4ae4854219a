"""Relations between options, declared beside them (as Ansible's argument specs declare
``mutually_exclusive`` and ``required_if``): checked by :meth:`Schema.parse` after the options
themselves, reported as the same one-line error, and listed in the generated reference.

>>> rule = refused_with("delaycompress", when=("compress", False), problem="has no effect without compress", expected="compress = true with it")
>>> rule.violation({"delaycompress": True, "compress": False}, {"delaycompress"})
('delaycompress', 'has no effect without compress', 'compress = true with it')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: a condition's value meaning "set to anything" (not None, "", [], {} or False)
SET = object()
#: ... and "not set"
UNSET = object()


def _is_set(value: Any) -> bool:
    return value not in (None, "", False) and value != [] and value != {}


@dataclass(frozen=True)
class Condition:
    """``option`` has ``value`` (or is set, or is not set); ``negate`` turns it around."""

    option: str
    value: Any = SET
    negate: bool = False

    def holds(self, values: Mapping[str, Any]) -> bool:
        got = values.get(self.option)
        if self.value is SET:
            result = _is_set(got)
        elif self.value is UNSET:
            result = not _is_set(got)
        elif isinstance(self.value, tuple):
            result = got in self.value
        else:
            result = got == self.value
        return result != self.negate

    def __str__(self) -> str:
        if self.value is SET:
            text = f"`{self.option}` is set"
        elif self.value is UNSET:
            text = f"`{self.option}` is not set"
        elif isinstance(self.value, tuple):
            text = f"`{self.option}` is one of {', '.join(map(_text, self.value))}"
        else:
            text = f"`{self.option} = {_text(self.value)}`"
        return f"not {text}" if self.negate else text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Refused:
    """``option``, when the operator set it (to ``value``, if given), is refused while every
    condition of ``when`` holds: it would be accepted and then ignored, or contradicts them."""

    option: str
    when: tuple[Condition, ...]
    problem: str
    expected: str
    value: Any = SET

    def violation(self, values: Mapping[str, Any], given: set[str]) -> tuple[str, str, str] | None:
        if self.option not in given or not Condition(self.option, self.value).holds(values):
            return None
        if all(condition.holds(values) for condition in self.when):
            return self.option, self.problem, self.expected
        return None

    def describe(self) -> str:
        head = f"`{self.option}`" if self.value is SET else f"`{self.option} = {_text(self.value)}`"
        return f"{head} is refused when {' and '.join(map(str, self.when))}: {self.problem}"


@dataclass(frozen=True)
class ExactlyOneOf:
    options: tuple[str, ...]

    def violation(self, values: Mapping[str, Any], given: set[str]) -> tuple[str, str, str] | None:
        present = [o for o in self.options if _is_set(values.get(o))]
        if len(present) == 1:
            return None
        names = " and ".join(self.options)
        return (
            self.options[0],
            f"set exactly one of {names}",
            " or ".join(f"{o} = ..." for o in self.options),
        )

    def describe(self) -> str:
        return "exactly one of " + ", ".join(f"`{o}`" for o in self.options)


@dataclass(frozen=True)
class AtLeastOneOf:
    """The section must set one of ``options``; the error names the section."""

    options: tuple[str, ...]
    problem: str

    def violation(
        self, values: Mapping[str, Any], given: set[str]
    ) -> tuple[str | None, str, str] | None:
        if any(_is_set(values.get(o)) for o in self.options):
            return None
        return None, self.problem, ", ".join(self.options[:-1]) + " or " + self.options[-1]

    def describe(self) -> str:
        return "at least one of " + ", ".join(f"`{o}`" for o in self.options)


#: how a rule names a condition: an option (it is set), ``(option, value)`` or a Condition
ConditionSpec = Condition | str | tuple[str, Any]


def _condition(spec: ConditionSpec) -> Condition:
    if isinstance(spec, Condition):
        return spec
    if isinstance(spec, str):
        return Condition(spec)
    option, value = spec
    return Condition(option, value)


def refused_with(
    option: str,
    *,
    when: ConditionSpec | list[ConditionSpec],
    problem: str,
    expected: str,
    value: Any = SET,
) -> Refused:
    """``option`` (set, or set to ``value``) is refused when ``when`` holds: an option name
    (it is set), an ``(option, value)`` pair or a :class:`Condition` -- or a list of them."""
    conditions = when if isinstance(when, list) else [when]
    return Refused(option, tuple(_condition(c) for c in conditions), problem, expected, value)


def requires(option: str, other: str, value: Any = True, *, problem: str, expected: str) -> Refused:
    """``option`` has an effect only with ``other`` (= ``value``): refused otherwise."""
    return Refused(option, (Condition(other, value, negate=True),), problem, expected)

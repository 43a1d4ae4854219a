"""Relations between options are declared in the schema (core.rules), checked after the
options, one line each, listed in the generated reference."""

from __future__ import annotations

import doctest

import pytest

from system_recipes.core.declare import rules
from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.schema import Bool, Line, Option, Schema

SCHEMA = Schema(
    [
        Option("template", Line(), default=""),
        Option("text", Line(), default=""),
        Option("compress", Bool(), default=False),
        Option("delaycompress", Bool(), default=False),
    ],
    rules=[
        rules.ExactlyOneOf(("template", "text")),
        rules.requires(
            "delaycompress",
            "compress",
            problem="has no effect without compress",
            expected="compress = true with it",
        ),
    ],
)


@pytest.mark.parametrize(
    "raw, line",
    [
        ({}, "[s] template: set exactly one of template and text"),
        ({"template": "a", "text": "b"}, "[s] template: set exactly one of template and text"),
        (
            {"text": "b", "delaycompress": "true"},
            "[s] delaycompress: has no effect without compress (expected compress = true with it)",
        ),
    ],
)
def test_a_broken_rule_is_one_line(raw, line):
    with pytest.raises(ConfigError) as error:
        SCHEMA.parse("s", raw)
    assert str(error.value).startswith(line)


def test_rules_pass_and_are_listed_in_the_reference():
    assert SCHEMA.parse("s", {"text": "b", "delaycompress": "true", "compress": "yes"}).text == "b"
    reference = SCHEMA.markdown("t")
    assert "- exactly one of `template`, `text`" in reference
    assert "- `delaycompress` is refused when not `compress = true`" in reference


def test_every_problem_of_a_section_is_on_the_error():
    with pytest.raises(ConfigError) as error:
        SCHEMA.parse("s", {"text": "b", "compress": "maybe", "bogus": "1"})
    lines = [str(p) for p in error.value.problems]
    assert lines[0].startswith("[s] bogus: unknown option") and len(lines) == 2, lines
    assert lines[1].startswith("[s] compress:"), lines


def test_the_module_examples_hold():
    assert doctest.testmod(rules).failed == 0

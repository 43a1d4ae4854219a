"""The option schema (unit level) and the generated reference."""

import pytest

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Account,
    Assignments,
    Bool,
    Choice,
    Integer,
    Lines,
    Mode,
    Name,
    Option,
    Schema,
)
from system_recipes.docs import write_reference

SCHEMA = Schema(
    [
        Option("name", Name(), required=True),
        Option("rotate", Integer(minimum=0), default=14),
        Option("compress", Bool(), default=True),
        Option("mode", Mode(), default=0o644),
        Option("kind", Choice("systemd", "sysv"), default="systemd"),
        Option("paths", Lines(AbsolutePath()), default=[]),
        Option("user", Account(), default=lambda v: v["name"]),
        Option("environment", Assignments(), default={}),
    ]
)


def parse(**raw):
    return SCHEMA.parse("web", {k.replace("_", "-"): v for k, v in raw.items()})


def test_values_are_typed_and_defaults_filled():
    values = parse(
        name="web",
        rotate="7",
        compress="no",
        mode="0640",
        paths="/var/log/a/*.log\n# comment\n\n/var/log/b.log",
        environment="A=1\nB = two words",
    )
    assert values.rotate == 7 and values.compress is False and values.mode == 0o640
    assert values.paths == ["/var/log/a/*.log", "/var/log/b.log"]
    assert values.user == "web" and values.kind == "systemd"
    assert values.environment == {"A": "1", "B": "two words"}


def test_dollar_dollar_means_dollar():
    assert SCHEMA.parse("web", {"name": "web", "environment": "PRICE=$$5"}).environment == {
        "PRICE": "$5"
    }


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, "[web] name: missing required option"),
        ({"name": "a/b"}, "[web] name: 'a/b' would escape its directory"),
        ({"name": ".."}, "[web] name: '..' would escape its directory"),
        (
            {"name": "web", "rotate": "-1"},
            "[web] rotate: -1 is out of range (expected an integer >= 0)",
        ),
        ({"name": "web", "compress": "maybe"}, "[web] compress: 'maybe' is not a boolean"),
        ({"name": "web", "kind": "upstart"}, "(expected one of systemd, sysv)"),
        ({"name": "web", "mode": "0999"}, "[web] mode: '0999' is not an octal mode"),
        ({"name": "web", "paths": "relative.log"}, "[web] paths: 'relative.log' is not absolute"),
        ({"name": "web", "user": "root\nevil"}, "[web] user: must be a single line"),
        ({"name": "web", "environment": "not an assignment"}, "[web] environment:"),
        ({"name": "web", "colour": "red"}, "[web] colour: unknown option"),
    ],
)
def test_errors_name_section_and_option(raw, message):
    with pytest.raises(ConfigError) as error:
        SCHEMA.parse("web", raw)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_reference_docs_are_generated_and_current(tmp_path):
    assert write_reference(None, check=True) == 0, "run `system-recipes docs`"
    write_reference(str(tmp_path))
    text = (tmp_path / "deployment.md").read_text()
    assert "| `log-directory` |" in text and "/var/log/NAME" in text


def test_a_bad_extra_option_is_a_config_error_not_a_traceback():
    """Found by the template property test: a NUL byte in a template variable."""
    schema = Schema([Option("path", AbsolutePath())], extra=True)
    with pytest.raises(ConfigError, match=r"^\[t\] value: contains a NUL byte"):
        schema.parse("t", {"path": "/etc/x", "value": "a\0b"})

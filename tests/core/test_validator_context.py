"""A validator's context is its own frozen dataclass, built by name by the recipe and read by
name by the validator (issue 22): no check's context is a tuple read by position."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import re

import pytest

import system_recipes
import system_recipes.daemons
from system_recipes.core.declare.specs import Check, FileSpec
from system_recipes.core.hooks.validate import Item, Validation, ValidationContext
from system_recipes.daemons.haproxy import HaproxyContext
from system_recipes.daemons.programs import ProgramContext
from system_recipes.daemons.systemd import SystemdUnitContext

PACKAGE = os.path.dirname(os.path.abspath(system_recipes.__file__))
POSITIONAL = re.compile(r"\.arguments\s*[\[+]|\bcheck\.arguments\b")


def test_no_validator_reads_its_context_by_position():
    found = []
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                for number, line in enumerate(open(path, encoding="utf-8"), start=1):
                    if POSITIONAL.search(line):
                        found.append(f"{os.path.relpath(path, PACKAGE)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_every_validator_context_is_a_frozen_dataclass():
    contexts = []
    for module in pkgutil.iter_modules(system_recipes.daemons.__path__):
        loaded = importlib.import_module(f"system_recipes.daemons.{module.name}")
        for name, value in vars(loaded).items():
            if (
                inspect.isclass(value)
                and name.endswith("Context")
                and value.__module__ == loaded.__name__
            ):
                contexts.append(value)
                assert dataclasses.is_dataclass(value), name
                assert value.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
    # program, systemd-unit, cron (and its lines), logrotate, haproxy, nagios, nrpe-server,
    # postgresql-hba, postgresql-conf
    assert len(contexts) >= 9, [c.__name__ for c in contexts]


def test_a_check_is_a_cache_key_by_value():
    one = Check("haproxy", HaproxyContext("/etc/haproxy/haproxy.cfg", ("", "port")))
    other = Check("haproxy", HaproxyContext("/etc/haproxy/haproxy.cfg", ("", "port")))
    assert one == other and hash(one) == hash(other)
    assert one != Check("haproxy", HaproxyContext("/etc/haproxy/haproxy.cfg", ("", "bind")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.context.main = "/elsewhere"  # type: ignore[union-attr, misc]


def test_the_validation_cache_answers_an_equal_check_again(tmp_path):
    """The program check of an equal context built anew is answered from the cache: the
    program made since is not looked at again (the key is the check, content and path)."""
    validation = Validation("required")
    context = ValidationContext(root=str(tmp_path))
    spec = FileSpec("/etc/app.service", b"[Service]\n")

    def item() -> Item:
        return Item("app", spec, Check("program", ProgramContext("/usr/bin/app", "command")))

    first = validation.run([item()], context)
    assert [str(f) for f in first] == [
        f"[app] command: /usr/bin/app does not exist below {tmp_path} (/etc/app.service)"
    ]
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/app").write_text("#!/bin/sh\n")
    (tmp_path / "usr/bin/app").chmod(0o755)
    assert [str(f) for f in validation.run([item()], context)] == [str(f) for f in first]
    assert Validation("required").run([item()], context) == []


def test_a_check_without_context_gets_the_defaults_or_a_type_error():
    spec = FileSpec("/etc/systemd/system/app.service", b"")
    assert Item("app", spec, Check("systemd-unit")).given(SystemdUnitContext).origins == ()
    with pytest.raises(TypeError, match="needs a ProgramContext as its context, not None"):
        Item("app", spec, Check("program")).given(ProgramContext)
    with pytest.raises(TypeError, match="needs a ProgramContext as its context, not"):
        Item("app", spec, Check("program", ("/usr/bin/app", "command"))).given(ProgramContext)

"""Every configuration example the documentation shows is true: it plans without an error.

The ``Example::`` of each recipe's and meta-recipe's module docstring (found through the
``zc.buildout`` entry points) and every ```ini / ```cfg block of README.md, docs/ and
profiles/README.md is put into a host configuration extending profiles/base.cfg below a
scratch root, with what it refers to and does not define (support/examples.py: a deployment
for ``${app:...}``, the example application's RPM for package facts, a template reading the
section's variables, a stand-in for an /opt program), and planned by the real buildout with
every tool's validation (``load_and_plan``). A block quoting a profile (a link to the file just
before it) must match that file section by section, and the file is what is planned.
"""

from __future__ import annotations

import os

import pytest
import zc.buildout
from support.cases import case_root
from support.examples import (
    Example,
    document_examples,
    host_config,
    install_references,
    recipe_examples,
    sections,
)
from support.paths import REPO

from system_recipes.planning import load_and_plan

EXAMPLES = recipe_examples() + document_examples()


def marks(example: Example) -> list:
    return [pytest.mark.sandbox] if example.needs_root() else []


def test_every_recipe_has_an_example():
    names = {e.name.split(" ")[0] for e in recipe_examples()}
    assert {"zc.buildout:cron", "zc.buildout:service", "zc.buildout:template"} <= names, names


@pytest.mark.parametrize("example", [pytest.param(e, id=e.name, marks=marks(e)) for e in EXAMPLES])
def test_the_example_plans(example, tmp_path, request):
    assert example.problem is None, f"{example.name}: {example.problem}"
    root = case_root(str(tmp_path / "root"))
    rpm = request.getfixturevalue("example_rpms")("1.0") if example.needs_package() else None
    install_references(example, root, rpm)
    directory = tmp_path / "host"
    directory.mkdir()
    if example.excerpt_of:  # what the block shows is what the profile says
        with open(os.path.join(REPO, "profiles", example.excerpt_of), encoding="utf-8") as stream:
            whole = sections(stream.read(), example.excerpt_of)
        for name, options in sections(example.text, example.name).items():
            assert name in whole, f"{example.name}: [{name}] is not in {example.excerpt_of}"
            for option, value in options.items():  # line breaks aside
                assert whole[name].get(option, "").split() == value.split(), (
                    f"{example.name}: [{name}] {option} differs from {example.excerpt_of}"
                )
    config = host_config(example, root, str(directory))
    try:
        active, plan = load_and_plan(config)
    except zc.buildout.UserError as error:
        raise AssertionError(f"{example.name}: Error: {error}") from None
    assert active.declared, f"{example.name}: plans no part"

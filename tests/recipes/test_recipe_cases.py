"""Every recipe case of tests/recipes/ (format: tests/recipes/README.md), planned in-process.

Each case's sections go into a host configuration extending profiles/base.cfg, below a scratch
root; the real buildout loads it and constructs every part (each recipe renders and the real
tools validate: ``system_recipes.planning.load_and_plan``), and nothing is written. The files and
links the run would write must be exactly the expected ones, or the run must stop with exactly
the expected error line.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import zc.buildout
from support.cases import CASES as CASE_DIRECTORY
from support.cases import case_root, discover, host_config, parse

from system_recipes.planning import load_and_plan

CASES = discover()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return case_root(str(tmp_path_factory.mktemp("cases") / "root"))


def declared(active) -> tuple[dict, dict, dict]:
    files, links, directories = {}, {}, {}
    for spec in active.declared.values():
        if spec is None:
            continue
        files.update({f.path: f for f in spec.files})
        links.update({link.path: link for link in spec.links})
        directories.update({d.path: d for d in spec.directories})
    return files, links, directories


def test_every_recipe_has_cases():
    from importlib.metadata import entry_points

    recipes = {
        e.name for e in entry_points(group="zc.buildout") if e.value.startswith("system_recipes.")
    }
    with_cases = {os.path.basename(os.path.dirname(path)) for path in CASES}
    assert recipes <= with_cases, sorted(recipes - with_cases)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=case.name, marks=[getattr(pytest.mark, mark) for mark in case.marks])
        for case in map(parse, CASES)
    ],
)
def test_recipe_case(case, root, tmp_path):
    config = host_config(case, root, str(tmp_path))
    try:
        active, _ = load_and_plan(config)
    except zc.buildout.UserError as error:
        line = f"Error: {error}".replace(root, "{root}")
        assert case.error is not None, f"{case.name}: unexpected error:\n{line}"
        assert line == case.error
        return
    assert case.error is None, f"{case.name}: planned without the error {case.error!r}"
    files, links, directories = declared(active)
    expected_files = {e.path: e for e in case.expected if e.content is not None}
    expected_links = {e.path: e.target for e in case.expected if e.target is not None}
    expected_dirs = {e.path: e for e in case.expected if e.directory}
    assert sorted(files) == sorted(expected_files), "the files the run would write"
    for path, spec in files.items():
        want = expected_files[path]
        assert spec.content.decode("utf-8") == want.content.replace("{root}", root), path
        if want.mode is not None:
            assert (oct(spec.mode), spec.owner, spec.group) == (
                oct(want.mode),
                want.owner,
                want.group,
            ), path
    assert {p: link.target for p, link in links.items()} == expected_links
    if expected_dirs:  # a case that lists directories lists them all
        assert sorted(directories) == sorted(expected_dirs), "the directories"
        for path, spec in directories.items():
            want = expected_dirs[path]
            if want.mode is not None:
                assert (oct(spec.mode), spec.owner, spec.group) == (
                    oct(want.mode),
                    want.owner,
                    want.group,
                ), path


def test_a_case_that_is_not_what_the_recipe_writes_fails(root, tmp_path):
    """The runner compares: a wrong byte in an expected file, or a file left out, fails."""
    good = parse(os.path.join(CASE_DIRECTORY, "cron", "single-entry.cfg"))
    wrong = dataclasses.replace(
        good,
        expected=[
            dataclasses.replace(
                good.expected[0], content=good.expected[0].content.replace("30 3", "30 4")
            )
        ],
    )
    with pytest.raises(AssertionError):
        test_recipe_case(wrong, root, tmp_path)
    with pytest.raises(AssertionError, match="the files the run would write"):
        test_recipe_case(dataclasses.replace(good, expected=[]), root, tmp_path)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[x]\nrecipe = system_recipes:cron\n", "no ==> ... <== block"),
        ("[x]\n==> error <==\nError: a\n==> /etc/x <==\nx\n", "stands alone"),
        ("[x]\n==> error <==\nError: a\nError: b\n", "one line"),
        ("[x]\n==> etc/x <==\nx\n", "expected PATH"),
        ("[x]\n==> /etc/x/ 0755 root:root <==\nx\n", "a directory has no content"),
    ],
)
def test_a_malformed_case_is_refused(tmp_path, text, problem):
    path = tmp_path / "case.cfg"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem):
        parse(str(path))

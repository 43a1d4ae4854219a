"""Fixtures and hooks only (the helpers are in support/): a sandboxed host (private mount
namespace), a scratch install root, the example application's RPMs."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from support.example_fixtures import example_rpms  # noqa: F401  (the session fixture)
from support.host import Host, make_scratch_root
from support.markers import fixture_markers, needs
from support.sandbox import Sandbox

# CI (HYPOTHESIS_PROFILE=ci, set by .ci/run) replays the same examples on every run, so a red
# build means a change broke something; a plain local run explores new random examples.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items):
    """Mark each test with what its fixtures need (support/markers.py): ``-m "not sandbox
    and not daemon"`` then runs, without root, every test that needs neither."""
    for item in items:
        for marker in sorted(fixture_markers(item)):
            item.add_marker(marker)


@pytest.fixture
@needs("sandbox")
def sandbox():
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def host(sandbox, tmp_path):
    """A host whose real /etc, /var and /run are private overlays; buildout runs as root there."""
    return Host(sandbox, str(tmp_path))


@pytest.fixture
def scratch(tmp_path):
    """A host rendered into a scratch install root (no namespace needed)."""
    root = make_scratch_root(str(tmp_path / "root"))
    directory = tmp_path / "profile"
    directory.mkdir()
    return Host(None, str(directory), root=root)

"""The ``example_rpms`` session fixture: example-app RPMs built once per (version, release).

tests/conftest.py makes it available to every test module (see support/rpmbuild.py for the
whole API)::

    def test_upgrade(example_rpms):
        old, new = example_rpms("1.0"), example_rpms("2.0", release="1")
"""

from __future__ import annotations

import threading

import pytest

from support.rpmbuild import build_example_rpm


class ExampleRpms:
    """Callable cache: ``rpms(version, release="1") -> path of the .rpm``."""

    def __init__(self, outdir: str):
        self.outdir = outdir
        self._built: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def __call__(self, version: str, release: str = "1") -> str:
        key = (version, release)
        with self._lock:
            if key not in self._built:
                self._built[key] = build_example_rpm(version, release, self.outdir)
            return self._built[key]


@pytest.fixture(scope="session")
def example_rpms(tmp_path_factory) -> ExampleRpms:
    return ExampleRpms(str(tmp_path_factory.mktemp("example-rpms")))

"""What a fixture needs, declared where it is defined; conftest marks every test using it.

    @pytest.fixture
    @needs("sandbox", "daemon")
    def live(host): ...

``sandbox``: root and namespaces (Sandbox, unshare, nsenter, files owned by other accounts);
``daemon``: starts real daemons (supervisord, nrpe, nagios4, cron, sshd, the example server).
Both are registered in pyproject.toml; ``pytest -m "not sandbox and not daemon"`` is the quick,
unprivileged selection (schema, rendering and planning).
"""

from __future__ import annotations

MARKERS = ("sandbox", "daemon")


def needs(*markers: str):
    """Tag a fixture function: every test that uses it (even through other fixtures) gets
    ``markers``."""
    unknown = set(markers) - set(MARKERS)
    if unknown:
        raise ValueError(f"unknown markers {sorted(unknown)} (expected {MARKERS})")

    def tag(function):
        function.needs = tuple(markers)
        return function

    return tag


def fixture_markers(item) -> set[str]:
    """The markers the fixtures of a collected test declare with :func:`needs`."""
    info = getattr(item, "_fixtureinfo", None)
    found: set[str] = set()
    if info is None:
        return found
    for name in info.names_closure:
        for definition in info.name2fixturedefs.get(name, ()):
            found.update(getattr(definition.func, "needs", ()))
    return found

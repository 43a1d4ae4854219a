"""The wire between the controller and ``fleet-host``, declared (docs/fleet-transport.md).

What both sides of a fleet run agree on, and nothing of either: :mod:`.host` (the step that
runs on every host) and :mod:`.controller` (the runs, the waves, the output) import this
module, and it imports neither.

- Standard input of ``fleet-host plan|apply``: one line of JSON, the header (its keys:
  :data:`HEADER_KEYS`), then the host.cfg text.
- Standard output: one JSON object per line, ``{"step": STEP, "result": ..., ...}``, a
  :class:`Step` each; the last one is :attr:`Step.DONE`, with the exit status.
- The exit statuses (:class:`Exit`, the whole project's): 0 done and nothing pending, 2 changes
  pending, 1 an error.
- Where a host keeps what it applied: :data:`ETC` (``MODEL/host.cfg``) and :data:`STATE`
  (``MODEL.json``, its record), which the controller's preflight reads without sudo.
- What the controller makes of each host: a :class:`HostState`, which knows whether a run of
  the host is over (:attr:`HostState.final`) and whether it ended in a failure
  (:attr:`HostState.failed`).

The exported Ansible action plugin (export/ansible_action.py) is loaded by Ansible from its
file and imports nothing of system_recipes: it reads the same names as strings, and
tests/fleet/test_fleet_protocol.py checks that they are these.
"""

from __future__ import annotations

import enum

from system_recipes.core.declare.exits import Exit

__all__ = ["ETC", "HEADER_KEYS", "STATE", "Exit", "HostState", "Step", "event"]

#: the host.cfg each model applied on a host: ``ETC/MODEL/host.cfg``
ETC = "/etc/system-recipes"
#: the record of what each model applied on a host: ``STATE/MODEL.json``
STATE = "/var/lib/system-recipes/fleet"

#: the keys of the header line (model, revision and digest required; packages, host optional)
HEADER_KEYS = ("model", "revision", "digest", "packages", "host")


class Step(enum.StrEnum):
    """The ``step`` of a JSON line of fleet-host, in the order a step prints them."""

    #: the header or the command line is wrong (a refusal before anything is read)
    INPUT = "input"
    #: another fleet-host runs for the same model on the host
    LOCK = "lock"
    #: the header's revision against the one last applied
    REVISION = "revision"
    #: the packages pending (plan) or installed (apply)
    PACKAGES = "packages"
    #: the host.cfg received against the kept one
    CONFIG = "config"
    #: the plan of the host.cfg: changed, drift, actions
    PLAN = "plan"
    #: plan --diff: one unified diff per file
    DIFF = "diff"
    #: the host buildout
    BUILDOUT = "buildout"
    #: a confirmed apply armed, or confirmed
    CONFIRM = "confirm"
    #: the record of what was applied
    RECORD = "record"
    #: fleet-host status: one per model
    STATUS = "status"
    #: the last line: the result and the exit status
    DONE = "done"


def event(events: list[dict], step: Step) -> dict:
    """The first JSON line of ``step`` among ``events`` (``{}`` when fleet-host printed none)."""
    return next((e for e in events if e.get("step") == step), {})


class HostState(enum.StrEnum):
    """What the controller shows of a host (``HOST: STATE[: DETAIL]``). The final states come
    first, in the order the counters count them; then the states of a host on its way."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    IN_SYNC = "in sync"
    PENDING = "pending"
    BEHIND = "behind"
    DRIFTED = "drifted"
    NEVER_APPLIED = "never applied"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    NOT_STARTED = "not started"
    WAITING = "waiting"
    CONNECTING = "connecting"
    PLANNING = "planning"
    ASKING = "asking"
    APPLYING = "applying"
    CHECKING = "checking"
    CONFIRMING = "confirming"

    @property
    def final(self) -> bool:
        """The host's part of the run is over (its time stops, it is counted)."""
        return self in _FINAL

    @property
    def failed(self) -> bool:
        """A final state that counts as a failure (exit 3; its instances stay down)."""
        return self in _FAILED

    @property
    def in_flight(self) -> bool:
        """Its apply has started: a connection lost now counts as a failure."""
        return self in _IN_FLIGHT

    @classmethod
    def counted(cls) -> tuple[HostState, ...]:
        """The final states, in the order the counters and the summary give them."""
        return tuple(state for state in cls if state.final)


_FAILED = frozenset(
    (HostState.FAILED, HostState.UNREACHABLE, HostState.REFUSED, HostState.NOT_STARTED)
)
_FINAL = _FAILED | {
    HostState.CHANGED,
    HostState.UNCHANGED,
    HostState.IN_SYNC,
    HostState.PENDING,
    HostState.BEHIND,
    HostState.DRIFTED,
    HostState.NEVER_APPLIED,
}
_IN_FLIGHT = frozenset((HostState.APPLYING, HostState.CHECKING, HostState.CONFIRMING))

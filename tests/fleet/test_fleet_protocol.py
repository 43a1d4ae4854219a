"""The wire between the controller and fleet-host is declared once, in fleet/protocol.py: the
exit statuses (core's, the whole project's), where a host keeps what it applied, the header's
keys, the names of the JSON lines and the states a host is shown in. Both sides speak it by
name; the exported Ansible action plugin, which imports nothing of system_recipes, reads the
same strings."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import system_recipes
from system_recipes.core.declare.exits import Exit
from system_recipes.fleet import protocol
from system_recipes.fleet.protocol import HEADER_KEYS, HostState, Step

PACKAGE = os.path.dirname(os.path.abspath(system_recipes.__file__))
FLEET = os.path.join(PACKAGE, "fleet")
ACTION = os.path.join(FLEET, "export", "ansible_action.py")


def python_files(top: str) -> dict[str, ast.Module]:
    found = {}
    for directory, _, files in os.walk(top):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                found[os.path.relpath(path, PACKAGE)] = ast.parse(open(path).read())
    return found


def test_host_states_know_whether_they_are_final_and_a_failure():
    """As output.FINAL said (state -> counts as a failure), in output.COUNTED's order."""
    final = {
        "changed": False,
        "unchanged": False,
        "in sync": False,
        "pending": False,
        "behind": False,
        "drifted": False,
        "never applied": False,
        "failed": True,
        "unreachable": True,
        "refused": True,
        "not started": True,
    }
    assert {state.value: state.failed for state in HostState if state.final} == final
    assert [state.value for state in HostState.counted()] == list(final)
    on_the_way = [state.value for state in HostState if not state.final]
    assert on_the_way == [
        "waiting",
        "connecting",
        "planning",
        "asking",
        "applying",
        "checking",
        "confirming",
    ]
    assert not any(HostState(state).failed for state in on_the_way)
    assert [s.value for s in HostState if s.in_flight] == ["applying", "checking", "confirming"]
    # what the output prints and summary.json keeps: the text, not the enum's name
    assert f"app1: {HostState.IN_SYNC}" == "app1: in sync"
    assert json.dumps({HostState.NOT_STARTED: HostState.FAILED}) == '{"not started": "failed"}'


def test_the_exit_statuses_are_defined_once():
    assert {e.name: e.value for e in Exit} == {
        "OK": 0,
        "ERROR": 1,
        "PENDING": 2,
        "FAILED": 3,
        "STOPPED": 4,
        "INTERRUPTED": 130,
        "CLOSED_PIPE": 141,
    }
    assert protocol.Exit is Exit
    from system_recipes.commands import parser

    assert parser.Exit is Exit
    defined = []
    for path, tree in python_files(PACKAGE).items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                names = [
                    n.id
                    for t in node.targets
                    for n in ast.walk(t)
                    if isinstance(n, ast.Name) and n.id.startswith("EXIT_")
                ]
                if names:
                    defined.append(f"{path}:{node.lineno} {', '.join(names)}")
            elif isinstance(node, ast.ClassDef) and node.name == "Exit":
                defined.append(f"{path}:{node.lineno} class Exit")
    assert defined == ["core/declare/exits.py:12 class Exit"]


def test_host_and_controller_take_the_hosts_paths_from_the_protocol():
    from system_recipes.fleet.controller import preflight
    from system_recipes.fleet.host import step

    assert (preflight.ETC, preflight.STATE) == (protocol.ETC, protocol.STATE)
    assert (step.ETC, step.STATE) == (protocol.ETC, protocol.STATE)
    assigned = [
        f"{path}:{node.lineno}"
        for path, tree in python_files(FLEET).items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(
            isinstance(t, ast.Name) and t.id in ("ETC", "STATE", "HEADER_KEYS")
            for t in node.targets
        )
    ]
    assert assigned == ["fleet/protocol.py:33", "fleet/protocol.py:35", "fleet/protocol.py:38"]


def step_literals(tree: ast.Module) -> list[tuple[int, str]]:
    """The string literals used as a JSON line's step: ``x.get("step") == "plan"``,
    ``emit("plan", ...)``, ``StepError("plan", ...)``, ``done(...)`` aside."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(
                isinstance(s, ast.Call)
                and isinstance(s.func, ast.Attribute)
                and s.func.attr == "get"
                and s.args
                and isinstance(s.args[0], ast.Constant)
                and s.args[0].value == "step"
                for s in sides
            ):
                found += [
                    (node.lineno, s.value)
                    for s in sides
                    if isinstance(s, ast.Constant) and isinstance(s.value, str)
                ]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("emit", "StepError") and isinstance(first, ast.Constant):
                found.append((node.lineno, first.value))
    return found


def test_fleet_speaks_the_steps_by_name():
    """The host step and the controller name a JSON line's step as protocol.Step, never a
    string of their own; the Ansible action plugin (no import of system_recipes) reads the
    strings, which must be the protocol's."""
    literal = {
        path: lines
        for path, tree in python_files(FLEET).items()
        if path != "fleet/export/ansible_action.py" and (lines := step_literals(tree))
    }
    assert literal == {}
    read = step_literals(ast.parse(open(ACTION).read()))
    assert {name for _, name in read} == {"diff", "plan", "packages"}
    assert {name for _, name in read} <= {step.value for step in Step}


def test_the_ansible_action_reads_the_protocols_header_keys_and_exit_statuses():
    tree = ast.parse(open(ACTION).read())
    keys = {
        node.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "attr", "") == "loads"
        and isinstance(node.slice, ast.Constant)
    }
    assert keys == {"model"} and keys <= set(HEADER_KEYS)
    # what it accepts: 0, and plan's 2 ("pending"), the protocol's OK and PENDING
    assert "if code not in ((0, 2) if plan else (0,)):" in open(ACTION).read()
    assert (Exit.OK, Exit.PENDING) == (0, 2)


def test_a_refused_input_is_said_in_the_protocols_words():
    """A real fleet-host: a header that is not JSON is an ``input`` line, then ``done`` with
    the protocol's exit status; nothing else on stdout."""
    code = (
        "import sys; from system_recipes.commands.entry import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "fleet-host", "plan"],
        input=b"not json\n[buildout]\n",
        capture_output=True,
    )
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [e["step"] for e in events] == [Step.INPUT, Step.DONE]
    assert events[-1]["exit"] == result.returncode == Exit.ERROR
    assert protocol.event(events, Step.DONE) == events[-1]
    assert protocol.event(events, Step.PLAN) == {}


def test_the_header_the_controller_writes_is_the_one_the_host_reads(tmp_path):
    """Both ends of the header: what prepare() puts on each host's stdin has the protocol's
    keys, and the host step's own reader takes it as it is."""
    import shutil

    from system_recipes.fleet.compile.prepare import prepare
    from system_recipes.fleet.host.stdin import parse_input

    systems = os.path.join(os.path.dirname(PACKAGE), "profiles", "systems")
    for name in ("shop.toml", "shop.lock.toml"):
        shutil.copy(os.path.join(systems, name), tmp_path / name)
    profiles = os.path.join(os.path.dirname(PACKAGE), "profiles")
    system = prepare(str(tmp_path / "shop.toml"), profiles)
    assert system.hosts
    for job in system.hosts.values():
        assert set(job.header) == set(HEADER_KEYS)
        header, config = parse_input(job.stdin().encode("utf-8"))
        assert (header, config) == (job.header, job.config)

"""No step of a run grows faster than the parts of the host: the work of every function of
zc.buildout and system-recipes (the lines it executes, counted by a tracer: not time) at 2N
services is about twice its work at N. A per-part step that goes through every part (buildout's
install loop rebuilding the installed list after each part, a meta part looking for its own
sections among all generated ones) is four times the work, and is named.

The runs are in-process (a tracer sees them), into a scratch install root: a first run, then a
run that changes one service and drops another (updates and an uninstall)."""

from __future__ import annotations

import collections
import logging
import os
import sys

import pytest
import zc.buildout.buildout as zb
from support.host import link_nagios_plugins
from support.paths import BASE_CFG

import system_recipes
from system_recipes.core.plan import report

PACKAGES = (os.path.dirname(zb.__file__), os.path.dirname(system_recipes.__file__))
#: a function doing 2.5 times the work at 2N (plus this much) grows faster than the parts
GROWTH, SLACK = 2.5, 200


def host_cfg(root: str, templates: str, n: int, changed: bool = False) -> str:
    """``n`` services of both shapes: a service section (seven parts) and five level-1 parts."""
    parts, body = [], []
    for i in range(n):
        if changed and i == 1:
            continue  # dropped: its parts are uninstalled
        port = 8000 + i + (1000 if changed and i == 0 else 0)
        name, explicit = f"svc{i:03d}", f"app{i:03d}"
        parts += [name, f"{explicit}-config", f"{explicit}-cron", f"{explicit}-logrotate"]
        parts += [f"{explicit}-supervisor", f"{explicit}-nrpe"]
        body += [
            f"[{name}]",
            "recipe = system_recipes:service",
            f"command = /usr/bin/python3 -m http.server {port}",
            "user = www-data",
            "run = supervisor",
            "config = app.ini.j2",
            f"check = http {port} /health",
            f"cron = {i % 60} 3 * * * /usr/bin/find /var/lib/{name}/tmp -type f -delete",
            f"[{name}-config]",
            f"port = {port}",
            f"[{explicit}-config]",
            "recipe = system_recipes:template",
            f"path = /etc/bench/{explicit}.ini",
            "template = app.ini.j2",
            f"port = {port}",
            f"[{explicit}-cron]",
            "recipe = system_recipes:cron",
            f"name = {explicit}",
            "user = www-data",
            f"entries = {i % 60} 3 * * * /usr/bin/find /tmp/{explicit} -type f -delete",
            f"[{explicit}-logrotate]",
            "recipe = system_recipes:logrotate",
            f"name = {explicit}",
            f"paths = /var/log/{explicit}/*.log",
            "frequency = daily",
            "rotate = 14",
            f"[{explicit}-supervisor]",
            "recipe = system_recipes:supervisor",
            f"name = {explicit}",
            f"command = /usr/bin/python3 -m http.server {port}",
            "user = www-data",
            f"[{explicit}-nrpe]",
            "recipe = system_recipes:nrpe",
            f"name = {explicit}",
            f"checks = check_{explicit} check_http -H 127.0.0.1 -p {port} -u /health",
            "",
        ]
    head = [
        "[buildout]",
        f"extends = {BASE_CFG}",
        "parts =",
        *(f"    {p}" for p in parts),
        "[system-recipes]",
        f"root = {root}",
        "reload = off",
        f"templates = {templates}",
        "",
    ]
    return "\n".join(head + body)


def traced_buildout(config: str) -> collections.Counter:
    """Run ``buildout -c config`` in this process; the lines each function of zc.buildout and
    system-recipes executed, by function."""
    lines: collections.Counter = collections.Counter()

    def local(frame, event, arg):
        if event == "line":
            lines[frame.f_code] += 1
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(PACKAGES) else None

    sys.settrace(calls)
    try:
        zb.main(["-c", config])
    except SystemExit as exit:
        assert not exit.code, f"buildout exited {exit.code}"
    finally:
        sys.settrace(None)
    named: collections.Counter = collections.Counter()
    for code, count in lines.items():
        where = "/".join(code.co_filename.split("/")[-2:])
        named[f"{where}:{code.co_firstlineno}({code.co_name})"] += count
    return named


def work(tmp_path, n: int) -> collections.Counter:
    """Lines per function over a first run and a run that changes one service and drops one."""
    directory = tmp_path / f"n{n}"
    root = directory / "root"
    templates = directory / "templates"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "os-release"):
        (root / "etc" / name).write_bytes(open(os.path.join("/etc", name), "rb").read())
    link_nagios_plugins(str(root))
    templates.mkdir()
    (templates / "app.ini.j2").write_text("[app]\nport = {{ port }}\n")
    config = directory / "host.cfg"
    total: collections.Counter = collections.Counter()
    for changed in (False, True):
        config.write_text(host_cfg(str(root), str(templates), n, changed))
        total += traced_buildout(str(config))
    return total


@pytest.fixture
def in_process(monkeypatch):
    """What an in-process buildout changes for the rest of the process is put back: the
    directory, sys.path, its logger, the recipe loader the extension caches (other tests check
    buildout's own); the report lines go nowhere."""
    monkeypatch.chdir(os.getcwd())
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(zb, "_install_and_load", zb._install_and_load)
    monkeypatch.setattr(report, "say", lambda line: None)
    logger = logging.getLogger("zc.buildout")
    saved = (logger.level, list(logger.handlers), list(logger.filters), logger.propagate)
    root = logging.getLogger()
    root_saved = (root.level, list(root.handlers))
    yield
    logger.setLevel(saved[0])
    logger.handlers[:], logger.filters[:], logger.propagate = saved[1], saved[2], saved[3]
    root.setLevel(root_saved[0])
    root.handlers[:] = root_saved[1]


def test_no_step_of_a_run_grows_faster_than_the_parts(tmp_path, in_process):
    small, large = work(tmp_path, 6), work(tmp_path, 12)
    assert small and large
    faster = {
        name: (small[name], count)
        for name, count in large.items()
        if count > GROWTH * small.get(name, 0) + SLACK
    }
    assert faster == {}, "grows faster than the parts (lines at N, at 2N): " + ", ".join(
        f"{name} {a}->{b}" for name, (a, b) in sorted(faster.items())
    )

"""A run that fails, or is killed, leaves nothing behind: no temporary file beside a real one, no
state directory on a root it never applied to, no rewritten lock; and a run without the rights
it needs says so in one line."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile

import pytest
from support.host import Host, make_scratch_root
from support.paths import BUILDOUT, SYSTEM_RECIPES
from support.results import ok, one_error_line

APP = """
[buildout]
extends = {base}
parts = app-config

[app-config]
recipe = system_recipes:template
path = /etc/app/app.ini
text = port = {{ port }}
port = 8080
"""

NEW = """
[s00]
recipe = system_recipes:template
path = /etc/s00/svc.ini
text = service
"""


def leftovers(host, top: str) -> list[str]:
    found = []
    for dirpath, _, filenames in os.walk(host.path(top)):
        found += [os.path.join(dirpath, name) for name in filenames if ".sr-tmp" in name]
    return found


def killed_in_write(host, count: int = 1):
    """buildout, SIGKILLed in its ``count``-th file write: the temporary file written, not yet
    renamed into place."""
    return host.sandbox.run(
        [
            "env",
            f"SYSTEM_RECIPES_FAULT_KILL_WRITING={count}",
            BUILDOUT,
            "-c",
            os.path.join(host.directory, "host.cfg"),
        ],
        cwd=host.directory,
    )


def test_a_run_killed_in_a_write_leaves_no_temporary_file(host):
    host.write(APP)
    ok(host.buildout())
    etc = os.stat(host.path("/etc"))
    before = listing(host.path("/etc/app"))
    # an update of app.ini and a new file in a new directory, killed in the second write
    host.write(
        APP.replace("port = 8080", "port = 9090").replace(
            "parts = app-config", "parts = app-config s00"
        )
        + NEW
    )
    killed = killed_in_write(host, 2)
    assert killed.returncode in (-9, 137), killed
    assert "port = 9090" in host.read("/etc/app/app.ini")  # the first write was made
    assert leftovers(host, "/etc/s00"), "the kill came while the temporary file existed"
    host.write(APP)
    out = ok(host.buildout()).stdout
    assert "rolled back" in out
    assert host.read("/etc/app/app.ini") == "port = 8080\n"
    assert leftovers(host, "/etc") == []
    assert not host.exists("/etc/s00")  # the directory the killed run made goes too
    assert not host.exists("/var/lib/system-recipes/journal")
    # as the killed run found it, modification times included
    assert listing(host.path("/etc/app")) == before
    assert os.stat(host.path("/etc")).st_mtime_ns == etc.st_mtime_ns


def test_a_run_killed_writing_an_update_leaves_no_temporary_file(host):
    host.write(APP)
    ok(host.buildout())
    host.write(APP.replace("port = 8080", "port = 9090"))
    assert killed_in_write(host, 1).returncode in (-9, 137)
    assert leftovers(host, "/etc/app")
    out = ok(host.buildout()).stdout
    assert "rolled back" in out
    assert host.read("/etc/app/app.ini") == "port = 9090\n"
    assert leftovers(host, "/etc/app") == []


SCRATCH = """
[buildout]
extends = {base}
parts = app-config

[system-recipes]
root = {root}

[app-config]
recipe = system_recipes:template
path = /etc/app/app.ini
text = port = {{ port }}
port = 8080
"""


def listing(*tops: str) -> dict[str, tuple]:
    """Every path below ``tops`` (themselves included): kind, mode, owner, content, mtime."""
    result = {}
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            for path in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                st = os.lstat(path)
                content = None
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as stream:
                        content = stream.read()
                result[path] = (st.st_mode, st.st_uid, st.st_gid, content, st.st_mtime_ns)
    return result


@pytest.mark.sandbox  # root: the files are written as root's
def test_a_failed_first_run_leaves_the_root_as_it_found_it(scratch):
    scratch.write(SCRATCH.replace("port = 8080", "mode = 999\nport = 8080"))
    before = listing(scratch.root, scratch.directory)
    one_error_line(scratch.buildout(), "[app-config] mode")
    assert listing(scratch.root, scratch.directory) == before
    assert not os.path.exists(os.path.join(scratch.root, "var"))


@pytest.mark.sandbox  # root: the files are written as root's
def test_a_run_that_fails_validation_changes_nothing_state_included(scratch):
    scratch.write(SCRATCH)
    ok(scratch.buildout())
    scratch.write(SCRATCH.replace("port = 8080", "port = 9090\nmode = 999"))
    before = listing(scratch.root, scratch.directory)
    one_error_line(scratch.buildout(), "[app-config] mode")
    assert listing(scratch.root, scratch.directory) == before


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared(sandbox):
    """A host whose profile an unprivileged user can read (pytest's tmp_path is root's only)."""
    directory = tempfile.mkdtemp(prefix="sr-unprivileged-", dir="/tmp")
    os.chmod(directory, 0o755)
    try:
        yield Host(sandbox, directory)
    finally:
        shutil.rmtree(directory)


@pytest.mark.parametrize("command", [[BUILDOUT], [SYSTEM_RECIPES, "converge"]])
def test_a_run_without_root_says_it_needs_root(shared, command):
    shared.write(APP.replace("/etc/app/app.ini", "/etc/sr-unprivileged.ini"))
    result = shared.sandbox.run(
        [*NOBODY, *command, "-c", os.path.join(shared.directory, "host.cfg")],
        cwd=shared.directory,
    )
    assert result.returncode == 1, result
    line = one_error_line(result, "/var/lib/system-recipes", "needs root", "run it as root")
    assert "//" not in line and len((result.stdout + result.stderr).splitlines()) <= 3, result
    assert not shared.exists("/etc/sr-unprivileged.ini")


def test_a_run_without_root_into_a_scratch_root_says_what_to_do(shared):
    root = make_scratch_root(os.path.join(shared.directory, "root"))
    for dirpath, _, filenames in os.walk(root):
        for path in [dirpath, *(os.path.join(dirpath, name) for name in filenames)]:
            os.chown(path, 65534, 65534)
    shared.root = root
    shared.write(SCRATCH)
    before = listing(root)
    result = shared.sandbox.run(
        [*NOBODY, BUILDOUT, "-c", os.path.join(shared.directory, "host.cfg")],
        cwd=shared.directory,
    )
    assert result.returncode == 1, result
    one_error_line(
        result, "[app-config] /etc/app/app.ini", "Operation not permitted", "run it as root"
    )
    # rolled back, modification times included, and no state directory
    assert listing(root) == before


def held_lock_line(host, lock: str) -> str:
    """The error line of a run that gives up on ``lock``, held by this process."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return one_error_line(host.buildout("system-recipes:lock-timeout=0"), "lock-timeout")
    finally:
        os.close(fd)


@pytest.mark.sandbox  # root: the files are written as root's
def test_the_lock_names_its_holder_and_is_never_written(scratch):
    scratch.write(SCRATCH)
    ok(scratch.buildout())
    lock = os.path.join(scratch.root, "var/lib/system-recipes/lock")
    before = listing(os.path.dirname(lock))
    line = held_lock_line(scratch, lock)
    assert f"holds {lock} (pid {os.getpid()})" in line, line
    scratch.write(SCRATCH.replace("port = 8080", "port = 9090"))
    ok(scratch.buildout())
    assert listing(os.path.dirname(lock))[lock] == before[lock]  # a run that applied, too


def test_the_lock_names_its_holder_on_an_overlay(host):
    """/proc/locks names another device than stat does on an overlay: the inode is enough."""
    host.write(APP)
    ok(host.buildout())
    line = held_lock_line(host, host.path("/var/lib/system-recipes/lock"))
    assert f"(pid {os.getpid()})" in line, line


def test_a_run_killed_writing_its_manifest_is_rolled_back_without_a_trace(host):
    host.write(APP)
    ok(host.buildout())
    host.write(APP.replace("port = 8080", "port = 9090"))
    assert killed_in_write(host, 2).returncode in (-9, 137)  # app.ini, then the manifest
    assert leftovers(host, "/var/lib/system-recipes") != []
    host.write(APP)
    out = ok(host.buildout()).stdout
    assert "rolled back 1 change(s)" in out, out
    assert host.read("/etc/app/app.ini") == "port = 8080\n"
    assert leftovers(host, "/var/lib/system-recipes") == []


def test_a_plan_without_root_after_an_apply_says_it_needs_root(shared):
    """The state directory an apply left is root's (0700): a plan cannot read what it holds."""
    shared.write(APP.replace("/etc/app/app.ini", "/etc/sr-unprivileged.ini"))
    ok(shared.buildout())
    result = shared.sandbox.run(
        [*NOBODY, SYSTEM_RECIPES, "plan", "-c", os.path.join(shared.directory, "host.cfg")],
        cwd=shared.directory,
    )
    assert result.returncode == 1, result
    one_error_line(
        result, "cannot read the state directory /var/lib/system-recipes", "run it as root"
    )

"""The no-op fast path (core.fastpath) and ``system-recipes converge``: taken only when nothing a
run depends on changed since the last clean run -- each input changed in turn proves it is not
taken, through both entry points (buildout's extension and converge) -- and the lock and
recovery still happen. No timings here: the speed is bench/converge.py's business."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from support.host import make_scratch_root
from support.paths import BASE_CFG, BUILDOUT, REPO, SYSTEM_RECIPES

NOTHING = "system-recipes: nothing to do: 3 part(s)"
STATE = "var/lib/system-recipes"

COMMON = """\
[buildout]
extends = {base}

[system-recipes]
root = {root}
reload = off
"""

HOST = """\
[buildout]
extends = common.cfg
parts = motd cron rotate

[motd]
recipe = system_recipes:template
path = /etc/motd.d/hello
template = hello.j2
name = {name}

[cron]
recipe = system_recipes:cron
name = backup
schedule = 0 3 * * *
command = /bin/true
user = root

[rotate]
recipe = system_recipes:logrotate
name = app
paths = /var/log/app/*.log
"""


class Host:
    """A scratch install root and its profile (profile/host.cfg extends profile/common.cfg;
    templates in profile/templates, then ../templates: settings' default search path)."""

    def __init__(self, tmp_path, name: str = "world"):
        self.root = make_scratch_root(str(tmp_path / "root"))
        self.profile = tmp_path / "profile"
        self.profile.mkdir()
        (tmp_path / "templates").mkdir()
        (tmp_path / "templates" / "hello.j2").write_text("hello {{ name }}\n")
        self.cache = str(tmp_path / "cache")
        (self.profile / "common.cfg").write_text(COMMON.format(base=BASE_CFG, root=self.root))
        self.write(name)

    def write(self, name: str) -> None:
        (self.profile / "host.cfg").write_text(HOST.format(name=name))

    def path(self, host_path: str) -> str:
        return os.path.join(self.root, host_path.lstrip("/"))

    def run(self, entry: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        config = str(self.profile / "host.cfg")
        command = (
            [BUILDOUT, "-c", config, *args]
            if entry == "buildout"
            else [SYSTEM_RECIPES, "converge", "-c", config, *args]
        )
        environment = dict(os.environ, SYSTEM_RECIPES_CACHE_DIR=self.cache, **(env or {}))
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=self.profile, env=environment
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def fast(result: subprocess.CompletedProcess) -> bool:
    return NOTHING in ok(result)


def touch_ctime(path: str) -> None:
    """Change nothing but the ctime (the mode set to itself)."""
    os.chmod(path, os.lstat(path).st_mode & 0o7777)


def same_size_same_mtime_edit(path: str) -> None:
    before = os.lstat(path)
    with open(path, "r+b") as stream:
        data = stream.read()
        stream.seek(0)
        stream.write(data.swapcase())  # a hand edit of the same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def restore_mtime_of_a_package_file(host: Host) -> None:
    """A change of system-recipes' code: one file's mtime (restored afterwards by the test)."""
    path = os.path.join(REPO, "system_recipes", "shipped.py")
    s = os.lstat(path)
    os.utime(path, ns=(s.st_atime_ns, s.st_mtime_ns + 1_000_000_000))


#: (name, change, extra arguments of the next run, what the -v line names)
CHANGES = [
    ("an option", lambda h: h.write("moon"), (), "changed"),
    (
        "an extended file",
        # a setting no part's files depend on (an unused section would be refused)
        lambda h: (h.profile / "common.cfg").open("a").write("lock-timeout = 31\n"),
        (),
        "changed",
    ),
    ("a command-line assignment", lambda h: None, ("motd:name=moon",), ""),
    ("the verbosity", lambda h: None, ("-v",), ""),
    (
        "a template",
        lambda h: (h.profile.parent / "templates" / "hello.j2").write_text("hi {{ name }}\n"),
        (),
        "hello.j2 changed",
    ),
    (
        "a template shadowing another",
        lambda h: (
            (h.profile / "templates").mkdir()
            or (h.profile / "templates" / "hello.j2").write_text("shadow {{ name }}\n")
        ),
        (),
        "changed",
    ),
    (
        "an account file (ctime only)",
        lambda h: touch_ctime(h.path("/etc/passwd")),
        (),
        "passwd changed",
    ),
    (
        "a managed file, same size and mtime",
        lambda h: same_size_same_mtime_edit(h.path("/etc/motd.d/hello")),
        (),
        "hello changed",
    ),
    (
        "a managed file removed",
        lambda h: os.unlink(h.path("/etc/cron.d/backup")),
        (),
        "backup changed",
    ),
    (
        "a managed file's mode",
        lambda h: os.chmod(h.path("/etc/logrotate.d/app"), 0o600),
        (),
        "app changed",
    ),
    (
        "the manifest",
        lambda h: touch_ctime(h.path(f"/{STATE}/manifest.json")),
        (),
        "manifest.json changed",
    ),
    (
        "buildout's installed.cfg",
        lambda h: touch_ctime(h.path(f"/{STATE}/host/installed.cfg")),
        (),
        "installed.cfg changed",
    ),
    (
        "system-recipes' code",
        restore_mtime_of_a_package_file,
        (),
        "system-recipes or zc.buildout changed",
    ),
]


@pytest.fixture
def code_file():
    path = os.path.join(REPO, "system_recipes", "shipped.py")
    before = os.lstat(path)
    yield
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("entry", ["buildout", "converge"])
@pytest.mark.parametrize(
    "name, change, arguments, named", CHANGES, ids=[change[0] for change in CHANGES]
)
def test_each_input_changed_in_turn_is_seen(
    tmp_path, code_file, entry, name, change, arguments, named
):
    host = Host(tmp_path)
    # -v says why a run is full; the verbosity is an input itself, so every run has the same
    base = () if name == "the verbosity" else ("-v",)
    ok(host.run(entry, *base))
    assert fast(host.run(entry, *base)), "a second run of an unchanged host takes the fast path"
    change(host)
    full = host.run(entry, *base, *arguments)
    assert NOTHING not in ok(full), name
    if named:
        assert "system-recipes: a full run: " in full.stdout and named in full.stdout, full.stdout
    # the full run left a new record (for the same arguments): the next run is fast again,
    # unless the change left drift behind (a hand edit is kept and warned about every time)
    again = host.run(entry, *base, *arguments)
    if "managed file" not in name or "removed" in name:
        assert NOTHING in ok(again), (name, again.stdout)


def converge_in_a_probe(host: Host) -> subprocess.CompletedProcess:
    """``converge`` in a fresh interpreter that then says whether zc.buildout was imported."""
    probe = (
        "import sys\n"
        "from system_recipes.commands.entry import main\n"
        f"code = main(['converge', '-c', {str(host.profile / 'host.cfg')!r}])\n"
        "print('imported' if 'zc.buildout' in sys.modules else 'not imported', code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=dict(os.environ, SYSTEM_RECIPES_CACHE_DIR=host.cache),
    )


def test_a_converge_no_op_does_not_import_zc_buildout(tmp_path):
    host = Host(tmp_path)
    ok(host.run("converge"))
    result = converge_in_a_probe(host)
    assert result.stdout.splitlines()[-1] == "not imported 0", result.stdout + result.stderr
    assert NOTHING in result.stdout


def test_a_drifted_or_partial_run_leaves_no_record(tmp_path):
    host = Host(tmp_path)
    ok(host.run("buildout"))
    with open(host.path("/etc/motd.d/hello"), "a") as stream:
        stream.write("by hand\n")
    for _ in range(2):  # the drift is warned about on every run, never skipped
        out = ok(host.run("converge"))
        assert "1 file drifted" in out and NOTHING not in out
    os.unlink(host.path("/etc/motd.d/hello"))
    ok(host.run("buildout", "install", "motd"))  # a partial run: the others were not checked
    assert NOTHING not in ok(host.run("buildout", "-v"))


def test_the_lock_is_still_taken_and_recovery_still_happens(tmp_path):
    host = Host(tmp_path)
    ok(host.run("converge", "-v"))
    assert fast(host.run("converge", "-v"))
    # another run holds the lock: converge does not answer for it, buildout waits its turn
    lock = os.open(host.path(f"/{STATE}/lock"), os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = subprocess.Popen(
            [SYSTEM_RECIPES, "converge", "-c", str(host.profile / "host.cfg"), "-v"],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, SYSTEM_RECIPES_CACHE_DIR=host.cache),
        )
        assert waiting.stdout.readline().startswith("system-recipes: a full run: another run")
        first = waiting.stdout.readline()
        assert first.startswith("system-recipes: waiting for another run"), first
    finally:
        os.close(lock)
    rest = waiting.communicate(timeout=60)[0]
    assert waiting.returncode == 0 and NOTHING in rest, rest
    # a run killed while applying: the next converge rolls it back, then records a clean run
    host.write("moon")
    killed = host.run("converge", "-v", env={"SYSTEM_RECIPES_FAULT_KILL_AFTER": "1"})
    assert killed.returncode != 0
    assert os.path.isdir(host.path(f"/{STATE}/journal"))
    host.write("world")
    out = ok(host.run("converge", "-v"))
    assert "an interrupted run is to be recovered" in out, out
    assert "rolled back 1 change(s) of an interrupted run" in out, out
    with open(host.path("/etc/motd.d/hello")) as stream:
        assert stream.read() == "hello world\n"
    assert fast(host.run("converge", "-v"))


def test_a_package_database_change_is_seen(tmp_path):
    """The package facts come from dpkg's database below the root (dpkg-query --admindir)."""
    host = Host(tmp_path)
    os.makedirs(host.path("/var/lib/dpkg"))
    shutil.copy("/var/lib/dpkg/status", host.path("/var/lib/dpkg/status"))
    with open(host.profile / "host.cfg", "a") as stream:
        stream.write(
            textwrap.dedent(
                """
                [pkg]
                recipe = system_recipes:package
                name = cron
                manager = dpkg
                prefix = /usr/sbin
                """
            )
        )
    text = (host.profile / "host.cfg").read_text().replace("rotate\n", "rotate pkg\n", 1)
    (host.profile / "host.cfg").write_text(text)
    ok(host.run("converge", "-v"))
    assert "nothing to do: 4 part(s)" in ok(host.run("converge", "-v"))
    touch_ctime(host.path("/var/lib/dpkg/status"))
    out = ok(host.run("converge", "-v"))
    assert "status changed" in out and "nothing to do" not in out.split("\n", 1)[1], out


def test_converge_usage_errors_are_one_line(tmp_path):
    result = subprocess.run([SYSTEM_RECIPES, "converge", "--bogus"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "system-recipes converge: error: unrecognized argument '--bogus'"
    )


SERVICE = """\
[buildout]
extends = common.cfg
parts = web

[web]
recipe = system_recipes:service
command = /usr/bin/python3 -m http.server 8080
user = www-data
run = supervisor
"""


def test_a_service_section_host_takes_the_fast_path_and_converge_learns_it(tmp_path):
    """One meta section expands into level-1 parts that are staged, not the section itself;
    a record left by plain buildout reaches converge's index through its first run."""
    host = Host(tmp_path)
    (host.profile / "host.cfg").write_text(SERVICE)
    ok(host.run("buildout"))
    assert "system-recipes: nothing to do: " in ok(host.run("buildout"))
    # converge's first run has no index: buildout runs, its extension takes the fast path and
    # writes the index; the next converge answers without importing buildout
    first = ok(host.run("converge"))
    assert "system-recipes: nothing to do: " in first and "[web" not in first, first
    result = converge_in_a_probe(host)
    assert result.stdout.splitlines()[-1] == "not imported 0", result.stdout + result.stderr

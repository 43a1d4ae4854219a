"""The runscript recipe: systemd units checked by systemd-analyze, LSB init scripts that really
start, report and stop a process inside the sandbox, enable links, bad input, a property test."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.declare import declare
from support.host import make_scratch_root
from support.net import free_port, listening
from support.results import ok, one_error_line, snapshot

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.declare.schema import unescape
from system_recipes.daemons.systemd import isolated
from system_recipes.recipes import runscript

UNIT = "/etc/systemd/system/web.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/web.service"
SCRIPT = "/etc/init.d/web"
RC_LINKS = [f"/etc/rc{n}.d/S20web" for n in "2345"] + [f"/etc/rc{n}.d/K20web" for n in "016"]

SYSTEMD = """
[buildout]
extends = {base}
parts = web

[web]
recipe = system_recipes:runscript
kind = systemd
command = /usr/bin/python3 -m http.server --bind 127.0.0.1 "8080"
user = nobody
group = nogroup
working-directory = /tmp
environment =
    GREETING=hello "world" 100%
after = network-online.target
wants = network-online.target
description = shop web 100%
"""

SYSV = """
[buildout]
extends = {base}
parts = web

[web]
recipe = system_recipes:runscript
kind = sysv
command = /usr/bin/python3 -I -m http.server --bind 127.0.0.1 %(port)d
user = nobody
group = nogroup
working-directory = /tmp
environment =
    GREETING=hello 'world' $$HOME
stop-signal = SIGINT
"""


IGNORING_SIGINT = [
    "/usr/bin/python3",
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGQUIT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])",
]


def wait_for(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {condition}")


def verify_alone(text: str, name: str = "web.service") -> str:
    """What systemd-analyze says about a unit, verified on its own in a temp dir."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, name)
        with open(path, "w") as stream:
            stream.write(text)
        # isolated as the validator is: as root it touches /run/systemd otherwise
        result = subprocess.run(
            isolated(["systemd-analyze", "verify", "--man=no", path]),
            capture_output=True,
            text=True,
        )
    return result.stdout + result.stderr


def without_benign(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Special user nobody" not in line]


# -- systemd ----------------------------------------------------------------------------------
def test_systemd_unit_passes_systemd_analyze_and_is_enabled(host):
    host.write(SYSTEMD)
    out = ok(host.buildout()).stdout
    text = host.read(UNIT)
    assert "ExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 8080\n" in text
    assert 'Environment="GREETING=hello \\"world\\" 100%%"\n' in text
    assert "Description=shop web 100%%\n" in text and "User=nobody\nGroup=nogroup\n" in text
    assert "After=network-online.target\nWants=network-online.target\n" in text
    assert without_benign(verify_alone(text)) == []
    assert os.readlink(host.path(WANTS)) == UNIT
    assert f"link {WANTS} -> {UNIT}" in out
    # systemd is not PID 1 here: the reload is said and skipped, not an error
    assert "systemd (web.service) skipped (systemd is not running)" in out, out

    # enable = false removes the link, keeps the unit
    host.write(SYSTEMD + "enable = false\n")
    out = ok(host.buildout()).stdout
    assert not host.exists(WANTS) and host.exists(UNIT)
    assert f"unlink {WANTS}" in out

    # a new name: the old unit and link go, the new ones come
    host.write(SYSTEMD + "name = shop\n")
    ok(host.buildout())
    assert not host.exists(UNIT) and not host.exists(WANTS)
    assert (
        os.readlink(host.path("/etc/systemd/system/multi-user.target.wants/shop.service"))
        == "/etc/systemd/system/shop.service"
    )

    # a dropped part removes its unit and its link
    host.write("[buildout]\nextends = {base}\nparts =\n")
    out = ok(host.buildout()).stdout
    assert not host.exists("/etc/systemd/system/shop.service")
    assert not host.exists("/etc/systemd/system/multi-user.target.wants/shop.service")
    assert "[web] removed" in out


def test_a_bad_extra_key_is_refused_by_systemd_analyze_naming_the_section(host):
    before = snapshot(host, "/etc")
    host.write(SYSTEMD + "extra =\n    LimitNOFILE=65536\n    Bogus=1\n")
    # named: the option that wrote the line, the line and the unit
    line = one_error_line(
        host.buildout(),
        "[web] extra: systemd-analyze: Unknown key 'Bogus' in section [Service]",
        f"of {UNIT}: 'Bogus=1')",
    )
    assert re.search(r"\(line \d+ of ", line), line
    host.write(SYSTEMD + "extra = Restart=sometimes\n")
    one_error_line(
        host.buildout(),
        "[web] extra: systemd-analyze: Failed to parse service restart specifier",
        "'Restart=sometimes')",
    )
    # a line the recipe wrote from another option is blamed on that option
    host.write(SYSTEMD + "environment = A=1\nextra = Environment=B\n")
    one_error_line(host.buildout(), "[web] extra: systemd-analyze: ", "'Environment=B')")
    assert snapshot(host, "/etc") == before
    host.write(SYSTEMD + "extra =\n    LimitNOFILE=65536\n    TimeoutStopSec=20\n")
    ok(host.buildout())
    assert "LimitNOFILE=65536\nTimeoutStopSec=20\n\n[Install]" in host.read(UNIT)


@pytest.mark.sandbox
def test_one_systemd_analyze_for_all_changed_units_and_none_on_a_noop_run(scratch):
    """Verified in a temp dir: a program below the root that this machine lacks is fine."""
    program = os.path.join(scratch.root, "opt/shop/bin/shop-server")
    os.makedirs(os.path.dirname(program))
    shutil.copy2("/usr/bin/true", program)
    text = """
        [buildout]
        extends = {base}
        parts = a b

        [system-recipes]
        root = {root}

        [a]
        recipe = system_recipes:runscript
        kind = systemd
        command = /opt/shop/bin/shop-server --port 1
        [b]
        recipe = system_recipes:runscript
        kind = systemd
        command = /opt/shop/bin/shop-server --port 2
        """
    scratch.write(text)
    counted = (
        "import sys; from system_recipes.core.hooks import validate; from system_recipes.planning "
        "import load_and_plan; load_and_plan(sys.argv[1]); "
        "print(validate.PROCESS_COUNT['n'])"
    )
    config = os.path.join(scratch.directory, "host.cfg")

    def processes() -> list[str]:
        return subprocess.run(
            [sys.executable, "-c", counted, config], capture_output=True, text=True, check=True
        ).stdout.split()

    assert processes() == ["1"]  # both units, one systemd-analyze
    ok(scratch.buildout())
    assert (
        os.readlink(
            os.path.join(scratch.root, "etc/systemd/system/multi-user.target.wants/a.service")
        )
        == "/etc/systemd/system/a.service"
    )
    assert processes() == ["0"]  # nothing changed: nothing to verify


def test_the_documented_example_runs(host):
    example = textwrap.dedent(runscript.__doc__.partition("Example::")[2])
    host.write("[buildout]\nextends = {base}\nparts = shop-service\n" + example)
    out = ok(host.buildout()).stdout
    # this machine has systemd installed (not running): kind = auto picks systemd
    text = host.read("/etc/systemd/system/shop-service.service")
    assert 'Environment="PYTHONUNBUFFERED=1"\n' in text and "User=nobody\n" in text
    assert "link /etc/systemd/system/multi-user.target.wants/shop-service.service" in out


@pytest.mark.sandbox
def test_kind_auto_is_sysv_without_systemd_below_the_root(scratch):
    scratch.write("""
        [buildout]
        extends = {base}
        parts = web
        [system-recipes]
        root = {root}
        [web]
        recipe = system_recipes:runscript
        command = true
        """)
    os.makedirs(os.path.join(scratch.root, "usr/bin"))
    shutil.copy2("/usr/bin/true", os.path.join(scratch.root, "usr/bin/true"))
    ok(scratch.buildout())
    assert os.path.isfile(os.path.join(scratch.root, "etc/init.d/web"))
    assert "do_start /usr/bin/true\n" in open(os.path.join(scratch.root, "etc/init.d/web")).read()
    os.makedirs(os.path.join(scratch.root, "usr/lib/systemd"))
    shutil.copy2("/usr/bin/true", os.path.join(scratch.root, "usr/lib/systemd/systemd"))
    ok(scratch.buildout())
    assert not os.path.exists(os.path.join(scratch.root, "etc/init.d/web"))
    assert not os.path.lexists(os.path.join(scratch.root, "etc/rc2.d/S20web"))
    assert os.path.isfile(os.path.join(scratch.root, "etc/systemd/system/web.service"))


# -- sysv, live -------------------------------------------------------------------------------
def pid_of(host) -> int | None:
    try:
        return int(host.read("/run/web.pid").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def gone(pid: int) -> bool:
    """Exited (a zombie nobody has reaped yet counts: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def status_field(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as stream:
        return next(line.split()[1] for line in stream if line.startswith(field + ":"))


@pytest.mark.daemon
@pytest.mark.parametrize("starter", ["start-stop-daemon", "setsid-su"])
def test_sysv_script_starts_reports_restarts_and_stops_a_real_server(host, starter):
    if starter == "setsid-su":
        # this namespace's mounts are private: hide start-stop-daemon from the script only here
        host.sandbox.run("mount --bind /dev/null /usr/sbin/start-stop-daemon", check=True)
    port = free_port()
    started: list[int | None] = []
    try:
        host.write(SYSV % {"port": port})
        ok(host.buildout())
        assert os.stat(host.path(SCRIPT)).st_mode & 0o777 == 0o755
        for link in RC_LINKS:
            assert os.readlink(host.path(link)) == "../init.d/web"
        # started by a caller that ignores SIGINT and SIGQUIT (a shell's background job
        # does): the script must not hand that on to the service
        result = host.sandbox.run([*IGNORING_SIGINT, SCRIPT, "start"], timeout=60)
        started.append(pid_of(host))
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for(lambda: listening(port))
        pid = pid_of(host)
        assert pid is not None and f"started web (pid {pid})" in result.stdout
        assert status_field(pid, "Uid") == "65534" and status_field(pid, "Gid") == "65534"
        # the stop-signal (SIGINT) reaches the service: it is neither ignored nor blocked
        sigint = 1 << (signal.SIGINT - 1)
        wait_for(
            lambda: (
                not int(status_field(pid, "SigIgn"), 16) & sigint
                and not int(status_field(pid, "SigBlk"), 16) & sigint
            )
        )
        with open(f"/proc/{pid}/environ", "rb") as stream:
            assert b"GREETING=hello 'world' $HOME" in stream.read().split(b"\0")
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            # -I: the working directory is the machine's /tmp, and -m puts it first on
            # sys.path (a stray /tmp/types.py once kept the server from starting)
            assert stream.read().split(b"\0")[1:7] == [
                b"-I",
                b"-m",
                b"http.server",
                b"--bind",
                b"127.0.0.1",
                str(port).encode(),
            ]
        assert os.readlink(f"/proc/{pid}/cwd") == "/tmp"
        parent = int(status_field(pid, "PPid"))
        with open(f"/proc/{parent}/comm") as stream:  # the fallback's su waits for its child
            assert (stream.read().strip() == "su") == (starter == "setsid-su")
        status = host.sandbox.run([SCRIPT, "status"])
        assert status.returncode == 0 and f"web is running (pid {pid})" in status.stdout
        again = host.sandbox.run([SCRIPT, "start"])
        assert again.returncode == 0 and "already running" in again.stdout and pid_of(host) == pid

        # a changed script restarts the running service (the sysv reload)
        new_port = free_port()
        host.write(SYSV % {"port": new_port})
        out = ok(host.buildout()).stdout
        assert "reloads: sysv (web)" in out, out
        started.append(pid_of(host))
        wait_for(lambda: listening(new_port))
        assert pid_of(host) != pid and gone(pid)
        assert not listening(port)

        stop = host.sandbox.run([SCRIPT, "stop"], timeout=60)
        assert stop.returncode == 0 and "stopped web" in stop.stdout, stop.stdout + stop.stderr
        assert not host.exists("/run/web.pid") and gone(started[-1])
        wait_for(lambda: not listening(new_port))
        status = host.sandbox.run([SCRIPT, "status"])
        assert status.returncode == 3 and "web is not running" in status.stdout

        # started again, then the part is dropped: stopped, script and rc links removed
        ok(host.sandbox.run([SCRIPT, "start"], timeout=60))
        last = pid_of(host)
        started.append(last)
        host.write("[buildout]\nextends = {base}\nparts =\n")
        out = ok(host.buildout()).stdout
        assert f"stopped web (pid {last})" in out, out
        wait_for(lambda: gone(last))
        assert not host.exists(SCRIPT) and not host.exists("/run/web.pid")
        assert not any(host.exists(link) for link in RC_LINKS)
    finally:
        started.append(pid_of(host))
        for pid in started:
            kill(pid)


def test_sysv_status_with_a_stale_pidfile(host):
    host.write(SYSV % {"port": 9})
    ok(host.buildout())
    dead = subprocess.Popen(["true"])
    dead.wait()
    host.sandbox.run(f"echo {dead.pid} > /run/web.pid", check=True)
    status = host.sandbox.run([SCRIPT, "status"])
    assert status.returncode == 1 and "not running, but /run/web.pid exists" in status.stdout
    usage = host.sandbox.run([SCRIPT, "bogus"])
    assert usage.returncode == 3 and "Usage:" in usage.stderr


# -- bad input --------------------------------------------------------------------------------
def test_bad_input_is_one_line_and_changes_nothing(host):
    """Bad input stops the run with one line and changes nothing on the real paths, as
    root. Which line each bad input gives: the error cases of tests/recipes/runscript/."""
    options, fragments = (
        "command = /usr/bin/sleep 100\ncolour = blue",
        ("[web] colour:", "unknown option"),
    )
    host.write(
        """
        [buildout]
        extends = {base}
        parts = web

        [web]
        recipe = system_recipes:runscript
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )
    before = snapshot(host, "/etc", "/run")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc", "/run") == before


def test_a_foreign_enable_link_is_not_replaced(host):
    host.sandbox.run(f"mkdir -p {os.path.dirname(WANTS)} && ln -s /dev/null {WANTS}", check=True)
    host.write(SYSTEMD)
    one_error_line(host.buildout(), "[web] path:", "was not made by system-recipes")
    assert not host.exists(UNIT) and os.readlink(host.path(WANTS)) == "/dev/null"
    host.write(SYSTEMD + "force = true\n")
    ok(host.buildout())
    assert os.readlink(host.path(WANTS)) == UNIT


# -- property test, in-process, in a scratch root ---------------------------------------------
@pytest.fixture(scope="module")
def program_root(tmp_path_factory):
    root = make_scratch_root(str(tmp_path_factory.mktemp("runscript") / "root"))
    os.makedirs(os.path.join(root, "usr/bin"))
    shutil.copy2("/usr/bin/sleep", os.path.join(root, "usr/bin/sleep"))
    return root


TEXT = st.text(
    alphabet=st.sampled_from(
        list("aZ09_-.=/ %$\"'\\;\t#[]{}~`!*") * 3 + ["\u00e9", "\x01", "\x7f"]
    ),
    max_size=10,
)


BAD_EXTRA = {"Nice=99", "Bogus=1", "PrivateTmp=maybe"}


@settings(
    max_examples=int(os.environ.get("RUNSCRIPT_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["systemd", "sysv"]),
    arguments=st.lists(TEXT, max_size=3),
    description=TEXT,
    environment=st.dictionaries(st.sampled_from(["A", "B_2", "lower"]), TEXT, max_size=2),
    working=st.one_of(st.none(), TEXT.map(lambda t: "/" + t)),
    restart=st.one_of(st.none(), st.sampled_from(list(runscript.RESTART) * 2 + ["sometimes"])),
    stop=st.sampled_from(["SIGTERM", "INT", "SIGHUP", "QUIT", "SIGUSR1", "KILL", "BOGUS"]),
    user=st.sampled_from(["root", "nobody", "daemon", "root", "nosuchuser"]),
    extra=st.lists(
        st.sampled_from(
            [
                "Nice=5",
                "Nice=99",
                "LimitNOFILE=1024",
                "Bogus=1",
                "TimeoutStopSec=5s",
                "PrivateTmp=maybe",
            ]
        ),
        max_size=2,
    ),
)
def test_property_random_options_give_a_clean_error_or_a_valid_unit(
    program_root, kind, arguments, description, environment, working, restart, stop, user, extra
):
    options = {
        "kind": kind,
        "command": shlex.join(["/usr/bin/sleep", *arguments]),
        "description": description,
        "stop-signal": stop,
        "user": user,
        "environment": "\n".join(f"{k}={v}" for k, v in environment.items()),
    }
    if restart is not None:
        options["restart"] = restart
    if working is not None:
        options["working-directory"] = working
    if extra:
        options["extra"] = "\n".join(extra)
    try:
        content = declare(runscript, program_root, options, "web").decode()
    except (ConfigError, RunError) as error:
        message = str(error)
        assert message.startswith("[web] ") and "\n" not in message, message
        if "systemd-analyze" in message:  # our own quoting never gives systemd a bad unit
            assert BAD_EXTRA & set(extra), message
            # ... and the complaint names extra and the line it wrote
            assert message.startswith("[web] extra: systemd-analyze: "), message
            assert re.search(
                r"\(line \d+ of /etc/systemd/system/web\.service: '("
                + "|".join(BAD_EXTRA)
                + r")'\)$",
                message,
            ), message
        event(f"refused: {message.split(':')[0]}")
        return
    event(f"accepted {kind}")
    if kind == "systemd":
        assert without_benign(verify_alone(content)) == []
        return
    # the shell gives the program exactly the words of the command line (after env's own)
    start = re.search(r"^        do_start (.*)$", content, re.M).group(1)
    shown = subprocess.run(
        ["sh", "-c", "do_start() { printf '%s\\0' \"$@\"; }; do_start " + start],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    words = shown.split("\0")[:-1]
    # ``$$`` is buildout's escape for ``$``; the schema unescapes every value
    assignments = [f"{k}={unescape(v).strip()}" for k, v in environment.items()]
    if assignments:
        assert words[: 1 + len(assignments)] == ["/usr/bin/env", *assignments]
        words = words[1 + len(assignments) :]
    assert words == shlex.split(unescape(options["command"]))
    check = subprocess.run(["sh", "-n"], input=content, capture_output=True, text=True)
    assert check.returncode == 0 and check.stderr == ""

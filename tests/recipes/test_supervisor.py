"""The supervisor recipe against a real supervisord, inside the sandbox; bad input; a property
test checked by supervisor's own configuration reader."""

from __future__ import annotations

import inspect
import os
import re
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from supervisor.options import ServerOptions
from support.daemons import CONFIG, ctl, running_pid, status
from support.declare import declare
from support.host import make_scratch_root
from support.markers import needs
from support.results import ok, one_error_line, snapshot

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.declare.schema import unescape
from system_recipes.daemons import supervisor as supervisor_daemon
from system_recipes.daemons import supervisor_exec
from system_recipes.recipes import supervisor

INCLUDE = "/etc/supervisor/conf.d"

PROFILE = """
[buildout]
extends = {base}
parts = %(parts)s

[app]
recipe = system_recipes:supervisor
command = /bin/sleep %(seconds)s
environment = GREETING=hello world
startsecs = 1

[other]
recipe = system_recipes:supervisor
command = /bin/sleep 2001
startsecs = 1
"""


def profile(parts: str = "app other", seconds: int = 1001) -> str:
    return PROFILE % {"parts": parts, "seconds": seconds}


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as stream:
        return stream.read().decode().split("\0")[:-1]


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as stream:
        pairs = stream.read().decode().split("\0")[:-1]
    return dict(pair.split("=", 1) for pair in pairs)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stream:
                    if int(stream.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def stop(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
@needs("sandbox", "daemon")
def live(host):
    """The sandboxed host; ``host.start()`` starts the real supervisord (killed at the end,
    with every child, by PID)."""
    started: list[int] = []

    def start() -> int:
        host.sandbox.run(["supervisord", "-c", CONFIG], check=True, timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid = int(host.sandbox.read("/run/supervisord.pid").split()[0])
                if ctl(host.sandbox, "pid").stdout.strip() == str(pid):
                    started.append(pid)
                    return pid
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.2)
        raise AssertionError("supervisord did not start")

    host.start = start
    yield host
    for pid in started:
        stop(children(pid) + [pid])


def test_real_supervisord_runs_restarts_and_removes_the_program(live):
    host = live
    host.write(profile())
    out = ok(host.buildout()).stdout
    assert "supervisor (app other) skipped (supervisord is not running" in out, out
    assert host.read(f"{INCLUDE}/app.conf") == (
        "; supervisor configuration of [app], written by system-recipes: edits here are "
        "overwritten.\n\n"
        "[program:app]\n"
        "command = /bin/sleep 1001\n"
        "autostart = true\n"
        "startsecs = 1\n"
        "autorestart = true\n"
        'environment = GREETING="hello world"\n'
    )

    host.start()
    app, other = running_pid(host.sandbox, "app"), running_pid(host.sandbox, "other")
    assert cmdline(app) == ["/bin/sleep", "1001"]
    assert environ(app)["GREETING"] == "hello world"

    # a no-op run touches no program: the fast path, then a full run that finds nothing
    out = ok(host.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout
    assert "reloads: none" in out, out
    assert running_pid(host.sandbox, "app") == app

    # a new command: app is restarted with it, other is left alone
    host.write(profile(seconds=1002))
    out = ok(host.buildout()).stdout
    assert "reloads: supervisor (app)" in out, out
    assert "supervisor: app: updated process group" in out, out
    new = running_pid(host.sandbox, "app")
    assert new != app and cmdline(new) == ["/bin/sleep", "1002"]
    assert not os.path.exists(f"/proc/{app}")
    assert running_pid(host.sandbox, "other") == other

    # dropping the part stops and removes the program and deletes its file
    host.write(profile(parts="other"))
    out = ok(host.buildout()).stdout
    assert "supervisor: app: removed process group" in out, out
    assert not host.exists(f"{INCLUDE}/app.conf")
    assert "no such process" in status(host.sandbox, "app").lower()
    assert not os.path.exists(f"/proc/{new}")
    assert running_pid(host.sandbox, "other") == other


def test_a_group_of_programs_and_a_renamed_part(live):
    host = live
    host.start()
    group = """
        [buildout]
        extends = {base}
        parts = workers

        [workers]
        recipe = system_recipes:supervisor
        name = %s
        programs = web queue
        startsecs = 1
        directory = /tmp

        [web]
        command = /bin/sleep 3001

        [queue]
        command = /bin/sleep 300%%(process_num)d
        process_name = queue_%%(process_num)d
        numprocs = 2
        numprocs_start = 2
        """
    host.write(group % "shop")
    ok(host.buildout())
    pids = {
        name: running_pid(host.sandbox, f"shop:{name}") for name in ("web", "queue_2", "queue_3")
    }
    assert cmdline(pids["queue_3"]) == ["/bin/sleep", "3003"]
    assert os.readlink(f"/proc/{pids['web']}/cwd") == "/tmp"
    # renaming the group: the old one is stopped and removed in the same update
    host.write(group % "store")
    out = ok(host.buildout()).stdout
    assert "reloads: supervisor (store shop)" in out, out
    assert not host.exists(f"{INCLUDE}/shop.conf")
    assert "no such" in status(host.sandbox, "shop:web").lower()
    assert running_pid(host.sandbox, "store:web") != pids["web"]


def test_an_error_supervisorctl_prints_fails_the_run(live):
    """A hand-made broken file in the include directory makes reread fail: the run says so
    (the handler reads supervisorctl's ERROR lines, which some versions print with exit 0)."""
    host = live
    host.start()
    host.sandbox.run(
        f"printf '[program:broken]\\ncommand=/bin/true\\nautorestart=maybe\\n' "
        f"> {INCLUDE}/broken.conf",
        check=True,
    )
    host.write(profile(parts="app"))
    result = host.buildout()
    error = one_error_line(result, "reloading failed", "supervisorctl reread", "autorestart")
    assert "CANT_REREAD" in error
    assert host.exists(f"{INCLUDE}/app.conf")  # written: the failure is the reload's


def test_bad_input_is_one_line_and_changes_nothing(host):
    """Bad input stops the run with one line and changes nothing on the real paths, as
    root. Which line each bad input gives: the error cases of tests/recipes/supervisor/."""
    options, fragments = ("command = /bin/true\ncolour = blue", ("[app] colour:", "unknown option"))
    host.write(
        """
        [buildout]
        extends = {base}
        parts = app

        [app]
        recipe = system_recipes:supervisor
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )
    before = snapshot(host, "/etc")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc") == before
    assert not host.exists("/var/lib/system-recipes/manifest.json")


def test_a_name_another_include_file_defines_is_refused(host):
    host.sandbox.run(
        f"printf '[program:app]\\ncommand=/bin/true\\n' > {INCLUDE}/local.conf", check=True
    )
    host.write(profile(parts="app"))
    before = snapshot(host, "/etc")
    one_error_line(host.buildout(), "[app]", f"app is also defined in {INCLUDE}/local.conf")
    assert snapshot(host, "/etc") == before


def test_a_log_directory_made_by_the_same_run_is_accepted(host):
    host.write("""
        [buildout]
        extends = {base}
        parts = shop shop-server

        [shop-server]
        recipe = system_recipes:supervisor
        command = /bin/true
        user = ${shop:user}
        stdout_logfile = ${shop:log-directory}/%(program_name)s.log

        [shop]
        recipe = system_recipes:deployment
        """)
    ok(host.buildout())
    assert "stdout_logfile = /var/log/shop/%(program_name)s.log\n" in host.read(
        f"{INCLUDE}/shop-server.conf"
    )


def test_every_option_supervisor_reads_is_declared():
    """The option list is derived from supervisor's own code: a new supervisor option fails
    this test until it is declared."""
    source = inspect.getsource(ServerOptions._processes_from_section)
    read = set(re.findall(r"get\(section,\s*'(\w+)'", source))
    read |= {
        f"{stream}_{suffix}"
        for stream in ("stdout", "stderr")
        for suffix in re.findall(r"'%s_(\w+)' % k", source)
    }
    assert read == set(supervisor.SUPERVISOR_NAMES)


@pytest.mark.parametrize(
    "value, written",
    [
        ("date +%s", "date +%%s"),
        (
            "run %(program_name)s-%(process_num)02d 100%",
            "run %(program_name)s-%(process_num)02d 100%%",
        ),
        ("%(here)s/bin/x %%", "%(here)s/bin/x %%%%"),
    ],
)
def test_percent_escaping(value, written):
    assert supervisor_daemon.escape_percent(value, set(supervisor_daemon.EXPANSIONS)) == written


# -- property test: random values give a clean error or a file supervisor reads as meant ------
@pytest.fixture(scope="module")
def property_root(tmp_path_factory):
    """A scratch root whose paths mirror the machine's (supervisor's reader checks log
    directories on this machine), with a main config including its conf.d."""
    root = make_scratch_root(str(tmp_path_factory.mktemp("supervisor") / "root"))
    logs = str(tmp_path_factory.mktemp("logs"))
    os.makedirs(os.path.join(root, logs.lstrip("/")))
    os.makedirs(os.path.join(root, INCLUDE.lstrip("/")))
    main = os.path.join(root, "supervisord.conf")
    with open(main, "w") as stream:
        stream.write(
            f"[supervisord]\nlogfile={logs}/supervisord.log\n"
            f"pidfile={logs}/supervisord.pid\n[include]\nfiles = {root}{INCLUDE}/*.conf\n"
        )
    return root, logs, main


TEXT = st.text(
    alphabet=st.sampled_from(list("aZ09_-./=%(){} ;#\"',$\\\t") + ["\u00e9"]), max_size=12
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    command=st.one_of(TEXT, st.sampled_from(["/bin/sleep 1", "date +%s", "echo %(program_name)s"])),
    env=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,4}", fullmatch=True), TEXT, max_size=3),
    numbers=st.dictionaries(
        st.sampled_from(
            ["numprocs", "startsecs", "priority", "stdout_logfile_backups", "stopwaitsecs"]
        ),
        st.integers(-2, 3).map(str) | TEXT,
        max_size=2,
    ),
    choices=st.dictionaries(
        st.sampled_from(
            [
                "autorestart",
                "stopsignal",
                "umask",
                "exitcodes",
                "stdout_logfile_maxbytes",
                "process_name",
                "stdout_logfile",
            ]
        ),
        st.sampled_from(
            [
                "true",
                "unexpected",
                "KILL",
                "SEGV",
                "022",
                "999",
                "0,2",
                "1,300",
                "10MB",
                "1TB",
                "%(program_name)s_%(process_num)d",
                "a b",
                "AUTO",
                "{logs}/x.log",
                "/nowhere/x.log",
            ]
        )
        | TEXT,
        max_size=3,
    ),
)
def test_property_random_options_give_a_clean_error_or_a_file_supervisor_reads_as_meant(
    property_root, command, env, numbers, choices
):
    root, logs, main = property_root
    options = {
        "command": command,
        **numbers,
        **{k: v.replace("{logs}", logs) for k, v in choices.items()},
    }
    if env:
        options["environment"] = "\n".join(f"{k}={v}" for k, v in env.items())
    try:
        content = declare(supervisor, root, options)
    except (ConfigError, RunError) as error:
        message = str(error)
        assert message.startswith("[part]") and "\n" not in message, message
        event("refused")
        return
    event("accepted")
    path = os.path.join(root, INCLUDE.lstrip("/"), "part.conf")
    with open(path, "wb") as stream:
        stream.write(content)
    try:
        reader = ServerOptions()
        reader.realize(args=["-c", main])  # supervisord's whole reading of its configuration
    finally:
        os.unlink(path)
    processes = [p for g in reader.process_group_configs for p in g.process_configs]
    assert processes and all(p.command is not None for p in processes)
    # what was meant reaches the program: literal % signs and environment values intact
    # (`$$` in a buildout value is a `$`)
    if "%(" not in command:
        assert processes[0].command == unescape(command).strip()
    wanted = {k: unescape(v).strip() for k, v in env.items() if "%(" not in v}
    assert {k: processes[0].environment[k] for k in wanted} == wanted


# -- commands the kernel would never start ----------------------------------------------------
SUPERVISORD_CONF = """\
[unix_http_server]
file=%(here)s/supervisor.sock
[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock
[include]
files = %(here)s/conf.d/*.conf
"""
SHELL = '/bin/sh -c "exec sleep 600"'  # the words after it are the shell's $0, $1 ...


def own_supervisord(directory, programs: dict[str, str]) -> dict[str, tuple[str, str]]:
    """A real supervisord with its own configuration running ``programs`` ({name: the file
    of that program}); {name: (state, its stderr)} once every one has settled."""
    (directory / "conf.d").mkdir()
    (directory / "supervisord.conf").write_text(SUPERVISORD_CONF)
    for name, text in programs.items():
        (directory / "conf.d" / f"{name}.conf").write_text(
            # a forked supervisord may take a while to reach execve on a loaded machine: a
            # failed exec must not be mistaken for a start
            text + f"startsecs = 8\nstartretries = 0\nstderr_logfile = {directory}/{name}.err\n"
        )
    config = str(directory / "supervisord.conf")
    subprocess.run(["/usr/bin/supervisord", "-c", config], check=True, timeout=60)
    try:
        deadline, states = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["supervisorctl", "-c", config, "status"], capture_output=True, text=True
            ).stdout
            states = dict(line.split()[:2] for line in out.splitlines() if line.strip())
            if len(states) == len(programs) and all(
                s in ("RUNNING", "FATAL") for s in states.values()
            ):
                break
            time.sleep(0.3)
        return {
            name: (
                states.get(name),
                (directory / f"{name}.err").read_text()
                if (directory / f"{name}.err").exists()
                else "",
            )
            for name in programs
        }
    finally:
        subprocess.run(["supervisorctl", "-c", config, "shutdown"], capture_output=True, timeout=60)


@pytest.mark.daemon
def test_the_kernel_limits_are_what_supervisord_can_start(tmp_path):
    """What the recipe refuses, a real supervisord indeed cannot start (E2BIG), and what it
    accepts just below each limit runs."""
    fits = "a" * (supervisor_exec.MAX_ARG_STRLEN - 1)
    too_long = "a" * supervisor_exec.MAX_ARG_STRLEN
    many = " ".join(["b" * 100_000] * (supervisor_exec.exec_limit() // 100_000 + 1))
    huge_env = {
        "BIG": "c" * 100_000,
        **{f"E{i}": "c" * 100_000 for i in range(supervisor_exec.exec_limit() // 100_000)},
    }
    env_text = ",".join(f'{k}="{v}"' for k, v in huge_env.items())
    states = own_supervisord(
        tmp_path,
        {
            "fits": f"[program:fits]\ncommand = {SHELL} x {fits}\n",
            "toolong": f"[program:toolong]\ncommand = {SHELL} x {too_long}\n",
            "many": f"[program:many]\ncommand = {SHELL} x {many}\n",
            "env": f"[program:env]\ncommand = {SHELL} x\nenvironment = {env_text}\n",
            "bigvar": f'[program:bigvar]\ncommand = {SHELL} x\nenvironment = BIG="{too_long}"\n',
        },
    )
    assert states["fits"][0] == "RUNNING", states["fits"]
    for name in ("toolong", "many", "env", "bigvar"):
        state, stderr = states[name]
        assert state == "FATAL" and "couldn't exec /bin/sh: E2BIG" in stderr, (
            name,
            state,
            stderr[-300:],
        )
    root = make_scratch_root(str(tmp_path / "root"))
    declare(supervisor, root, {"command": f"{SHELL} x {fits}"})
    for options, fragment in (
        (
            {"command": f"{SHELL} x {too_long}"},
            "[part] command: word 5 ('aaaaaaaaaaaaaaaaaaaa'...) is 131072 bytes, the kernel "
            "passes at most 131071 (MAX_ARG_STRLEN): the program could never start",
        ),
        (
            {"command": f"{SHELL} x {many}"},
            f"[part] command: its {4 + many.count(' ') + 1} words are ",
        ),
        (
            {
                "command": f"{SHELL} x",
                "environment": "\n".join(f"{k}={v}" for k, v in huge_env.items()),
            },
            "[part] environment: the command and environment are ",
        ),
        (
            {"command": f"{SHELL} x", "environment": f"BIG={too_long}"},
            "[part] environment: BIG is 131076 bytes with its name",
        ),
    ):
        with pytest.raises(ConfigError) as raised:
            declare(supervisor, root, options)
        message = str(raised.value)
        assert message.startswith(fragment) and len(message) < 300, message


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"stopasgroup": "true", "killasgroup": "false"},
            "[part] killasgroup: false has no effect with stopasgroup = true",
        ),
        (
            {"redirect_stderr": "true", "stderr_logfile": "/tmp/x.log"},
            "[part] stderr_logfile: has no effect with redirect_stderr = true",
        ),
        (
            {"redirect_stderr": "true", "stderr_syslog": "false"},
            "[part] stderr_syslog: has no effect with redirect_stderr = true",
        ),
        (
            {"stdout_logfile": "NONE", "stdout_logfile_backups": "3"},
            "[part] stdout_logfile_backups: has no effect with stdout_logfile = NONE",
        ),
        (
            {"stderr_logfile_maxbytes": "0", "stderr_logfile_backups": "3"},
            "[part] stderr_logfile_backups: has no effect with stderr_logfile_maxbytes = 0",
        ),
    ],
)
def test_options_supervisor_would_ignore_are_refused(tmp_path, options, message):
    root = make_scratch_root(str(tmp_path / "root"))
    with pytest.raises(ConfigError) as raised:
        declare(supervisor, root, {"command": "/bin/true", **options})
    assert str(raised.value).startswith(message), raised.value
    # the same program without the ignored option is accepted
    declare(supervisor, root, {"command": "/bin/true"})

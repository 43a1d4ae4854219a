"""The nrpe recipe against a real NRPE daemon, inside the sandbox; bad input; a property test."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.daemons import CHECK_NRPE, ask
from support.declare import declare
from support.host import make_scratch_root
from support.markers import needs
from support.net import free_port, wait_port
from support.results import ok, one_error_line, snapshot

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.declare.schema import unescape
from system_recipes.daemons import nrpe as nrpe_daemon
from system_recipes.recipes import nrpe

INCLUDE = "/etc/nagios/nrpe.d"

PROFILE = """
[buildout]
extends = {base}
parts = app-nrpe

[app-nrpe]
recipe = system_recipes:nrpe
checks =
    check_app check_dummy 0 "app is fine"
    check_web check_tcp -H 127.0.0.1 -p %(web)d warning=2 critical=4
"""


def nrpe_pid(sandbox) -> int | None:
    try:
        return int(sandbox.read("/run/nagios/nrpe.pid").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


@pytest.fixture
@needs("sandbox", "daemon")
def live(host):
    """The sandboxed host with NRPE configured on a free port (the network is shared)."""
    port = free_port()
    host.sandbox.run(
        f"sed -i 's/^server_port=.*/server_port={port}/' /etc/nagios/nrpe.cfg && "
        "install -d -o nagios -g nagios /run/nagios",
        check=True,
    )
    host.port = port
    started: list[int] = []
    host.started = started
    yield host
    started.append(nrpe_pid(host.sandbox))
    for pid in started:
        kill(pid)


def start_nrpe(host) -> int:
    host.sandbox.run(["/usr/sbin/nrpe", "-c", "/etc/nagios/nrpe.cfg", "-d"], check=True)
    wait_port(host.port)
    pid = nrpe_pid(host.sandbox)
    assert pid is not None
    host.started.append(pid)
    return pid


def test_real_nrpe_answers_the_generated_checks_and_is_reloaded(live):
    host = live
    web = free_port()
    server = host.sandbox.popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", str(web)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(web)
        host.write(PROFILE % {"web": web})
        out = ok(host.buildout()).stdout
        # not running yet: said and skipped, not an error
        assert "nrpe (nagios-nrpe-server) skipped (not running" in out, out
        assert host.read(f"{INCLUDE}/app-nrpe.cfg") == (
            "# NRPE commands of [app-nrpe], written by system-recipes: edits here are "
            "overwritten.\n"
            "command[check_app]=/usr/lib/nagios/plugins/check_dummy 0 'app is fine'\n"
            f"command[check_web]=/usr/lib/nagios/plugins/check_tcp -H 127.0.0.1 -p {web} "
            "-w 2 -c 4\n"
        )
        pid = start_nrpe(host)
        assert ask(host.sandbox, host.port, "check_app") == (0, "OK: app is fine")
        code, text = ask(host.sandbox, host.port, "check_web")
        assert code == 0 and text.startswith("TCP OK"), text

        # change a check, re-run: the reload handler makes the running daemon answer anew
        host.write((PROFILE % {"web": web}).replace('0 "app is fine"', '2 "app is down"'))
        out = ok(host.buildout()).stdout
        assert f"sent SIGHUP to nagios-nrpe-server (pid {pid})" in out, out
        assert "reloads: nrpe (nagios-nrpe-server)" in out, out
        assert ask(host.sandbox, host.port, "check_app") == (2, "CRITICAL: app is down")

        # a no-op run changes nothing and reloads nothing
        out = ok(host.buildout()).stdout
        assert "system-recipes: nothing to do: " in out, out  # the fast path
        out = ok(host.buildout("system-recipes:fast-path=off")).stdout  # a full run
        assert "reloads: none" in out and "SIGHUP" not in out, out

        # dropping the part removes the file and reloads: the command is gone
        host.write("""
            [buildout]
            extends = {base}
            parts = other-nrpe

            [other-nrpe]
            recipe = system_recipes:nrpe
            checks = check_other check_dummy 1 other
            """)
        out = ok(host.buildout()).stdout
        assert not host.exists(f"{INCLUDE}/app-nrpe.cfg")
        assert f"sent SIGHUP to nagios-nrpe-server (pid {pid})" in out, out
        code, text = ask(host.sandbox, host.port, "check_app")
        assert code == 3 and "not defined" in text, text
        assert ask(host.sandbox, host.port, "check_other") == (1, "WARNING: other")
        assert nrpe_pid(host.sandbox) == pid
    finally:
        server.kill()
        server.wait()


def test_dropping_the_last_nrpe_part_reloads_nrpe(live):
    host = live
    host.write(PROFILE % {"web": 9})
    ok(host.buildout())
    pid = start_nrpe(host)
    host.write("""
        [buildout]
        extends = {base}
        parts =
        """)
    out = ok(host.buildout()).stdout
    assert not host.exists(f"{INCLUDE}/app-nrpe.cfg")
    assert f"sent SIGHUP to nagios-nrpe-server (pid {pid})" in out, out


def test_plugin_must_exist_and_be_executable(host):
    host.write("""
        [buildout]
        extends = {base}
        parts = app-nrpe

        [app-nrpe]
        recipe = system_recipes:nrpe
        checks = check_app check_nothing_like_this -H 127.0.0.1
        """)
    before = snapshot(host, "/etc")
    one_error_line(
        host.buildout(),
        "[app-nrpe] checks:",
        "/usr/lib/nagios/plugins/check_nothing_like_this does not exist",
    )
    # /run is a sandbox overlay (never write /usr from a test)
    host.sandbox.run("install -m 0644 /dev/null /run/check_plain", check=True)
    host.write("""
        [buildout]
        extends = {base}
        parts = app-nrpe

        [app-nrpe]
        recipe = system_recipes:nrpe
        checks = check_app /run/check_plain
        """)
    one_error_line(host.buildout(), "[app-nrpe] checks:", "is not executable")
    assert snapshot(host, "/etc") == before


def test_bad_input_is_one_line_and_changes_nothing(host):
    """Bad input stops the run with one line and changes nothing on the real paths, as
    root. Which line each bad input gives: the error cases of tests/recipes/nrpe/."""
    options, fragments = (
        "checks = check_app check_dummy 0\ncolour = blue",
        ("[app-nrpe] colour:", "unknown option"),
    )
    host.write(
        """
        [buildout]
        extends = {base}
        parts = app-nrpe

        [app-nrpe]
        recipe = system_recipes:nrpe
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )
    before = snapshot(host, "/etc")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc") == before


def test_a_check_name_another_file_defines_is_refused(host):
    host.sandbox.run(f"echo 'command[check_app]=/bin/true' > {INCLUDE}/local.cfg", check=True)
    host.write("""
        [buildout]
        extends = {base}
        parts = app-nrpe

        [app-nrpe]
        recipe = system_recipes:nrpe
        checks = check_app check_dummy 0
        """)
    one_error_line(
        host.buildout(), "[app-nrpe]", f"command check_app is also defined in {INCLUDE}/local.cfg"
    )
    assert not host.exists(f"{INCLUDE}/app-nrpe.cfg")


def test_parse_check_reads_what_nrpe_reads():
    commands, problems = nrpe_daemon.read_commands(
        "# c\n\ncommand[a]=/bin/x 1\ncommand[a]=/bin/y\nnot a directive\ncommand[b]=\n"
    )
    assert commands == {"a": "/bin/y"}
    assert problems == [
        "line 4: command a is defined twice",
        "line 5: no variable name",
        "line 6: no variable value",
    ]


# -- property test, in-process, in a scratch root ------------------------------------------
@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory):
    root = make_scratch_root(str(tmp_path_factory.mktemp("nrpe") / "root"))
    plugins = os.path.join(root, "usr/lib/nagios/plugins")
    os.makedirs(plugins)
    shutil.copy2("/usr/lib/nagios/plugins/check_dummy", plugins)
    with open(os.path.join(plugins, "check_plain"), "w"):
        pass
    os.chmod(os.path.join(plugins, "check_plain"), stat.S_IRUSR)
    return root


WORD = st.text(
    alphabet=st.sampled_from(list("aZ09_-.=]/[ $;`'\"\\\t!*%~") + ["\u00e9"]),
    min_size=0,
    max_size=8,
)


def quoted(word: str, raw: bool) -> str:
    return word if raw else shlex.quote(word)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True), WORD),
    plugin=st.sampled_from(
        ["check_dummy"] * 4
        + [
            "/usr/lib/nagios/plugins/check_dummy",
            "check_plain",
            "check_missing",
            "../check_dummy",
            "check dummy",
        ]
    ),
    arguments=st.lists(st.tuples(WORD, st.booleans()), max_size=4),
    warning=st.one_of(st.none(), WORD),
    raw=st.booleans(),
)
def test_property_random_checks_give_a_clean_error_or_what_the_shell_runs(
    plugin_root, name, plugin, arguments, warning, raw
):
    words = [quoted(name, raw), plugin] + [quoted(w, r) for w, r in arguments]
    if warning is not None:
        words.append(quoted("warning=" + warning, raw))
    line = " ".join(words)
    try:
        content = declare(nrpe, plugin_root, {"checks": line}).decode()
    except (ConfigError, RunError) as error:
        message = str(error)
        assert message.startswith("[part] ") and "\n" not in message, message
        event("refused")
        return
    event("accepted")
    # the documented meaning: `$$` is buildout's `$`, then split like a shell line, and
    # warning=W is -w W
    tokens = shlex.split(unescape(line))
    expected = []
    for token in tokens[2:]:
        expected += ["-w", token[8:]] if token.startswith("warning=") else [token]
    commands, problems = nrpe_daemon.read_commands(content)
    assert problems == [] and list(commands) == [tokens[0]]
    # NRPE expands its $ macros, then hands the command line to /bin/sh: the plugin gets
    # exactly those words
    shown = subprocess.run(
        ["sh", "-c", "printf '%s\\0' " + nrpe_daemon.nrpe_macros(commands[tokens[0]])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = tokens[1] if "/" in tokens[1] else f"/usr/lib/nagios/plugins/{tokens[1]}"
    assert shown.split("\0")[:-1] == [path, *expected]


# -- what reaches the plugin through a real NRPE --------------------------------------------
ECHO_PLUGIN = """#!/usr/bin/python3
import json, sys
print(json.dumps(sys.argv[1:]))
"""
# words NRPE would change if written as they are ($ is its macro character)
DOLLAR_WORDS = ["a$b", "$$", "q$", "$", "$ARG1", "ARG1$", "$ARG1 $", "$ARGx", "a$ARG1x$b", "$(id)"]
PLAIN_WORDS = [
    "$x$",  # NRPE happens to leave this one as it is
    "it's",
    "sp ace",
    "50%",
    "`id`",
    '"dq"',
    "\u00e9",
    "-w",
    "",
]


class LiveNrpe:
    """The machine's nrpe binary with a configuration of its own on a free loopback port."""

    def __init__(self, directory, dont_blame: int):
        self.directory, self.port = directory, free_port()
        directory.mkdir(mode=0o755)  # read as the nagios user
        self.include = directory / "nrpe.d"
        self.include.mkdir()
        self.config = directory / "nrpe.cfg"
        self.config.write_text(
            f"pid_file={directory}/nrpe.pid\nserver_port={self.port}\n"
            "server_address=127.0.0.1\nallowed_hosts=127.0.0.1\nnrpe_user=nagios\n"
            f"nrpe_group=nagios\ndont_blame_nrpe={dont_blame}\ncommand_timeout=10\n"
            f"include_dir={self.include}/\n"
        )
        self.pid = None

    def start(self, commands: str) -> None:
        (self.include / "checks.cfg").write_text(commands)
        subprocess.run(["/usr/sbin/nrpe", "-c", str(self.config), "-d"], check=True)
        wait_port(self.port)
        self.pid = int((self.directory / "nrpe.pid").read_text().split()[0])

    def words(self, command: str, broken: bool = False) -> list[str] | None:
        """The argv the plugin got for ``command``; None when the shell could not run the
        line NRPE made of it (``broken`` says that is expected)."""
        result = subprocess.run(
            [CHECK_NRPE, "-H", "127.0.0.1", "-p", str(self.port), "-c", command],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if broken and result.returncode == 3 and "Unable to read output" in result.stdout:
            return None
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def stop(self) -> None:
        kill(self.pid)


@pytest.fixture
def echo_root():
    """A scratch root holding the echo plugin at the same path as this machine (NRPE runs it
    from there, as the nagios user: a directory of /tmp it can reach), and NRPE's main
    configuration for the recipe to read."""
    top = tempfile.mkdtemp(prefix="system-recipes-nrpe-")
    os.chmod(top, 0o755)
    plugin = os.path.join(top, "echo-args")
    with open(plugin, "w") as stream:
        stream.write(ECHO_PLUGIN)
    os.chmod(plugin, 0o755)
    root = make_scratch_root(os.path.join(top, "root"))
    below = os.path.join(root, plugin.lstrip("/"))
    os.makedirs(os.path.dirname(below))
    shutil.copy2(plugin, below)
    os.makedirs(os.path.join(root, "etc/nagios"))
    try:
        yield root, plugin, pathlib.Path(top)
    finally:
        shutil.rmtree(top)


def server_config(root: str, text: str, name: str = "nrpe.cfg") -> None:
    path = os.path.join(root, "etc/nagios", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as stream:
        stream.write(text)


@pytest.mark.daemon
def test_a_real_nrpe_gives_the_plugin_exactly_the_words_written(echo_root):
    root, plugin, top = echo_root
    server_config(root, "dont_blame_nrpe=0\n")
    words = DOLLAR_WORDS + PLAIN_WORDS
    checks = "\n".join(f"check_{i} {plugin} {shlex.quote(w)}" for i, w in enumerate(words))
    # buildout's own escape: $$ in the profile is $
    content = declare(nrpe, root, {"checks": checks.replace("$", "$$")}).decode()
    live = LiveNrpe(top / "live", dont_blame=0)
    # the same words written as they are, without the recipe's escaping: NRPE changes them
    naive = "".join(f"command[naive_{i}]={shlex.join([plugin, w])}\n" for i, w in enumerate(words))
    live.start(content + naive)
    try:
        for i, word in enumerate(words):
            assert live.words(f"check_{i}") == [word], word
            # the model of NRPE's macro processing is what the real NRPE does ...
            try:
                expected = shlex.split(nrpe_daemon.nrpe_macros(shlex.join([plugin, word])))[1:]
            except ValueError:  # the macro ate a quote: the shell refuses the line
                expected = None
            got = live.words(f"naive_{i}", broken=expected is None)
            assert got == expected, word
            # ... and every word holding a $ would have been changed
            assert (got != [word]) == (word in DOLLAR_WORDS), (word, got)
    finally:
        live.stop()


@pytest.mark.parametrize(
    "files",
    [
        {"nrpe.cfg": "dont_blame_nrpe=0\n"},
        {"nrpe.cfg": "server_port=5666\n"},  # NRPE's default
        # the last value NRPE reads wins: an include after the main setting
        {
            "nrpe.cfg": "dont_blame_nrpe=1\ninclude=/etc/nagios/local.cfg\n",
            "local.cfg": "dont_blame_nrpe=0\n",
        },
    ],
)
def test_arg_macros_are_refused_when_nrpe_passes_no_arguments(echo_root, files):
    root, plugin, _ = echo_root
    for name, text in files.items():
        server_config(root, text, name)
    with pytest.raises(ConfigError) as raised:
        declare(nrpe, root, {"checks": f"check_x {plugin} -H $$ARG1$$"})
    assert str(raised.value).startswith(
        "[part] checks: check_x: '$ARG1$' would reach the plugin as an empty string: the "
        "server has dont_blame_nrpe=0"
    ), raised.value


@pytest.mark.daemon
def test_debians_nrpe_never_passes_arguments_even_with_dont_blame_nrpe_1(echo_root):
    """Debian builds nrpe without command arguments: dont_blame_nrpe=1 changes nothing."""
    root, plugin, top = echo_root
    server_config(root, "include_dir=/etc/nagios/nrpe.d/\n")
    server_config(root, "dont_blame_nrpe=1\n", "nrpe.d/args.cfg")
    os.makedirs(os.path.join(root, "usr/sbin"))
    shutil.copy2("/usr/sbin/nrpe", os.path.join(root, "usr/sbin/nrpe"))
    with pytest.raises(ConfigError) as raised:
        declare(nrpe, root, {"checks": f"check_x {plugin} $$ARG1$$"})
    assert (
        "'$ARG1$' would reach the plugin as an empty string: /usr/sbin/nrpe is built "
        "without command arguments" in str(raised.value)
    ), raised.value
    # what the real NRPE does with such a check and arguments: it refuses the query
    live = LiveNrpe(top / "live", dont_blame=1)
    live.start(f"command[check_x]={plugin} '$ARG1$'\n")
    try:
        assert live.words("check_x") == [""]
        result = subprocess.run(
            [CHECK_NRPE, "-H", "127.0.0.1", "-p", str(live.port), "-c", "check_x", "-a", "one"],
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0, result.stdout
    finally:
        live.stop()


@pytest.mark.daemon
def test_an_nrpe_built_with_arguments_gets_arg_macros_and_literal_dollars(echo_root):
    """A build with command arguments (Red Hat's; a stand-in program below the scratch root
    holds the message only such a build has): $ARGn$ is kept, every other $ is escaped."""
    root, plugin, _ = echo_root
    server_config(root, "dont_blame_nrpe=1\n")
    os.makedirs(os.path.join(root, "usr/sbin"))
    with open(os.path.join(root, "usr/sbin/nrpe"), "wb") as stream:
        stream.write(b"\0Error: " + nrpe_daemon.ARGUMENTS_BUILT_IN + b"!\0")
    content = declare(nrpe, root, {"checks": f"check_x {plugin} $$ARG1$$ 'a$$b' x$$ARG2$$y"})
    commands, _ = nrpe_daemon.read_commands(content.decode())
    command = commands["check_x"]
    assert command == f"{plugin} '$ARG1$' 'a$$b' 'x$ARG2$y'"
    ran = nrpe_daemon.nrpe_macros(command, ("one", "two"))
    assert shlex.split(ran) == [plugin, "one", "a$b", "xtwoy"]
    with pytest.raises(ConfigError) as raised:
        declare(nrpe, root, {"checks": f"check_x {plugin} $$ARG17$$"})
    assert "'$ARG17$' is always empty" in str(raised.value), raised.value

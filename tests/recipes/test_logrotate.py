"""The logrotate recipe: real logrotate rotating real logs in the sandbox; bad input; a property
test against ``logrotate -d``."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import textwrap

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.declare import declare, fake_run
from support.host import make_scratch_root
from support.results import ok, one_error_line, snapshot

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.hooks import validate
from system_recipes.daemons import logrotate as logrotate_daemon
from system_recipes.recipes import logrotate

STATE = "/var/lib/logrotate/test.state"

PROFILE = """
[buildout]
extends = {base}
parts = lrshop shop-logs copy-logs

[lrshop]
recipe = system_recipes:deployment

[shop-logs]
recipe = system_recipes:logrotate
paths = ${lrshop:log-directory}/app.log
rotate = 2
compress = true
missingok = true
create = 0600 ${lrshop:user} ${lrshop:group}
su = ${lrshop:user} ${lrshop:group}
postrotate =
    # logrotate gives the log's path as $$1
    echo "rotated $$1" >> ${lrshop:run-directory}/rotated

[copy-logs]
recipe = system_recipes:logrotate
paths = "/var/log/lr copy.log"
rotate = 1
copytruncate = true
compress = false
"""

SHOP_LOGS = """\
# logrotate configuration of [shop-logs], written by system-recipes: edits here are overwritten.
/var/log/lrshop/app.log {
    rotate 2
    missingok
    compress
    create 0600 lrshop lrshop
    su lrshop lrshop
    postrotate
        # logrotate gives the log's path as $1
        echo "rotated $1" >> /run/lrshop/rotated
    endscript
}
"""


def rotate(host, name: str) -> str:
    """A forced rotation by the real logrotate with the generated file: its output."""
    result = host.sandbox.run(["logrotate", "-v", "-f", "-s", STATE, f"/etc/logrotate.d/{name}"])
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "error" not in output.lower(), output
    return output


def ids(host, name: str) -> tuple[int, int]:
    fields = next(
        line.split(":")
        for line in host.read("/etc/passwd").splitlines()
        if line.startswith(name + ":")
    )
    return int(fields[2]), int(fields[3])


def counting_logrotate(directory, monkeypatch) -> str:
    """A ``logrotate`` first on PATH that logs its arguments, then runs the real one."""
    log = os.path.join(directory, "calls")
    wrapper = os.path.join(directory, "logrotate")
    with open(wrapper, "w") as stream:
        stream.write(f'#!/bin/sh\necho "$*" >> {log}\nexec /usr/sbin/logrotate "$@"\n')
    os.chmod(wrapper, 0o755)
    monkeypatch.setenv("PATH", directory + os.pathsep + os.environ["PATH"])
    return log


def calls(log: str) -> list[str]:
    """The validator's logrotate runs (the test's own ones use other files)."""
    try:
        with open(log) as stream:
            return [c for c in stream.read().splitlines() if "system-recipes-logrotate-" in c]
    except FileNotFoundError:
        return []


def test_logrotate_rotates_real_logs_as_configured(host, tmp_path, monkeypatch):
    log_of_calls = counting_logrotate(str(tmp_path), monkeypatch)
    host.write(PROFILE)
    ok(host.buildout())
    # one logrotate -d for both files
    assert len(calls(log_of_calls)) == 1 and calls(log_of_calls)[0].startswith("-d -s ")
    assert calls(log_of_calls)[0].endswith(("-shop-logs", "-copy-logs"))
    assert calls(log_of_calls)[0].count("logrotate-") == 3  # the state file and two copies
    ok(host.buildout())
    assert len(calls(log_of_calls)) == 1  # a no-op run validates nothing
    # the lrshop account was created by this same run: logrotate -d alone, run before the
    # accounts exist, would have said "unknown user"; system-recipes checked it instead
    assert host.read("/etc/logrotate.d/shop-logs") == SHOP_LOGS
    st = host.sandbox.stat("/etc/logrotate.d/shop-logs")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert host.read("/etc/logrotate.d/copy-logs").splitlines()[1] == '"/var/log/lr copy.log" {'

    # the stock logrotate.conf reads both files from its include directory without an error
    debug = host.sandbox.run(["logrotate", "-d", "-s", STATE, "/etc/logrotate.conf"])
    ours = ["/etc/logrotate.d/shop-logs", "/etc/logrotate.d/copy-logs"]
    read, problems = logrotate_daemon.config_errors(debug.stdout + debug.stderr, ours)
    assert {"shop-logs", "copy-logs"} <= read, debug.stderr  # files of a directory: base names
    assert not any(problems.get(name) for name in ours + ["shop-logs", "copy-logs"]), problems

    uid, gid = ids(host, "lrshop")
    log = "/var/log/lrshop/app.log"
    for round_ in range(1, 4):
        host.sandbox.run(f"echo round {round_} > {log} && chown lrshop:lrshop {log}", check=True)
        rotate(host, "shop-logs")
    # rotate 2 with compress: two compressed copies, the newest first, nothing older
    names = sorted(os.listdir(host.path("/var/log/lrshop")))
    assert names == ["app.log", "app.log.1.gz", "app.log.2.gz"], names
    with gzip.open(host.path(f"{log}.1.gz"), "rt") as stream:
        assert stream.read() == "round 3\n"
    with gzip.open(host.path(f"{log}.2.gz"), "rt") as stream:
        assert stream.read() == "round 2\n"
    # create: a new empty log with the mode and owners asked for
    st = host.sandbox.stat(log)
    assert (st.st_size, st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0, 0o600, uid, gid)
    # postrotate ran once per rotation, with the log's path ($$ in the profile is $)
    assert host.read("/run/lrshop/rotated") == f"rotated {log}\n" * 3

    # copytruncate: the log keeps its inode (a program holding it open keeps writing there)
    copy = "/var/log/lr copy.log"
    host.sandbox.run(["sh", "-c", 'echo kept > "$0"', copy], check=True)
    inode = host.sandbox.stat(copy).st_ino
    rotate(host, "copy-logs")
    assert host.sandbox.stat(copy).st_ino == inode and host.sandbox.stat(copy).st_size == 0
    assert host.read(copy + ".1") == "kept\n"
    assert not host.exists(copy + ".1.gz")

    # dropping a part removes its file (and validates nothing: nothing else changed)
    host.write(PROFILE.replace("parts = lrshop shop-logs copy-logs", "parts = lrshop shop-logs"))
    out = ok(host.buildout()).stdout
    assert not host.exists("/etc/logrotate.d/copy-logs"), out
    assert host.read("/etc/logrotate.d/shop-logs") == SHOP_LOGS
    assert len(calls(log_of_calls)) == 1


def test_the_documented_example_runs(host):
    example = textwrap.dedent(logrotate.__doc__.partition("Example::")[2])
    host.write("[buildout]\nextends = {base}\nparts = shop shop-logs\n" + example)
    ok(host.buildout())
    text = host.read("/etc/logrotate.d/shop-logs")
    assert text.splitlines()[1] == '/var/log/shop/*.log "/var/log/shop/access log.txt" {'
    assert "    su shop shop\n" in text and "    create 0640 shop adm\n" in text
    debug = host.sandbox.run(["logrotate", "-d", "-s", STATE, "/etc/logrotate.d/shop-logs"])
    read, problems = logrotate_daemon.config_errors(
        debug.stdout + debug.stderr, ["/etc/logrotate.d/shop-logs"]
    )
    assert read == {"/etc/logrotate.d/shop-logs"} and not problems, debug.stderr


def test_an_unknown_directive_is_refused_though_logrotate_exits_0(host):
    host.write("""
        [buildout]
        extends = {base}
        parts = app-logs

        [app-logs]
        recipe = system_recipes:logrotate
        paths = /var/log/app/*.log
        extra =
            shred
            rotat 5
        """)
    before = snapshot(host, "/etc")
    line = one_error_line(
        host.buildout(),
        "[app-logs] extra: logrotate -d: unknown option 'rotat'",
        "(line 4 of /etc/logrotate.d/app-logs: 'rotat 5')",
    )
    assert "found error" not in line
    assert snapshot(host, "/etc") == before
    # what the recipe judged: logrotate itself is content with such a file
    host.sandbox.run(
        "printf '/var/log/x {\\n  missingok\\n  rotat 5\\n}\\n' > /run/lr.conf", check=True
    )
    direct = host.sandbox.run(["logrotate", "-d", "-s", STATE, "/run/lr.conf"])
    assert direct.returncode == 0 and "unknown option 'rotat'" in direct.stderr


def test_bad_input_is_one_line_and_changes_nothing(host):
    """Bad input stops the run with one line and changes nothing on the real paths, as
    root. Which line each bad input gives: the error cases of tests/recipes/logrotate/."""
    options, fragments = (
        "frequency = fortnightly",
        ("[app-logs] frequency:", "'fortnightly' is not a choice", "expected one of hourly, daily"),
    )
    host.write(
        """
        [buildout]
        extends = {base}
        parts = app-logs

        [app-logs]
        recipe = system_recipes:logrotate
        paths = /var/log/app/*.log
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )
    before = snapshot(host, "/etc")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc") == before


@pytest.mark.parametrize(
    "paths, fragment",
    [
        ("", "missing required option"),
        ("var/log/app.log", "'var/log/app.log' is not absolute"),
        ("/var/log/../../etc/shadow", "contains '..'"),
        ('/var/log/a"b.log', "logrotate cannot read in a path"),
        ("/var/log/{a,b}.log", "logrotate cannot read in a path"),
        ("\n    /var/log/a.log\n    /var/log/a.log", "/var/log/a.log is given twice"),
    ],
)
def test_bad_paths(host, paths, fragment):
    host.write(
        """
        [buildout]
        extends = {base}
        parts = app-logs

        [app-logs]
        recipe = system_recipes:logrotate
        """
        + ("paths = " + paths.replace("\n", "\n        ") if paths else "")
        + "\n"
    )
    one_error_line(host.buildout(), "[app-logs] paths:", fragment)
    assert not host.exists("/etc/logrotate.d/app-logs")


@pytest.mark.sandbox
def test_accounts_are_checked_below_the_root_not_on_this_machine(scratch):
    """logrotate -d would look accounts up on the machine running the build; a scratch root
    has its own."""
    with open(os.path.join(scratch.root, "etc/passwd"), "a") as stream:
        stream.write("lrscratch:x:4711:4711::/nonexistent:/usr/sbin/nologin\n")
    with open(os.path.join(scratch.root, "etc/group"), "a") as stream:
        stream.write("lrscratch:x:4711:\n")
    profile = """
        [buildout]
        extends = {base}
        parts = app-logs

        [system-recipes]
        root = {root}

        [app-logs]
        recipe = system_recipes:logrotate
        paths = /var/log/app/*.log
        su = %s
        create = 0640 %s
        """
    scratch.write(profile % ("lrscratch lrscratch", "lrscratch adm"))
    ok(scratch.buildout())
    written = scratch.path("/etc/logrotate.d/app-logs")
    text = scratch.read("/etc/logrotate.d/app-logs")
    assert "    su lrscratch lrscratch\n" in text and "    create 0640 lrscratch adm\n" in text
    # the same file straight to logrotate -d on this machine: the account is unknown here
    direct = subprocess.run(
        ["logrotate", "-d", "-s", os.devnull, written], capture_output=True, text=True
    )
    assert "unknown user 'lrscratch'" in direct.stderr, direct.stderr

    # an account of this machine that the scratch root lacks is refused
    lines = open(os.path.join(scratch.root, "etc/passwd")).read().splitlines()
    with open(os.path.join(scratch.root, "etc/passwd"), "w") as stream:
        stream.write("".join(line + "\n" for line in lines if not line.startswith("games:")))
    scratch.write(profile % ("games root", "root root"))
    one_error_line(scratch.buildout(), "[app-logs] su:", "no user 'games' on this host")
    assert scratch.read("/etc/logrotate.d/app-logs") == text


def test_taboo_names_are_exactly_what_logrotate_skips(tmp_path):
    """Ask the real logrotate which names of an include directory it ignores."""
    directory = tmp_path / "logrotate.d"
    directory.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(directory, 0o755)
    names = ["app" + ext.replace("*", "x") for ext in logrotate_daemon.TABOO_EXTENSIONS]
    names += ["app", "app.conf", "app.log", "app-bak", "app.rpm", "app.swap"]
    for name in names:
        (directory / name).write_text(f"/var/log/{name.replace('~', '')}.nothing {{\n}}\n")
    result = subprocess.run(
        ["logrotate", "-d", "-s", os.devnull, str(directory)], capture_output=True, text=True
    )
    skipped = set(re.findall(r"Ignoring (\S+), because of", result.stderr))
    assert skipped, result.stderr
    for name in names:
        assert (logrotate_daemon.ignored_by_logrotate(name) is not None) == (name in skipped), name


def test_one_logrotate_process_for_all_changed_files_and_errors_go_to_their_part(tmp_path):
    root = make_scratch_root(str(tmp_path / "root"))
    buildout, active = fake_run(root, "a b c")
    # olddir need not exist yet (logrotate -d alone would say "error verifying olddir path")
    logrotate.Recipe(
        buildout, "a", {"paths": "/var/log/a.log", "rotate": "3", "olddir": "/nonexistent/old"}
    )
    logrotate.Recipe(buildout, "b", {"paths": "/var/log/b.log", "extra": "nosuchthing"})
    logrotate.Recipe(
        buildout, "c", {"paths": "/var/log/c.log\n/var/log/c2.log", "extra": "weekly 9"}
    )
    before = validate.PROCESS_COUNT["n"]
    with pytest.raises(RunError) as raised:
        active.validate_declared()
    assert validate.PROCESS_COUNT["n"] == before + 1
    lines = str(raised.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("[b] extra: logrotate -d: unknown option 'nosuchthing'"), lines
    assert lines[0].endswith("(line 3 of /etc/logrotate.d/b: 'nosuchthing')"), lines
    assert lines[1] == (
        "[c] extra: logrotate -d: bad weekly directive ' 9' (line 3 of "
        "/etc/logrotate.d/c: 'weekly 9')"
    ), lines


# -- property test, in-process, in a scratch root ------------------------------------------
@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("logrotate")
    os.chmod(base, 0o755)
    logs = base / "logs"
    (logs / "archive").mkdir(parents=True)
    os.chmod(logs, 0o755)
    return make_scratch_root(str(base / "root")), str(logs)


JUNK = st.text(alphabet=st.sampled_from(list("aZ09 -_.%/{}\"'#;\\\nmkMGYdH")), max_size=12)
BOOL = st.one_of(st.none(), st.sampled_from(["true", "false", "yes", "off", "maybe"]))


def maybe(valid, junk=JUNK):
    # junk now and then: a draw with many junk options is merely refused
    return st.one_of(st.none(), valid, valid, valid, junk)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            "frequency": maybe(st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly"])),
            "rotate": maybe(st.integers(-3, 200).map(str)),
            "size": maybe(st.from_regex(r"[0-9]{1,4}[kMG]?", fullmatch=True)),
            "maxsize": maybe(st.from_regex(r"[0-9]{1,3}[kKMGg]?", fullmatch=True)),
            "maxage": maybe(st.integers(-1, 400).map(str)),
            **{
                name: BOOL
                for name in (
                    "compress",
                    "delaycompress",
                    "missingok",
                    "notifempty",
                    "copytruncate",
                    "dateext",
                    "sharedscripts",
                )
            },
            "dateformat": maybe(st.from_regex(r"-?(%[YmdHMSVsQ]|[a-z.-]){1,6}", fullmatch=True)),
            "create": maybe(
                st.sampled_from(
                    [
                        "true",
                        "false",
                        "0640",
                        "0640 root",
                        "0640 root adm",
                        "0644 nobody nogroup",
                        "0640 nosuch root",
                        "640 adm",
                    ]
                )
            ),
            "su": maybe(st.sampled_from(["root root", "root adm", "nobody nogroup", "root"])),
            # directories that exist here: the direct logrotate -d below checks that (the recipe's own
            # validation does not, see test_one_logrotate_process...)
            "olddir": maybe(st.sampled_from(["archive", "ARCHIVE", "old dir"])),
            "postrotate": maybe(
                st.lists(
                    st.sampled_from(
                        [
                            "touch /tmp/x",
                            "",
                            "  endscript",
                            "kill -HUP $$(cat /run/x.pid)",
                            "echo }",
                        ]
                    ),
                    max_size=3,
                ).map("\n".join)
            ),
            "extra": maybe(
                st.lists(
                    st.sampled_from(
                        [
                            "shred",
                            "nomail",
                            "weekly 2",
                            "start 1",
                            "compresscmd /bin/bzip2",
                            "bogus 1",
                            "createolddir 0750 root adm",
                            "createolddir 0750 nosuch",
                            "tabooext + .x",
                            "maxage x",
                            "copy",
                            "{",
                            "su root root",
                        ]
                    ),
                    max_size=3,
                ).map("\n".join)
            ),
        },
    )
)
def test_property_random_options_give_a_clean_error_or_a_file_logrotate_accepts(scratch_root, data):
    root, logs = scratch_root
    options = {k: v for k, v in data.items() if v is not None}
    options["paths"] = f"{logs}/*.log\n{logs}/other.txt"
    if options.get("olddir") == "ARCHIVE":
        options["olddir"] = os.path.join(logs, "archive")
    try:
        content = declare(logrotate, root, options)
    except (ConfigError, RunError) as error:
        message = str(error)
        assert message.startswith("[part] ") and "\n" not in message, message
        assert "Traceback" not in message
        event("refused")
        return
    event("accepted")
    text = content.decode()
    assert text.endswith("}\n")
    # the file as written, straight to logrotate -d on this machine (the scratch root's
    # accounts are this machine's): no error while reading it
    config = os.path.join(os.path.dirname(logs), "config")
    with open(config, "wb") as stream:
        stream.write(content)
    os.chmod(config, 0o644)
    result = subprocess.run(
        ["logrotate", "-d", "-s", os.devnull, config], capture_output=True, text=True
    )
    read, problems = logrotate_daemon.config_errors(result.stdout + result.stderr, [config])
    # by design an olddir need not exist yet (it must when logrotate runs)
    problems = [p for p in problems.get(config, []) if "error verifying olddir path" not in p]
    assert config in read and not problems, (text, result.stderr)
    # and what was asked for is what was written
    for name in ("rotate", "size", "maxsize", "maxage", "dateformat", "olddir"):
        if name in options:
            value = options[name].strip()
            value = str(int(value)) if name in ("rotate", "maxage") else value
            assert f"\n    {name} {value}\n" in text, (name, text)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"frequency": "daily", "size": "10M"}, "[part] frequency: has no effect with size"),
        ({"dateformat": "-%Y%m%d"}, "[part] dateformat: has no effect without dateext"),
        ({"dateformat": "-%Y%m%d", "dateext": "false"}, "[part] dateformat: has no effect"),
        ({"delaycompress": "true"}, "[part] delaycompress: has no effect without compress"),
        ({"delaycompress": "true", "compress": "false"}, "[part] delaycompress: has no effect"),
        (
            {"copytruncate": "true", "create": "0640 root root"},
            "[part] create: has no effect with copytruncate = true",
        ),
    ],
)
def test_options_logrotate_would_ignore_are_refused(tmp_path, options, message):
    root = make_scratch_root(str(tmp_path / "root"))
    with pytest.raises(ConfigError) as raised:
        declare(logrotate, root, {"paths": "/var/log/app.log", **options})
    assert str(raised.value).startswith(message), raised.value


def test_the_same_options_together_with_what_they_need_are_accepted(tmp_path):
    root = make_scratch_root(str(tmp_path / "root"))
    content = declare(
        logrotate,
        root,
        {
            "paths": "/var/log/app.log",
            "size": "10M",
            "dateext": "true",
            "dateformat": "-%Y%m%d",
            "compress": "true",
            "delaycompress": "true",
            "copytruncate": "true",
            "create": "false",
        },
    ).decode()
    assert "dateformat -%Y%m%d" in content and "delaycompress" in content

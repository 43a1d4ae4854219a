"""The cron recipe: crontab -n judges the files, a real cron daemon runs them; bad input;
a property test."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.declare import declare_parts
from support.host import make_scratch_root
from support.markers import needs
from support.results import ok, one_error_line, snapshot
from support.sandbox import Sandbox

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.hooks import validate
from system_recipes.daemons import cron as cron_daemon
from system_recipes.recipes import cron

CRON_D = "/etc/cron.d"

PROFILE = """
[buildout]
extends = {base}
parts = app-cron

[app-cron]
recipe = system_recipes:cron
comment = housekeeping for the app
environment =
    MAILTO =
    PATH = /usr/local/bin:/usr/bin:/bin
entries =
    */5 * * * * /usr/bin/find /var/tmp -name 'app-*' -mmin +60 -delete
    @daily echo "$$(date +%F) 50% done" >> /var/log/app-cron.log
    0 0 */2 * SUN-SAT /bin/true
    0 0 * * * curl -s http://127.0.0.1/#top
"""


def as_user_crontab(text: str) -> str:
    """A cron.d file as a user crontab (the user column dropped), what ``crontab -n`` reads."""
    lines = []
    for line in text.splitlines():
        words = line.split(None, 6)
        if not line.strip() or line.startswith("#") or re.match(r"[A-Za-z_]\w*\s*=", line):
            lines.append(line)
        elif line.startswith("@"):
            lines.append(" ".join([words[0], line.split(None, 2)[2]]))
        else:
            lines.append(" ".join(words[:5] + [line.split(None, 6)[6]]))
    return "\n".join(lines) + "\n"


def crontab_n(sandbox: Sandbox, text: str) -> subprocess.CompletedProcess:
    """cron's own verdict, inside the sandbox (crontab -n writes a temp file in its spool)."""
    return sandbox.run(
        ["sh", "-c", "cat > /run/check.tab && crontab -n /run/check.tab"], input=text
    )


def test_generated_file_is_accepted_by_crontab_n(host):
    host.write(PROFILE)
    out = ok(host.buildout()).stdout
    assert "reloads: none" in out, out
    text = host.read(f"{CRON_D}/app-cron")
    assert text == (
        "# cron entries of [app-cron], written by system-recipes: edits here are overwritten.\n"
        "# housekeeping for the app\n"
        'MAILTO=""\n'
        "PATH=/usr/local/bin:/usr/bin:/bin\n"
        "*/5 * * * * root /usr/bin/find /var/tmp -name 'app-*' -mmin +60 -delete\n"
        '@daily root echo "$(date +\\%F) 50\\% done" >> /var/log/app-cron.log\n'
        # as written: python-crontab would re-render this as '0 0 */2 * *' (every other day)
        "0 0 */2 * SUN-SAT root /bin/true\n"
        "0 0 * * * root curl -s http://127.0.0.1/#top\n"
    )
    st_ = os.stat(host.path(f"{CRON_D}/app-cron"))
    assert (st_.st_mode & 0o7777, st_.st_uid, st_.st_gid) == (0o644, 0, 0)
    verdict = crontab_n(host.sandbox, as_user_crontab(text))
    assert verdict.returncode == 0, verdict.stderr
    assert "successfully checked" in verdict.stdout + verdict.stderr
    # the checker itself is not a rubber stamp
    refused = crontab_n(host.sandbox, as_user_crontab(text).replace("*/5", "61"))
    assert refused.returncode != 0 and "bad minute" in refused.stderr
    # a no-op re-run leaves the file alone
    before = os.stat(host.path(f"{CRON_D}/app-cron"))
    out = ok(host.buildout()).stdout
    after = os.stat(host.path(f"{CRON_D}/app-cron"))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "system-recipes: nothing to do: 1 part(s)" in out, out  # the fast path
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout  # and a full run
    after = os.stat(host.path(f"{CRON_D}/app-cron"))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "1 unchanged" in out, out


def single(options: str, section: str = "app-cron") -> str:
    return (
        f"""
        [buildout]
        extends = {{base}}
        parts = {section}

        [{section}]
        recipe = system_recipes:cron
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )


def test_bad_input_is_one_line_and_changes_nothing(host):
    """Bad input stops the run with one line and changes nothing on the real paths, as
    root. Which line each bad input gives: the error cases of tests/recipes/cron/."""
    options, fragments = (
        "entries = 61 * * * * /bin/true",
        ("[app-cron] entries:", "'61', not in 0-59"),
    )
    host.write(single(options))
    before = snapshot(host, "/etc")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc") == before
    assert not host.exists(f"{CRON_D}/app-cron")


def test_a_section_name_cron_would_ignore_needs_a_name(host):
    host.write(single("entries = @daily /bin/true", section="app.cron"))
    one_error_line(host.buildout(), "[app.cron] name:", "'app.cron' would be ignored by cron")
    host.write(single("name = app_cron\nentries = @daily /bin/true", section="app.cron"))
    ok(host.buildout())
    assert host.read(f"{CRON_D}/app_cron").endswith("@daily root /bin/true\n")


def test_the_crontab_n_verdict_names_the_right_file_and_entry(host):
    host.write("""
        [buildout]
        extends = {base}
        parts = first second

        [first]
        recipe = system_recipes:cron
        environment = MAILTO = root
        entries =
            @hourly /bin/true
            0 1 * * * /bin/true

        [second]
        recipe = system_recipes:cron
        entries =
            @daily /bin/true
            30 2 * * mon-fri /bin/true
            @Reboot /bin/false
        """)
    error = one_error_line(host.buildout())
    assert error == (
        "Error: [second] /etc/cron.d/second: entries: '@Reboot root /bin/false': "
        "crontab -n: bad time specifier"
    ), error
    assert not host.exists(f"{CRON_D}/first") and not host.exists(f"{CRON_D}/second")


def test_user_created_by_a_deployment_part_in_the_same_run(host):
    host.write("""
        [buildout]
        extends = {base}
        parts = app app-cron

        [app]
        recipe = system_recipes:deployment
        user = cronapp

        [app-cron]
        recipe = system_recipes:cron
        user = ${app:user}
        schedule = 15 3 * * *
        command = /bin/true
        """)
    ok(host.buildout())
    assert "cronapp:" in host.read("/etc/passwd")
    assert host.read(f"{CRON_D}/app-cron").endswith("\n15 3 * * * cronapp /bin/true\n")


def test_dropping_the_part_removes_the_file(host):
    host.write(PROFILE)
    ok(host.buildout())
    assert host.exists(f"{CRON_D}/app-cron")
    host.write("""
        [buildout]
        extends = {base}
        parts =
        """)
    out = ok(host.buildout()).stdout
    assert not host.exists(f"{CRON_D}/app-cron")
    assert re.search(r"^\s+\[app-cron\]\s+removed", out, re.M), out
    assert host.exists(f"{CRON_D}/e2scrub_all")  # the package's own file is untouched


# -- a real cron daemon -----------------------------------------------------------------------
@pytest.mark.daemon
def test_a_real_cron_daemon_runs_the_entry_within_a_minute(host):
    """cron re-reads /etc/cron.d by itself (its modification time): written after the daemon
    started, the entry runs at the next minute, with the environment, % and \\ intact."""
    daemon = host.sandbox.popen(
        ["cron", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(1)
        assert daemon.poll() is None, "cron -f exited"
        host.write("""
            [buildout]
            extends = {base}
            parts = proof

            [proof]
            recipe = system_recipes:cron
            environment = GREETING = hello there
            schedule = * * * * *
            command = printf '%s|%s|%s\\n' "$$GREETING" '50%' 'a\\b' > /run/cron-proof.tmp && mv /run/cron-proof.tmp /run/cron-proof
            """)
        # why a backslash before % is refused: written by hand, cron ends the command at
        # that %, and feeds the rest to its standard input
        host.sandbox.run(
            "printf '%s\\n' '* * * * * root tee /run/raw-proof >/dev/null; : "
            "\\\\%stdin text' > /etc/cron.d/raw",
            check=True,
        )
        ok(host.buildout())
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline and not (
            host.exists("/run/cron-proof") and host.exists("/run/raw-proof")
        ):
            time.sleep(0.5)
        assert host.exists("/run/cron-proof"), "cron did not run the entry within 75 s"
        assert host.read("/run/cron-proof") == "hello there|50%|a\\b\n"
        assert host.read("/run/raw-proof").startswith("stdin text")
    finally:
        daemon.kill()  # nsenter execs cron: this is its PID; the sandbox kills any job left
        daemon.wait()


# -- in-process: one crontab -n per run, and the property test ----------------------------------
@pytest.fixture(scope="module")
@needs("sandbox")
def spool():
    """crontab -n writes (and removes) a temp file in /var/spool/cron: run it in a sandbox."""
    box = Sandbox()
    original = validate.run_tool

    def in_sandbox(command, **kwargs):
        return original(box.command(command), **kwargs)

    validate.run_tool = in_sandbox
    try:
        yield box
    finally:
        validate.run_tool = original
        box.close()


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory):
    return make_scratch_root(str(tmp_path_factory.mktemp("cron") / "root"))


def test_one_crontab_process_for_every_changed_file(spool, scratch_root):
    before = validate.PROCESS_COUNT["n"]
    active = declare_parts(
        cron,
        scratch_root,
        {
            "a": {"entries": "@daily /bin/true\n*/5 * * * * /bin/true"},
            "b": {"schedule": "0 4 * * *", "command": "/bin/true", "environment": "MAILTO=root"},
            "c": {"entries": "@reboot /bin/true"},
        },
    )
    assert validate.PROCESS_COUNT["n"] - before == 1
    assert sorted(f.path for spec in active.declared.values() for f in spec.files) == [
        "/etc/cron.d/a",
        "/etc/cron.d/b",
        "/etc/cron.d/c",
    ]


JUNK = st.one_of(
    st.sampled_from(
        ["60", "24", "32", "13", "8", "5-1", "*/0", "?", "L", "H", "1,", "#", "%", "x"]
    ),
    st.from_regex(r"[0-9*/,-]{1,5}", fullmatch=True),
)
FIELDS = [  # values each position accepts, mixed with junk: most schedules are valid
    ["*", "*/5", "0", "59", "0-30/10", "1,2"],
    ["*", "0", "23", "9-17", "*/2"],
    ["*", "1", "31", "1-15", "*/2"],
    ["*", "1", "12", "jan", "JAN-MAR", "*/3"],
    ["*", "0", "7", "mon-fri", "SUN", "1,3,5"],
]
FIVE = st.tuples(*[st.one_of(*[st.sampled_from(good)] * 4, JUNK) for good in FIELDS]).map(" ".join)
SPECIAL = st.sampled_from(
    [
        "@reboot",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@midnight",
        "@DAILY",
        "@fortnightly",
        "@",
    ]
)
COMMAND = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab /|%\\\"'#$;&*-=")), min_size=1, max_size=20),
    st.text(alphabet=st.sampled_from(list("ab %\\\t") + ["\x0c", "\u00e9"]), max_size=8),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    schedule=st.one_of(
        FIVE, FIVE, FIVE, SPECIAL, st.lists(JUNK, min_size=4, max_size=6).map(" ".join)
    ),
    command=COMMAND,
    single=st.booleans(),
    mailto=st.one_of(st.none(), COMMAND),
)
def test_property_random_entries_give_a_clean_error_or_a_file_cron_accepts(
    spool, scratch_root, schedule, command, single, mailto
):
    options = (
        {"schedule": schedule, "command": command}
        if single
        else {"entries": f"{schedule} {command}"}
    )
    if mailto is not None:
        options["environment"] = f"MAILTO={mailto}"
    try:
        active = declare_parts(cron, scratch_root, {"part": options})
    except (ConfigError, RunError) as error:
        message = str(error)
        assert message.startswith("[part] ") and "\n" not in message, message
        event("refused: " + re.match(r"\[part\] (?:/\S+: )?(\w+)", message).group(1))
        return
    event("accepted")
    text = active.declared["part"].files[0].content.decode()
    assert text.endswith("\n")
    verdict = crontab_n(spool, as_user_crontab(text))
    assert verdict.returncode == 0, (text, verdict.stderr)
    assert "successfully checked" in verdict.stdout + verdict.stderr, (text, verdict.stderr)
    # exactly one entry, run as root, whose command is what was asked (% escaped for cron)
    entries = [
        line
        for line in text.splitlines()
        if line and not line.startswith("#") and not line.startswith("MAILTO=")
    ]
    assert len(entries) == 1 and " root " in entries[0]
    assert entries[0].endswith(cron_daemon.escape_percent(command.strip()))


def test_the_documented_example_runs(host):
    example = cron.__doc__.split("Example::", 1)[1]
    host.write("[buildout]\nextends = {base}\nparts = app-cron\n" + textwrap.dedent(example))
    ok(host.buildout())
    text = host.read(f"{CRON_D}/app-cron")
    assert (
        "@daily root /opt/shop/bin/shop-cleanup --before \"$(date +\\%F -d '-30 days')\"\n" in text
    ), text
    verdict = crontab_n(host.sandbox, as_user_crontab(text))
    assert verdict.returncode == 0, verdict.stderr


# -- a command longer than cron reads -----------------------------------------------------
def test_cron_max_command_is_what_crontab_n_accepts(spool):
    """MAX_COMMAND is cron's own limit: the command as written (``%`` escaped), in bytes."""
    for command, accepted in (
        ("x" * cron_daemon.MAX_COMMAND, True),
        ("x" * (998 + 1), False),
        ("é" * (998 // 2), True),
        ("x" * (998 - 1) + "%", False),
    ):
        verdict = crontab_n(spool, f"* * * * * {cron_daemon.escape_percent(command)}\n")
        output = verdict.stdout + verdict.stderr
        assert ("successfully checked" in output) == accepted, (len(command), output)
        if not accepted:
            assert "command too long" in output, output


@pytest.mark.parametrize("size", [998 + 1, 1 << 20])
def test_a_command_cron_cannot_read_is_blamed_on_command_and_not_echoed_whole(
    spool, scratch_root, size
):
    command = "/bin/echo " + "a" * (size - len("/bin/echo "))
    with pytest.raises(ConfigError) as raised:
        declare_parts(cron, scratch_root, {"part": {"schedule": "@daily", "command": command}})
    message = str(raised.value)
    assert message.startswith("[part] command: '/bin/echo aaa"), message
    assert f"is {size} bytes, cron reads at most 998" in message, message
    assert f"({size} characters)" in message and "at most 998 bytes" in message, message
    assert "\n" not in message and len(message) < 300, message
    with pytest.raises(ConfigError) as raised:
        declare_parts(cron, scratch_root, {"part": {"entries": f"@daily {command}"}})
    message = str(raised.value)
    assert message.startswith("[part] entries: '/bin/echo aaa") and len(message) < 300, message


def test_a_command_of_max_command_bytes_is_written_and_accepted(spool, scratch_root):
    command = "/bin/echo %" + "b" * (998 - len("/bin/echo %") - 1)
    assert len(cron_daemon.escape_percent(command)) == 998
    active = declare_parts(cron, scratch_root, {"part": {"schedule": "@daily", "command": command}})
    text = active.declared["part"].files[0].content.decode()
    verdict = crontab_n(spool, as_user_crontab(text))
    assert "successfully checked" in verdict.stdout + verdict.stderr, verdict.stderr


def test_crontab_n_blames_command_for_a_single_entry(spool):
    """Should the recipe's own limit ever be passed, cron's verdict still names command."""
    line = cron_daemon.CronLine(
        "schedule", "@daily root " + "x" * 2000, schedule="@daily", user="root", command="x" * 2000
    )
    errors = cron_daemon.CronValidator._crontab_n([(0, line)])
    assert errors[0].startswith("command: '@daily root xxx") and "command too long" in errors[0]
    assert len(errors[0]) < 300, errors[0]

"""The nagios recipe: objects checked by the real nagios4 -v, a real Nagios reloaded, bad input."""

from __future__ import annotations

import os
import shlex
import signal
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.declare import declare
from support.host import make_scratch_root
from support.results import ok, one_error_line, snapshot

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.recipes import nagios

OBJECTS = "/etc/nagios4/conf.d"

PROFILE = """
[buildout]
extends = {base}
parts = monitor-shop

[monitor-shop]
recipe = system_recipes:nagios
hosts =
    shop1 127.0.0.1 Shop application server
commands =
    check_shop_http $USER1$/check_http -H $HOSTADDRESS$ -p $ARG1$ -u /health
services =
    shop1 "Shop HTTP" check_shop_http!8080
    shop1 SSH check_ssh
nrpe-checks =
    shop1 check_app
    shop1 check_web Shop web port
"""

EXPECTED = """\
# Nagios objects of [monitor-shop], written by system-recipes: edits here are overwritten.

define host {
    use                     linux-server
    host_name               shop1
    alias                   Shop application server
    address                 127.0.0.1
}

define command {
    command_name            check_shop_http
    command_line            $USER1$/check_http -H $HOSTADDRESS$ -p $ARG1$ -u /health
}

define service {
    use                     generic-service
    host_name               shop1
    service_description     Shop HTTP
    check_command           check_shop_http!8080
}

define service {
    use                     generic-service
    host_name               shop1
    service_description     SSH
    check_command           check_ssh
}

define service {
    use                     generic-service
    host_name               shop1
    service_description     check_app
    check_command           check_nrpe!check_app
}

define service {
    use                     generic-service
    host_name               shop1
    service_description     Shop web port
    check_command           check_nrpe!check_web
}
"""


def verify(host) -> str:
    """The real nagios4 -v on the sandbox's real main configuration."""
    result = host.sandbox.run(["nagios4", "-v", "/etc/nagios4/nagios.cfg"])
    assert result.returncode == 0 and "Total Errors:   0" in result.stdout, result.stdout
    return result.stdout


def test_objects_are_written_and_the_real_nagios_accepts_them(host):
    host.write(PROFILE)
    out = ok(host.buildout()).stdout
    assert host.read(f"{OBJECTS}/monitor-shop.cfg") == EXPECTED
    assert "nagios (nagios4) skipped (not running" in out, out  # skipped, not an error
    report = verify(host)
    assert "Checked 12 services." in report and "Checked 2 hosts." in report, report


@pytest.mark.parametrize(
    "change, fragments",
    [
        (
            ("shop1 SSH check_ssh", "shop1 SSH check_no_such_command"),
            (
                "[monitor-shop] services: nagios4 -v:",
                "'check_no_such_command'",
                "not defined anywhere",
            ),
        ),
        # the line nagios names maps back to the option that wrote it
        (
            ("shop1 SSH check_ssh", "shop9 SSH check_ssh"),
            (
                "[monitor-shop] services: nagios4 -v: Could not find any host matching 'shop9'",
                f"of {OBJECTS}/monitor-shop.cfg: 'define service {{')",
            ),
        ),
        (
            ("nrpe-checks =", "nrpe-command = check_nrpe_v9\nnrpe-checks ="),
            ("[monitor-shop] nrpe-checks: nagios4 -v:", "'check_nrpe_v9!check_", "(and 1 more)"),
        ),
        (
            (
                "nrpe-checks =",
                "extra =\n    define hostgroup {\n        hostgroup_name shops\n"
                "        members shop1\n        bogus_key 1\n    }\nnrpe-checks =",
            ),
            ("[monitor-shop] extra: nagios4 -v:", "'bogus_key'", "'bogus_key 1')"),
        ),
    ],
)
def test_a_broken_check_is_refused_and_nothing_changes(host, change, fragments):
    host.write(PROFILE)
    ok(host.buildout())
    before = snapshot(host, "/etc", "/var/lib/system-recipes")
    host.write(PROFILE.replace(*change))
    line = one_error_line(host.buildout(), *fragments)
    assert "/tmp" not in line and "system-recipes-nagios" not in line, line
    assert snapshot(host, "/etc", "/var/lib/system-recipes") == before


def test_in_a_batch_the_part_that_breaks_it_is_named(host):
    """Two parts, one nagios4 -v: the error names the broken part only (a later part may use
    a host an earlier one defines)."""
    host.write(
        PROFILE.replace("parts = monitor-shop", "parts = monitor-shop monitor-more")
        + """
[monitor-more]
recipe = system_recipes:nagios
services =
    shop1 Disk check_disk!20%!10%!/
    shop1 Broken check_nothing_here
"""
    )
    result = host.buildout()
    line = one_error_line(result, "[monitor-more]", "'check_nothing_here'")
    errors = [x for x in (result.stdout + result.stderr).splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and "[monitor-shop]" not in errors[0], errors
    assert not host.exists(f"{OBJECTS}/monitor-shop.cfg"), line
    host.write(
        PROFILE.replace("parts = monitor-shop", "parts = monitor-shop monitor-more")
        + """
[monitor-more]
recipe = system_recipes:nagios
services = shop1 Disk check_disk!20%!10%!/
"""
    )
    ok(host.buildout())
    assert "Checked 13 services." in verify(host)


def test_bad_input_is_one_line_and_changes_nothing(host):
    """Bad input stops the run with one line and changes nothing on the real paths, as
    root. Which line each bad input gives: the error cases of tests/recipes/nagios/."""
    options, fragments = (
        "hosts = shop1 127.0.0.1\ncolour = blue",
        ("[monitor] colour:", "unknown option"),
    )
    host.write(
        """
        [buildout]
        extends = {base}
        parts = monitor

        [monitor]
        recipe = system_recipes:nagios
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )
    before = snapshot(host, "/etc")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc") == before


def start_nagios(host) -> int:
    host.sandbox.run(
        "install -d -o nagios -g nagios /run/nagios4 /var/lib/nagios4/spool "
        "/var/lib/nagios4/spool/checkresults /var/log/nagios4 "
        "/var/log/nagios4/archives && "
        "install -d -o nagios -g www-data -m 2710 /var/lib/nagios4/rw",
        check=True,
    )
    host.sandbox.run(["nagios4", "-d", "/etc/nagios4/nagios.cfg"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return int(host.sandbox.read("/run/nagios4/nagios4.pid").split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.1)
    raise AssertionError(
        "nagios4 did not start: " + host.sandbox.run("tail -5 /var/log/nagios4/nagios.log").stdout
    )


@pytest.mark.daemon
def test_a_running_nagios_is_reloaded_once(host):
    host.write(PROFILE)
    ok(host.buildout())
    pid = start_nagios(host)
    try:
        host.write(PROFILE.replace("shop1 SSH check_ssh", "shop1 SSH check_ssh!-p 2222"))
        out = ok(host.buildout()).stdout
        assert f"sent SIGHUP to nagios4 (pid {pid})" in out, out
        assert "reloads: nagios (nagios4)" in out, out
        deadline = time.monotonic() + 10
        log = ""
        while time.monotonic() < deadline and "Caught SIGHUP" not in log:
            time.sleep(0.2)
            log = host.read("/var/log/nagios4/nagios.log")
        assert "Caught SIGHUP, restarting" in log, log
        assert host.read("/run/nagios4/nagios4.pid").split()[0] == str(pid)
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


# -- property test, in-process, in a scratch root (the host's main config, real nagios4 -v) --
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_scratch_root(str(tmp_path_factory.mktemp("nagios") / "root"))


CLEAN = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)
NAME = st.one_of(
    CLEAN,
    CLEAN,
    CLEAN,
    st.text(alphabet=st.sampled_from(list("aZ9_-.;{}!$ '\"\\\t,=")), max_size=6),
)
TEXT = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,10}[A-Za-z0-9]", fullmatch=True),
    st.text(alphabet=st.sampled_from(list("aZ9 _-.;{}!$'\\\t,=#%") + ["\u00e9"]), max_size=12),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hosts=st.lists(
        st.tuples(NAME, st.sampled_from(["127.0.0.1", "::1", "db.example", "a b", "1;2"]), TEXT),
        min_size=1,
        max_size=3,
    ),
    services=st.lists(
        st.tuples(
            st.integers(0, 3),
            TEXT,
            st.sampled_from(
                [
                    "check_ssh",
                    "check_nrpe!x",
                    "nope",
                    "check_http!-p 80 -u /",
                    "check_ssh!;",
                    "check_tcp!22",
                ]
            ),
        ),
        max_size=3,
    ),
)
def test_property_random_objects_give_a_clean_error_or_what_nagios_accepts(root, hosts, services):
    names = [name for name, _, _ in hosts] + ["localhost"]
    options = {
        "hosts": "\n".join(f"{name} {address} {alias}" for name, address, alias in hosts),
        "services": "\n".join(f"{names[i % len(names)]} '{d}' {c}" for i, d, c in services),
    }
    try:
        content = declare(nagios, root, options).decode()
    except (ConfigError, RunError) as error:
        message = str(error)
        assert message.startswith("[part]") and "\n" not in message, message
        event("refused by nagios4 -v" if "nagios4 -v" in message else "refused by the recipe")
        return
    event("accepted by nagios4 -v")
    for line in options["hosts"].splitlines():  # what each line means: its first word
        assert f"host_name               {shlex.split(line)[0]}\n" in content
    assert content.count("define service {") == len(services)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"host-use": "generic-host", "services": "h1 SSH check_ssh"},
            "[part] host-use: has no effect: no hosts",
        ),
        (
            {"service-use": "local-service", "hosts": "h1 127.0.0.1"},
            "[part] service-use: has no effect: no services",
        ),
        (
            {"nrpe-command": "check_nrpe_1arg", "services": "h1 SSH check_ssh"},
            "[part] nrpe-command: has no effect: no nrpe-checks",
        ),
    ],
)
def test_options_that_apply_to_nothing_are_refused(tmp_path, options, message):
    root = make_scratch_root(str(tmp_path / "root"))
    with pytest.raises(ConfigError) as raised:
        declare(nagios, root, options)
    assert str(raised.value).startswith(message), raised.value

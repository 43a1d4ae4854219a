"""The service meta-recipe: one section expands into level-1 sections (real buildout, real tools)."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support.host import Host, link_nagios_plugins, make_scratch_root
from support.paths import REPO, SYSTEM_RECIPES
from support.results import ok, one_error_line, said, snapshot
from support.rpmbuild import install_below_root

from system_recipes.core.declare.errors import ConfigError
from system_recipes.meta import service
from system_recipes.recipes import nrpe

SERVICE = """
[buildout]
extends = {base}
parts = hello

[system-recipes]
root = {root}

[hello]
recipe = system_recipes:service
command = /opt/hello/bin/hello-server --directory ${hello:lib-directory} 8765
config = hello.ini.j2
check = http ${hello-config:port} /
cron = 15 3 * * * /usr/bin/find ${hello:lib-directory} -name '*.tmp' -delete
%(extra)s

[hello-config]
port = 8765
"""

TEMPLATE = (
    "# {{ path }}\n[hello]\nport = {{ port }}\n"
    "logs = {{ sections.hello_deployment.log_directory }}\n"
)

#: the files the [hello] section generates, below the scratch root
GENERATED = (
    "/etc/hello/hello.ini",
    "/etc/supervisor/conf.d/hello.conf",
    "/etc/logrotate.d/hello",
    "/etc/cron.d/hello",
    "/etc/nagios/nrpe.d/hello.cfg",
)


def with_program(root: str) -> None:
    """The service's program, installed below the root (run-script recipes check it)."""
    program = os.path.join(root, "opt/hello/bin/hello-server")
    os.makedirs(os.path.dirname(program), exist_ok=True)
    with open(program, "w") as stream:
        stream.write('#!/bin/sh\nexec python3 -m http.server "$@"\n')
    os.chmod(program, 0o755)


def profile(scratch, extra: str = "", name: str = "host.cfg") -> str:
    link_nagios_plugins(scratch.root)
    with_program(scratch.root)
    os.makedirs(os.path.join(scratch.directory, "templates"), exist_ok=True)
    with open(os.path.join(scratch.directory, "templates", "hello.ini.j2"), "w") as stream:
        stream.write(TEMPLATE)
    return scratch.write(SERVICE % {"extra": extra}, name=name)


def managed(scratch) -> dict[str, tuple]:
    """Content, mode and owner of every file below the scratch root's /etc (not the copies of
    the account files every scratch root starts with)."""
    result = {}
    for path, entry in scratch.tree("/etc").items():
        if entry[0] == "file" and not path.startswith(
            ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/os-release")
        ):
            result[path] = entry[:5]
    return result


def outside_state(scratch) -> dict:
    """The scratch root's /etc, /var/log and /run (a run always takes its lock in the state
    directory, which it creates)."""
    return snapshot(scratch, "/etc", "/var/log", "/run")


def explain(scratch, *sections: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEM_RECIPES, "explain", "-c", os.path.join(scratch.directory, "host.cfg"), *sections],
        capture_output=True,
        text=True,
        cwd=scratch.directory,
    )


@pytest.mark.sandbox
def test_one_section_writes_the_whole_service(scratch):
    profile(scratch)
    out = ok(scratch.buildout()).stdout
    for part in (
        "hello-deployment",
        "hello-config",
        "hello-supervisor",
        "hello-logrotate",
        "hello-cron",
        "hello-nrpe",
    ):
        assert said(out, part, "created"), (part, out)
    for path in GENERATED:
        assert scratch.exists(path), path
    assert "port = 8765" in scratch.read("/etc/hello/hello.ini")
    assert "-p 8765 -u /" in scratch.read("/etc/nagios/nrpe.d/hello.cfg")
    assert "/var/lib/hello" in scratch.read("/etc/supervisor/conf.d/hello.conf")
    logrotate = scratch.read("/etc/logrotate.d/hello")
    assert "/var/log/hello/*.log" in logrotate and "copytruncate" in logrotate
    assert "rotate 14" in logrotate and "daily" in logrotate
    out = ok(scratch.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out  # the fast path
    out = ok(scratch.buildout("system-recipes:fast-path=off")).stdout  # and a full run
    assert "0 created, 0 updated, 0 removed" in out


@pytest.mark.sandbox
def test_explained_sections_pasted_instead_write_the_same_tree(scratch, tmp_path):
    """`explain` prints cfg text a person could paste instead of the meta section: byte for
    byte the same files (content, mode, owner)."""
    profile(scratch)
    ok(scratch.buildout())
    by_meta = managed(scratch)
    text = ok(explain(scratch)).stdout
    assert "[hello-logrotate]" in text and "recipe = system_recipes:logrotate" in text
    assert "# port from" in text  # the profile's own value says where it came from

    other = Host(None, str(tmp_path / "explicit"), root=make_scratch_root(str(tmp_path / "r2")))
    os.makedirs(other.directory)
    link_nagios_plugins(other.root)
    with_program(other.root)
    os.symlink(
        os.path.join(scratch.directory, "templates"), os.path.join(other.directory, "templates")
    )
    parts = " ".join(line[1:-1] for line in text.splitlines() if line.startswith("[hello-"))
    other.write(
        "[buildout]\nextends = {base}\nparts = "
        + parts
        + "\n[system-recipes]\nroot = {root}\n"
        + text
    )
    ok(other.buildout())
    assert managed(other) == by_meta


@pytest.mark.sandbox
def test_an_override_changes_exactly_that_option_and_its_file(scratch):
    profile(scratch)
    ok(scratch.buildout())
    before = scratch.tree("/etc")
    profile(scratch, extra="[hello-logrotate]\nrotate = 7")
    out = ok(scratch.buildout()).stdout
    assert said(out, "hello-logrotate", "updated")
    assert "1 updated" in out, out
    after = scratch.tree("/etc")
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {"/etc/logrotate.d/hello"}, changed
    text = scratch.read("/etc/logrotate.d/hello")
    assert "rotate 7" in text and "rotate 14" not in text
    assert "# rotate from" in explain(scratch, "hello").stdout


@pytest.mark.sandbox
def test_switching_the_run_kind_swaps_the_files(scratch):
    profile(scratch)
    ok(scratch.buildout())
    before = managed(scratch)
    profile(scratch, extra="run = systemd")
    out = ok(scratch.buildout()).stdout
    assert said(out, "hello-supervisor", "removed") and said(out, "hello-runscript", "created")
    after = managed(scratch)
    assert not scratch.exists("/etc/supervisor/conf.d/hello.conf")
    assert "ExecStart=/opt/hello/bin/hello-server" in scratch.read(
        "/etc/systemd/system/hello.service"
    )
    unchanged = {p for p in before if p != "/etc/supervisor/conf.d/hello.conf"}
    assert {p: after[p] for p in unchanged} == {p: before[p] for p in unchanged}


@pytest.mark.sandbox
def test_dropping_the_section_removes_what_it_generated_and_nothing_else(scratch):
    profile(scratch)
    ok(scratch.buildout())
    planted = os.path.join(scratch.root, "etc/hello/local.ini")
    with open(planted, "w") as stream:
        stream.write("mine\n")
    scratch.write(
        f"[buildout]\nextends = {os.path.join(scratch.directory, 'host.cfg')}\nparts =\n",
        name="empty.cfg",
    )
    out = ok(scratch.buildout(name="empty.cfg")).stdout
    for path in GENERATED:
        assert not scratch.exists(path), path
    assert open(planted).read() == "mine\n"  # never written by the tool: left alone
    assert scratch.exists("/etc/hello")  # not empty, so not removed
    assert "removed" in out


@pytest.mark.parametrize(
    "extra, option, expected",
    [
        ("run = upstart", "run", "one of supervisor, systemd, sysv"),
        ("run = supervisor   # or systemd", "run", "inline comments"),
        ("check = http eighty /health", "check", "http PORT [PATH], tcp PORT, or none"),
        ("check = icmp 8765", "check", "http PORT [PATH], tcp PORT, or none"),
    ],
)
def test_bad_meta_options_are_one_line_and_change_nothing(scratch, extra, option, expected):
    profile(scratch, extra=extra)
    before = outside_state(scratch)
    line = one_error_line(scratch.buildout()).removeprefix("Error: ")
    assert line.startswith(f"[hello] {option}:") and expected in line, line
    assert outside_state(scratch) == before


@pytest.mark.parametrize(
    "extra, refine, option, fragments",
    [
        # a value substituted into the check: named as [hello] check, ${...} expanded
        ("", "[hello-config]\nport = 0\n", "check", ("'http 0 /'",)),
        ("cron = 61 3 * * * /bin/true", "", "cron", ("[hello-cron] entries",)),
        ("user = Bad-User", "", "user", ("Bad-User",)),
        ("directory = relative/dir", "", "directory", ("[hello-supervisor] directory",)),
    ],
)
def test_errors_in_generated_sections_name_what_the_user_wrote(
    scratch, extra, refine, option, fragments
):
    path = profile(scratch, extra=extra)
    if refine:
        scratch.write(open(path).read().replace("[hello-config]\nport = 8765\n", refine))
    before = outside_state(scratch)
    for result in (scratch.buildout(), scratch.plan()):
        line = one_error_line(result).removeprefix("Error: ")
        assert line.startswith(f"[hello] {option}:"), line
        assert "${" not in line and all(f in line for f in fragments), line
    assert outside_state(scratch) == before


def test_a_refined_generated_option_is_blamed_where_it_was_written(scratch):
    path = profile(scratch)
    scratch.write(open(path).read() + "\n[hello-logrotate]\nrotate = many\n")
    line = one_error_line(scratch.buildout()).removeprefix("Error: ")
    assert line.startswith("[hello-logrotate] rotate:"), line


def test_missing_command_and_clashing_section(scratch):
    path = profile(scratch)
    text = open(path).read()
    scratch.write(text.replace("command = ", "#command = "))
    before = outside_state(scratch)
    line = one_error_line(scratch.buildout()).removeprefix("Error: ")
    assert line.startswith("[hello] command: missing required option"), line
    scratch.write(
        text + "\n[hello-cron]\nrecipe = system_recipes:template\npath = /etc/x\ntext = x\n"
    )
    line = one_error_line(scratch.buildout()).removeprefix("Error: ")
    assert line.startswith("[hello-cron] recipe:") and "system_recipes:cron" in line, line
    assert outside_state(scratch) == before


@pytest.mark.sandbox
def test_plan_shows_the_generated_parts(scratch):
    profile(scratch)
    spool = os.stat("/var/spool/cron/crontabs").st_mtime_ns
    planned = scratch.plan()
    # crontab -n writes a temp file into cron's spool: it runs against a private one
    assert os.stat("/var/spool/cron/crontabs").st_mtime_ns == spool
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "[hello-logrotate]" in planned.stdout and "/etc/cron.d/hello" in planned.stdout
    assert "[hello] expands into hello-deployment, hello-config, hello-supervisor" in planned.stdout
    assert not scratch.exists("/etc/hello")


# -- the app-server role in both forms --------------------------------------------------------
ROLES = os.path.join(REPO, "profiles", "roles")


def role_host(tmp_path, name: str, role: str, rpm: str):
    """A scratch root with the example RPM installed, and a host.cfg extending ``role``."""
    root = make_scratch_root(str(tmp_path / name / "root"))
    link_nagios_plugins(root)
    install_below_root(root, rpm)
    directory = tmp_path / name / "profile"
    directory.mkdir()
    host = Host(None, str(directory), root=root)
    host.write(
        f"[buildout]\nextends = {os.path.join(ROLES, role)}\n[system-recipes]\nroot = {{root}}\n"
    )
    return host


@pytest.mark.sandbox
def test_the_meta_role_and_the_explicit_role_write_the_same_tree(tmp_path, example_rpms):
    rpm = example_rpms("1.0")
    meta = role_host(tmp_path, "meta", "app-server.cfg", rpm)
    explicit = role_host(tmp_path, "explicit", "app-server-explicit.cfg", rpm)
    out = ok(meta.buildout()).stdout
    ok(explicit.buildout())
    written = managed(meta)
    assert "/etc/supervisor/conf.d/shop.conf" in written and "/etc/cron.d/shop" in written
    assert written == managed(explicit)
    for top in ("/var/log/shop", "/var/lib/shop", "/run/shop"):
        assert meta.tree(top) == explicit.tree(top)
    assert said(out, "shop-supervisor", "created")


@pytest.mark.sandbox
def test_parts_minus_drops_a_level_1_part_of_the_explicit_role(tmp_path, example_rpms):
    host = role_host(tmp_path, "explicit", "app-server-explicit.cfg", example_rpms("1.0"))
    ok(host.buildout())
    before = managed(host)
    planted = os.path.join(host.root, "etc/nagios/nrpe.d/local.cfg")
    with open(planted, "w") as stream:
        stream.write("command[check_local]=/bin/true\n")
    host.write(
        f"[buildout]\nextends = {os.path.join(ROLES, 'app-server-explicit.cfg')}\n"
        "parts -= shop-nrpe\n[system-recipes]\nroot = {root}\n"
    )
    out = ok(host.buildout()).stdout
    assert said(out, "shop-nrpe", "removed"), out
    after = managed(host)
    assert set(before) - set(after) == {"/etc/nagios/nrpe.d/shop.cfg"}
    assert {p: after[p] for p in before if p in after} == {
        p: before[p] for p in before if p in after
    }
    assert open(planted).read() == "command[check_local]=/bin/true\n"


# -- property: any run/check text gives a clean error or sections the level-1 recipes read -----
WORDS = st.text(alphabet=st.sampled_from(list("httpcnoe0123456789/ -#;x")), max_size=20)
CHECKS = st.builds(
    lambda kind, port, path: f"{kind} {port} {path}".strip(),
    st.sampled_from(["http", "tcp", "none", "icmp", "HTTP"]),
    st.sampled_from(["80", "8080", "65535", "0", "65536", "eighty", ""]),
    st.sampled_from(["", "/", "/health", "health", "/a b"]),
)


@settings(max_examples=300, deadline=None)
@given(
    run=st.sampled_from([*service.RUN_KINDS, "upstart", "systemd # or sysv", " sysv "]),
    check=st.one_of(CHECKS, WORDS),
)
def test_property_run_and_check_give_a_clean_error_or_usable_sections(run, check):
    raw = {"recipe": "system_recipes:service", "command": "/bin/true", "run": run, "check": check}
    try:
        expansion = service.generate("svc", raw, buildout=None)
    except ConfigError as error:
        message = str(error)
        assert message.startswith(("[svc] run:", "[svc] check:")) and "\n" not in message
        event("refused")
        return
    event("accepted with a check" if "svc-nrpe" in expansion.sections else "accepted")
    assert run.strip() in service.RUN_KINDS
    kinds = {"supervisor": "svc-supervisor", "systemd": "svc-runscript", "sysv": "svc-runscript"}
    assert kinds[run.strip()] in expansion.sections
    checks = expansion.sections.get("svc-nrpe", {}).get("checks")
    assert (checks is None) == (check.split() in ([], ["none"]))
    if checks is not None:
        parsed = nrpe.parse_check(checks, "/usr/lib/nagios/plugins")
        assert parsed.name == f"check_svc_{check.split()[0]}"
        assert "-p" in parsed.arguments and "-w" in parsed.arguments


@pytest.mark.sandbox
def test_buildout_install_of_a_service_section_installs_what_it_expands_into(scratch):
    profile(scratch)
    out = ok(scratch.buildout("install", "hello")).stdout
    for path in GENERATED:
        assert scratch.exists(path), (path, out)
    assert said(out, "hello-config", "created") and said(out, "hello-nrpe", "created"), out
    # the full run that follows (a partial run leaves no fast-path record) finds everything
    out = ok(scratch.buildout()).stdout
    assert "0 created, 0 updated, 0 removed" in out, out


@pytest.mark.sandbox
def test_a_run_prints_one_line_per_part_and_a_summary(scratch):
    """buildout's own lines only with -v, and then they say what they mean."""
    profile(scratch)
    for run in (1, 2):  # the first run (buildout creates its directories) and a full no-op
        out = ok(scratch.buildout(*["system-recipes:fast-path=off"] * (run == 2)))
        lines = out.stdout.splitlines()
        assert lines[-1].startswith("system-recipes: "), out.stdout
        assert all(line.startswith("  [") for line in lines[:-1]), out.stdout
        assert out.stderr == "", out.stderr
        assert said(out.stdout, "hello", "created" if run == 1 else "unchanged"), out.stdout
    path = profile(scratch)
    scratch.write(open(path).read().replace("port = 8765", "port = 8766"))
    out = ok(scratch.buildout("-v")).stdout
    assert "Updating hello-nrpe." in out and "Uninstalling" not in out, out
    assert said(out, "hello", "updated") and said(out, "hello-nrpe", "updated"), out
    assert "+command[check_hello_http]" in out  # -v shows the diffs
    # dropping the service: buildout's Uninstalling lines are true now
    scratch.write(open(path).read().replace("parts = hello", "parts ="))
    out = ok(scratch.buildout("-v")).stdout
    assert "Uninstalling hello-nrpe." in out and said(out, "hello-nrpe", "removed"), out

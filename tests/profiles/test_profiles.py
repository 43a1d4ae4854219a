"""The main job: an installed RPM, `buildout -c hosts/web1.cfg`, as root, real paths (sandboxed)."""

import os
import re

import pytest
from support.host import Host, link_nagios_plugins, make_scratch_root
from support.markers import needs
from support.paths import REPO
from support.results import ok, said
from support.rpmbuild import RPM_OVERLAYS, install_below_root, rpm_install
from support.sandbox import Sandbox

WEB1 = os.path.join(REPO, "profiles", "hosts", "web1.cfg")


@pytest.fixture
@needs("sandbox")
def web1(tmp_path, example_rpms):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        rpm_install(box, example_rpms("1.0"))
        host = Host(box, str(tmp_path))
        host.write(f"[buildout]\nextends = {WEB1}\n")
        yield host


def files(host, *tops):
    return {
        path: entry for top in tops for path, entry in host.tree(top).items() if entry[0] == "file"
    }


def test_fresh_host_then_noop(web1):
    planned = web1.plan()
    assert planned.returncode == 2
    out = ok(web1.buildout()).stdout
    assert said(out, "shop-config", "created")
    config = web1.read("/etc/shop/shop.ini")
    assert "for shop 1.0" in config and "port = 8081" in config
    assert "+port = 8081" in planned.stdout  # the plan showed what the run then wrote
    before = files(web1, "/etc/shop")
    out = ok(web1.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out  # the fast path
    out = ok(web1.buildout("system-recipes:fast-path=off")).stdout  # a full run
    assert "0 created, 0 updated, 0 removed" in out and "reloads: none" in out
    assert files(web1, "/etc/shop") == before  # same inode and mtime: nothing rewritten
    assert web1.plan().returncode == 0


def test_rpm_upgrade_updates_exactly_the_parts_that_use_the_version(web1, example_rpms):
    ok(web1.buildout())
    rpm_install(web1.sandbox, example_rpms("2.0"), upgrade=True)
    planned = web1.plan()
    assert planned.returncode == 2 and "+# /etc/shop/shop.ini for shop 2.0" in planned.stdout
    out = ok(web1.buildout()).stdout
    assert said(out, "shop-config", "updated") and said(out, "shop-deployment", "unchanged")
    # the package's facts (recorded: a new version restarts the service) and its config file
    assert said(out, "shop-package", "updated") and "2 updated" in out
    assert "; 1 file changed;" in out
    assert "for shop 2.0" in web1.read("/etc/shop/shop.ini")


def test_one_section_swap_changes_only_that_file(web1):
    ok(web1.buildout())
    dirs = web1.tree("/var/log/shop")
    web1.write(f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n")
    out = ok(web1.buildout()).stdout
    assert said(out, "shop-config", "updated") and said(out, "shop-deployment", "unchanged")
    assert "port = 9000" in web1.read("/etc/shop/shop.ini")
    assert web1.tree("/var/log/shop") == dirs


@pytest.mark.sandbox
def test_not_installed_package_is_a_clear_error(tmp_path):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        host = Host(box, str(tmp_path))
        host.write(f"[buildout]\nextends = {WEB1}\n")
        result = host.buildout()
        assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
        # named as the operator wrote it: the service section's package option
        assert "[shop] package: package shop is not installed" in result.stdout + result.stderr
        assert not host.exists("/etc/shop")


def diff_of(output: str) -> list[str]:
    """The unified diffs in a plan's or a verbose run's output."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("--- ")), len(lines))
    return [line for line in lines[start:] if not line.startswith(("system-recipes:", "plan:"))]


def test_plan_prints_the_diffs_the_run_then_makes(web1, example_rpms):
    steps = [
        lambda: None,
        lambda: web1.write(f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n"),
        lambda: rpm_install(web1.sandbox, example_rpms("2.0"), upgrade=True),
        lambda: web1.write(
            f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n"
            "[shop-logrotate]\nrotate = 7\n"
        ),
        lambda: web1.write(
            f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n"
            "[shop-logrotate]\nrotate = 7\n[shop]\nrun = systemd\ncron =\n"
        ),
    ]
    for step in steps:
        step()
        planned = web1.plan()
        assert planned.returncode == 2
        ran = ok(web1.buildout("-v"))
        assert diff_of(planned.stdout) and diff_of(planned.stdout) == diff_of(ran.stdout)
        assert web1.plan().returncode == 0


# -- parts -= NAME on every shipped role --------------------------------------------------------
ROLES = os.path.join(REPO, "profiles", "roles")
ROLE_FILES = sorted(name for name in os.listdir(ROLES) if name.endswith(".cfg"))


def parts_of(config: str) -> list[str]:
    """``[buildout] parts`` as buildout's own loader resolves it (extends, +=, -=)."""
    from system_recipes.core.buildout.loading import loaded

    with loaded(config) as buildout:
        return buildout["buildout"]["parts"].split()


@pytest.mark.parametrize("role", ROLE_FILES)
def test_parts_minus_removes_each_part_of_every_role(role, tmp_path):
    """buildout's ``-=`` removes whole lines: a role must list its parts one per line, or
    ``parts -= NAME`` silently removes nothing."""
    host = tmp_path / "host.cfg"
    host.write_text(f"[buildout]\nextends = {os.path.join(ROLES, role)}\n")
    listed = parts_of(str(host))
    assert listed, role
    for name in listed:
        host.write_text(f"[buildout]\nextends = {os.path.join(ROLES, role)}\nparts -= {name}\n")
        assert parts_of(str(host)) == [p for p in listed if p != name], (role, name)


def dropping(tmp_path, name: str, role: str, drop: str | None, rpm: str) -> Host:
    root = make_scratch_root(str(tmp_path / name / "root"))
    link_nagios_plugins(root)
    install_below_root(root, rpm)
    directory = tmp_path / name / "profile"
    directory.mkdir(parents=True)
    host = Host(None, str(directory), root=root)
    host.write(
        f"[buildout]\nextends = {os.path.join(ROLES, role)}\n"
        + (f"parts -= {drop}\n" if drop else "")
        # the monitoring role's part; refined in another role's host, it is refused as unused
        + (
            "[monitored]\nhosts = web1 10.0.0.11 Shop\n"
            "nrpe-checks = web1 check_shop_http Shop health\n"
            if role == "monitoring.cfg"
            else ""
        )
        + "[system-recipes]\nroot = {root}\n"
    )
    return host


def written(host: Host) -> set[str]:
    accounts = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/os-release")
    return {
        path
        for path, entry in host.tree("/etc").items()
        if entry[0] == "file" and not path.startswith(accounts)
    }


# one part of each role, dropped with `parts -= NAME`: the files it alone writes (None: all)
DROPS = [
    ("app-server-explicit.cfg", "shop-cron", {"/etc/cron.d/shop"}),
    ("app-server.cfg", "shop", None),
    ("monitoring.cfg", "monitored", None),
]


def test_drops_cover_every_shipped_role():
    assert sorted(role for role, _, _ in DROPS) == ROLE_FILES


@pytest.mark.sandbox
@pytest.mark.parametrize("role, drop, gone", DROPS)
def test_a_dropped_part_of_a_role_is_gone_from_the_result(role, drop, gone, tmp_path, example_rpms):
    rpm = example_rpms("1.0")
    full = dropping(tmp_path, "full", role, None, rpm)
    # the part's own line, or (a meta section) the lines of the sections it expands into
    mentioned = re.compile(rf"^  \[{re.escape(drop)}[\]-]", re.M)
    assert mentioned.search(ok(full.buildout()).stdout)
    everything = written(full)
    gone = everything if gone is None else gone
    assert gone and gone <= everything
    host = dropping(tmp_path, "dropped", role, drop, rpm)
    assert not mentioned.search(ok(host.buildout()).stdout)
    assert written(host) == everything - gone

"""The main job: an installed RPM, `buildout -c hosts/web1.cfg`, as root, real paths (sandboxed)."""

import os

import pytest
from conftest import Host
from rpmbuild import RPM_OVERLAYS, rpm_install
from sandbox import Sandbox
from test_core_run import ok, said

pytest_plugins = ["example_fixtures"]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB1 = os.path.join(REPO, "profiles", "hosts", "web1.cfg")


@pytest.fixture
def web1(tmp_path, example_rpms):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        rpm_install(box, example_rpms("1.0"))
        host = Host(box, str(tmp_path))
        host.write(f"[buildout]\nextends = {WEB1}\n")
        yield host


def files(host, *tops):
    return {path: entry for top in tops for path, entry in host.tree(top).items()
            if entry[0] == "file"}


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
    assert "1 updated" in out
    assert "for shop 2.0" in web1.read("/etc/shop/shop.ini")


def test_one_section_swap_changes_only_that_file(web1):
    ok(web1.buildout())
    dirs = web1.tree("/var/log/shop")
    web1.write(f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n")
    out = ok(web1.buildout()).stdout
    assert said(out, "shop-config", "updated") and said(out, "shop-deployment", "unchanged")
    assert "port = 9000" in web1.read("/etc/shop/shop.ini")
    assert web1.tree("/var/log/shop") == dirs


def test_not_installed_package_is_a_clear_error(tmp_path):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        host = Host(box, str(tmp_path))
        host.write(f"[buildout]\nextends = {WEB1}\n")
        result = host.buildout()
        assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
        assert "[shop-package] name: package shop is not installed" in result.stdout + result.stderr
        assert not host.exists("/etc/shop")


def diff_of(output: str) -> list[str]:
    """The unified diffs in a plan's or a verbose run's output."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("--- ")), len(lines))
    return [line for line in lines[start:]
            if not line.startswith(("system-recipes:", "plan:"))]


def test_plan_prints_the_diffs_the_run_then_makes(web1, example_rpms):
    steps = [
        lambda: None,
        lambda: web1.write(f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n"),
        lambda: rpm_install(web1.sandbox, example_rpms("2.0"), upgrade=True),
        lambda: web1.write(f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n"
                           "[shop-logrotate]\nrotate = 7\n"),
        lambda: web1.write(f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = 9000\n"
                           "[shop-logrotate]\nrotate = 7\n[shop]\nrun = systemd\ncron =\n"),
    ]
    for step in steps:
        step()
        planned = web1.plan()
        assert planned.returncode == 2
        ran = ok(web1.buildout("-v"))
        assert diff_of(planned.stdout) and diff_of(planned.stdout) == diff_of(ran.stdout)
        assert web1.plan().returncode == 0

"""system-recipes installed from its wheel into a fresh venv: the profiles travel with it.

The wheel is built from a copy of this checkout and installed with pip into a new venv (its
dependencies from the machine's pip configuration and the tests' pip cache, as
test_release.py gets them). That venv's own buildout then converges host configurations that
extend the *installed* base.cfg and roles -- never the checkout's -- into scratch roots.
"""

from __future__ import annotations

import filecmp
import os
import re
import subprocess
import sys

import pytest
from support.host import Host, link_nagios_plugins, make_scratch_root
from support.paths import CACHE, REPO
from support.results import ok
from support.rpmbuild import install_below_root

from system_recipes.release.dists import copy_system_recipes

PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"
SHIPPED = [
    "base.cfg",
    "roles/app-server-explicit.cfg",
    "roles/app-server.cfg",
    "roles/monitoring.cfg",
    "templates/demo.ini.j2",
    "templates/shop.ini.j2",
]


class Installed:
    def __init__(self, venv: str):
        self.venv = venv
        self.bin = os.path.join(venv, "bin")
        self.site = os.path.join(venv, "lib", PYTHON, "site-packages")

    def run(self, script: str, *args: str, cwd: str | None = None):
        return subprocess.run(
            [os.path.join(self.bin, script), *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=600,
            env=_clean_env(),
        )


def _clean_env() -> dict:
    """No trace of the checkout's venv: the installed copy must stand on its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("installed")
    source = copy_system_recipes(REPO, str(work / "source"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(work / "dist"),
            source,
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((work / "dist").glob("system_recipes-*.whl"))
    venv = str(work / "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
    result = subprocess.run(
        [
            os.path.join(venv, "bin", "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            "--cache-dir",
            os.path.join(CACHE, "pip"),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Installed(venv)


def test_the_wheel_installs_the_profiles_and_says_where(installed):
    result = installed.run("system-recipes", "profiles", cwd="/")
    assert result.returncode == 0, result.stderr
    profiles = result.stdout.strip()
    assert profiles == os.path.join(installed.site, "system_recipes", "profiles")
    found = sorted(
        os.path.relpath(os.path.join(d, n), profiles)
        for d, _, names in os.walk(profiles)
        for n in names
    )
    assert found == SHIPPED
    for name in SHIPPED:
        assert filecmp.cmp(
            os.path.join(profiles, name), os.path.join(REPO, "profiles", name), shallow=False
        ), name
    # the checkout's example hosts stay out: demo.cfg writes beside itself
    assert not os.path.exists(os.path.join(profiles, "hosts"))


def scratch_host(tmp_path, name: str, rpm: str) -> Host:
    """A scratch root with the example application's RPM in its rpm database."""
    root = make_scratch_root(str(tmp_path / name / "root"))
    link_nagios_plugins(root)
    install_below_root(root, rpm)
    directory = tmp_path / name / "etc-shop"
    directory.mkdir(parents=True)
    return Host(None, str(directory), root=root)


def readme_host_cfg() -> str:
    with open(os.path.join(REPO, "README.md")) as stream:
        text = stream.read()
    section = text[text.index("## A host configuration") :]
    return re.search(r"```ini\n(.*?)```", section, re.S).group(1)


@pytest.mark.sandbox
def test_readme_host_cfg_converges_with_the_installed_base_cfg(installed, tmp_path, example_rpms):
    profiles = os.path.join(installed.site, "system_recipes", "profiles")
    config = readme_host_cfg()
    assert "extends = /opt/shop/profiles/base.cfg\n" in config  # the RPM's path (docs/release.md)
    host = scratch_host(tmp_path, "readme", example_rpms("1.0"))
    # the README's template, found in templates/ beside host.cfg
    os.makedirs(os.path.join(host.directory, "templates"))
    with open(os.path.join(host.directory, "templates", "shop.ini.j2"), "w") as stream:
        stream.write("[server]\nport = {{ port }}\n")
    # Debian's rpm keeps no database in /var/lib/rpm unless told (the roles say the same)
    host.write(
        config.replace("/opt/shop/profiles", profiles)
        + f"\n[shop-package]\ndbpath = /var/lib/rpm\n[system-recipes]\nroot = {host.root}\n"
    )
    out = ok(
        installed.run(
            "buildout", "-c", os.path.join(host.directory, "host.cfg"), cwd=host.directory
        )
    ).stdout
    assert "Traceback" not in out
    assert host.read("/etc/shop/shop.ini") == "[server]\nport = 8080\n"
    assert "shop-cleanup" in host.read("/etc/cron.d/shop")
    assert host.exists("/etc/supervisor/conf.d/shop.conf")


@pytest.mark.sandbox
def test_a_host_extending_an_installed_role_writes_the_example_tree(
    installed, tmp_path, example_rpms
):
    """web1 (profiles/hosts/web1.cfg), written against the installed role: the same files."""
    profiles = os.path.join(installed.site, "system_recipes", "profiles")
    host = scratch_host(tmp_path, "web1", example_rpms("1.0"))
    host.write(
        f"[buildout]\nextends = {profiles}/roles/app-server.cfg\n"
        f"[shop-config]\nport = 8081\n[system-recipes]\nroot = {host.root}\n"
    )
    ok(
        installed.run(
            "buildout", "-c", os.path.join(host.directory, "host.cfg"), cwd=host.directory
        )
    )
    expected = os.path.join(REPO, "etc-examples", "web1")
    files = sorted(
        os.path.relpath(os.path.join(d, n), expected)
        for d, _, names in os.walk(expected)
        for n in names
    )
    assert "etc/shop/shop.ini" in files
    for name in files:
        with open(os.path.join(expected, name)) as stream:
            assert host.read("/" + name) == stream.read(), name


def test_docs_from_an_installed_copy_writes_below_the_current_directory(installed, tmp_path):
    before = sorted(os.listdir(installed.site))
    result = installed.run("system-recipes", "docs", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(tmp_path / "docs" / "recipes"))
    assert written == sorted(os.listdir(os.path.join(REPO, "docs", "recipes")))
    assert result.stdout.splitlines()[0].startswith("wrote docs/recipes/")
    assert sorted(os.listdir(installed.site)) == before  # nothing written into site-packages
    assert installed.run("system-recipes", "docs", "--check", cwd=str(tmp_path)).returncode == 0
    # elsewhere the check finds no reference, and says so in one line
    (tmp_path / "elsewhere").mkdir()
    stale = installed.run("system-recipes", "docs", "--check", cwd=str(tmp_path / "elsewhere"))
    assert stale.returncode == 1 and len(stale.stderr.splitlines()) == 1
    assert stale.stderr.startswith("stale reference (run `system-recipes docs`): docs/recipes/")

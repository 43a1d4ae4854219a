"""The release path: `system-recipes release` and `system-recipes rpm` on the example project.

Real tools throughout: pip builds the wheels, install.sh installs them under ``unshare -n``
(no network), rpmbuild builds the RPM, rpm installs, upgrades and erases it inside the sandbox,
and the %post/%preun scriptlets run the installed venv's own buildout on /etc/shop/host.cfg.

pip's cache is kept in ``$SR_TEST_CACHE`` (default ``~/.cache/system-recipes-tests``), so only
the first run on a machine downloads; a fresh clone still works, just slower the first time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from support.markers import needs
from support.net import free_port, get, wait_until
from support.paths import CACHE, REPO
from support.release import PROJECT, project_copy
from support.results import said as part_said
from support.rpmbuild import RPM_OVERLAYS, force_debian, rpm_query, rpm_query_file
from support.sandbox import Sandbox

from system_recipes.release.dists import copy_system_recipes
from system_recipes.release.tarball import write_archive

WEB1 = os.path.join(REPO, "profiles", "hosts", "web1.cfg")
# web1 as written on a host of the RPM: against the profiles the RPM installs (/opt/shop/profiles)
RPM_WEB1 = (
    "[buildout]\nextends = /opt/shop/profiles/roles/app-server.cfg\n[shop-config]\nport = 8081\n"
)
WEB1_TREE = os.path.join(REPO, "etc-examples", "web1")
SYSTEM_RECIPES = os.path.join(os.path.dirname(sys.executable), "system-recipes")
EPOCH = 315532800  # the default SOURCE_DATE_EPOCH of a release
PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ACCOUNT_FILES = {
    f"/etc/{name}{backup}"
    for name in ("passwd", "group", "shadow", "gshadow", "subuid", "subgid")
    for backup in ("", "-")
}


def web1_files() -> list[str]:
    """What the profiles scenario writes for web1 (etc-examples/web1, checked by its own test)."""
    return sorted(
        os.path.join(dirpath, name)[len(WEB1_TREE) :]
        for dirpath, _, names in os.walk(WEB1_TREE)
        for name in names
    )


def sha256(path: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    environment.pop("SOURCE_DATE_EPOCH", None)
    environment.update(env or {})
    return subprocess.run(
        [SYSTEM_RECIPES, *args], capture_output=True, text=True, timeout=600, env=environment
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="session")
def system_recipes_wheel(tmp_path_factory) -> str:
    """system-recipes as a wheel, built once: both builds of a release then ship the same bytes
    even while the checkout is being edited."""
    work = tmp_path_factory.mktemp("system-recipes-wheel")
    source = copy_system_recipes(REPO, str(work / "src"))
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
        env=dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH)),
    )
    return str(next((work / "dist").glob("system_recipes-*.whl")))


class Releases:
    """Release tarballs and RPMs of the example project, built once per session and version."""

    def __init__(self, base, wheel: str):
        self.base, self.wheel = base, wheel
        self.tarballs: dict[str, str] = {}
        self.rpms: dict[str, str] = {}

    def build(self, version: str, output: str, *options: str) -> str:
        # output does not exist yet: the release command creates it (and its parents)
        source = (
            PROJECT
            if version == "1.0"
            else project_copy(str(self.base / f"project-{version}"), version)
        )
        result = cli(
            "release",
            source,
            "-o",
            output,
            "--system-recipes",
            self.wheel,
            "--cache",
            os.path.join(CACHE, "pip"),
            *options,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # not a terminal: no progress line
        path = result.stdout.strip()
        assert path == os.path.join(output, f"shop-{version}.tar.gz")
        return path

    def tarball(self, version: str) -> str:
        if version not in self.tarballs:
            self.tarballs[version] = self.build(
                version, str(self.base / f"release-{version}" / "dist")
            )
        return self.tarballs[version]

    def rpm(self, version: str) -> str:
        if version not in self.rpms:
            output = self.base / f"rpm-{version}" / "dist"  # created by the rpm command
            result = cli("rpm", self.tarball(version), "-o", str(output))
            assert result.returncode == 0, result.stderr
            assert result.stderr == ""  # not a terminal: no progress line
            self.rpms[version] = result.stdout.strip()
        return self.rpms[version]


@pytest.fixture(scope="session")
def releases(tmp_path_factory, system_recipes_wheel) -> Releases:
    return Releases(tmp_path_factory.mktemp("releases"), system_recipes_wheel)


def unpack(tarball: str, directory) -> str:
    with tarfile.open(tarball) as archive:
        archive.extractall(directory, filter="data")
    return os.path.join(directory, os.path.basename(tarball)[: -len(".tar.gz")])


def install(release_dir: str, stage: str) -> subprocess.CompletedProcess:
    """install.sh into a staging root, in a network namespace that has no network at all."""
    return subprocess.run(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            'test "$(ip -o link | wc -l)" = 1 || exit 99; exec sh "$@"',
            "-",
            os.path.join(release_dir, "install.sh"),
            "--destdir",
            stage,
            "--python",
            "/usr/bin/python3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- the tarball ---------------------------------------------------------------------------------


def test_release_is_reproducible_and_complete(releases, tmp_path):
    first = releases.tarball("1.0")
    # the second build uses no index at all: only the first release's wheels
    dists = os.path.join(unpack(first, tmp_path / "first"), "dists")
    second = releases.build("1.0", str(tmp_path / "again"), "--offline", "--find-links", dists)
    assert sha256(first) == sha256(second)
    # built from a private copy: nothing left in the project's tree
    assert sorted(os.listdir(PROJECT)) == ["pyproject.toml", "shop"]

    with open(first, "rb") as stream:
        header = stream.read(10)
    assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0" and header[3] & 0x08 == 0
    with tarfile.open(first) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) and names[0] == "shop-1.0"
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {
            (0, 0, "root", "root", EPOCH)
        }
        modes = {m.name.split("/", 1)[-1]: m.mode for m in members}
        assert modes["install.sh"] == 0o755 and modes["requirements.txt"] == 0o644
        wheels = sorted(n.split("/")[-1] for n in names if n.endswith(".whl"))
        requirements = archive.extractfile("shop-1.0/requirements.txt").read().decode()
        contents = {
            n.split("/")[-1]: archive.extractfile(n).read() for n in names if n.endswith(".whl")
        }
    projects = {w.split("-")[0] for w in wheels}
    assert {"shop", "packaging", "zc_buildout", "system_recipes", "jinja2", "pip"} <= projects
    # every wheel pinned by its own sha256, nothing else
    pinned = [line.split("sha256:")[1] for line in requirements.splitlines() if "sha256:" in line]
    assert sorted(pinned) == sorted(hashlib.sha256(data).hexdigest() for data in contents.values())
    assert "shop==1.0 \\\n" in requirements and "zc-buildout==6.0.1 \\\n" in requirements


@pytest.mark.sandbox
@pytest.mark.daemon
def test_offline_install_into_a_staging_root_runs(releases, tmp_path):
    release = unpack(releases.tarball("1.0"), tmp_path)
    stage = str(tmp_path / "stage")
    result = install(release, stage)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        result.stdout == f"install.sh: installed shop 1.0 in {stage}/opt/shop (runs from "
        "/opt/shop)\n"
    )
    with open(f"{stage}/opt/shop/bin/shop-server") as stream:
        assert stream.readline() == "#!/opt/shop/bin/python\n"
    assert subprocess.run(["grep", "-rlF", stage, stage], capture_output=True).stdout == b""

    port = free_port()
    with Sandbox(overlays=("/etc", "/var", "/run", "/opt")) as box:
        box.run(["cp", "-a", f"{stage}/opt/shop", "/opt/shop"], check=True)
        box.run(
            "mkdir -p /etc/shop /var/log/shop && cat > /etc/shop/shop.ini",
            check=True,
            input=f"[server]\nport = {port}\nlog-file = /var/log/shop/access.log\n",
        )
        server = box.popen(
            ["/opt/shop/bin/shop-server", "--config", "/etc/shop/shop.ini"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(lambda: _answers(port, server), what="shop-server /health")
            assert get(port, "/health") == (200, "OK 1.0\n")
            version = box.run(["/opt/shop/bin/shop-cleanup", "--version"], check=True)
            assert version.stdout == "shop-cleanup 1.0\n"
            check = box.run(["/opt/shop/bin/buildout", "--version"], check=True)
            assert "6.0.1" in check.stdout + check.stderr
        finally:
            os.kill(server.pid, signal.SIGTERM)
            assert server.wait(timeout=10) == 0
            server.stderr.close()


def _answers(port: int, server: subprocess.Popen) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"shop-server exited: {server.stderr.read()}")
    try:
        return get(port, "/health", timeout=0.5)[0] == 200
    except OSError:
        return False


@pytest.mark.sandbox
def test_tampered_wheel_fails_the_hash_check(releases, tmp_path):
    release = unpack(releases.tarball("1.0"), tmp_path)
    wheel = os.path.join(release, "dists", "shop-1.0-py3-none-any.whl")
    with open(wheel, "ab") as stream:
        stream.write(b"\0")
    stage = str(tmp_path / "stage")
    result = install(release, stage)
    assert result.returncode == 1
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr
    assert "shop-1.0-py3-none-any.whl" in result.stderr
    assert (
        result.stderr.splitlines()[-1]
        == f"install.sh: pip could not install the release into {stage}/opt/shop"
    )
    # pip itself is checked before it runs
    release = unpack(releases.tarball("1.0"), tmp_path / "pip")
    pip = next(n for n in os.listdir(os.path.join(release, "dists")) if n.startswith("pip-"))
    with open(os.path.join(release, "dists", pip), "ab") as stream:
        stream.write(b"\0")
    result = install(release, str(tmp_path / "stage-pip"))
    assert result.returncode == 1
    assert result.stderr == f"install.sh: dists/{pip}: sha256 mismatch (the release was altered)\n"
    assert not os.path.exists(tmp_path / "stage-pip")


@pytest.mark.parametrize(
    "version, problem",
    [
        # what packaging (and so setuptools and pip) writes differently: refused, not rewritten
        ("01.0", "'01.0' is not a release version: it builds as '1.0'"),
        ("1.0a01", "'1.0a01' is not a release version: it builds as '1.0a1'"),
        ("1.0+ABC", "'1.0+ABC' is not a release version: it builds as '1.0+abc'"),
        ("1.0-beta", "'1.0-beta' is not a release version: it builds as '1.0b0'"),
        # not PEP 440 at all, and an epoch, which no rpm version can hold
        ("1.0+a..b", "'1.0+a..b' is not a release version"),
        ("1.0 beta", "'1.0 beta' is not a release version"),
        ("1!2.0", "'1!2.0' is not a release version: it has an epoch"),
    ],
)
def test_a_version_that_would_be_rewritten_is_one_line(tmp_path, version, problem):
    """The version is parsed by packaging.version, as pip and setuptools parse it: one that
    they would write differently (or not read) stops the release before anything is built."""
    project = project_copy(str(tmp_path / "project"), version)
    assert one_error_line(cli("release", project, "-o", str(tmp_path / "out"))) == (
        f"Error: [project] version: {problem} (expected a version such as 1.0, 2.1.3 or 2.0rc1 "
        "(PEP 440, no '-'))"
    )
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize(
    "version", ["1.0", "2.1.3", "2.0rc1", "1.0.post1", "1.0.dev3", "1.0a1.post2.dev3", "1.0+el9.1"]
)
def test_a_version_in_its_normalized_form_is_a_release_version(version):
    from system_recipes.release.project import check_version

    assert check_version(version) == version


def test_bad_input_is_one_line_and_leaves_nothing(releases, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    wheel = releases.wheel

    bad_version = project_copy(str(tmp_path / "bad-version"), "1.0-beta")
    assert (
        one_error_line(cli("release", bad_version, "-o", str(out)))
        == "Error: [project] version: '1.0-beta' is not a release version: it builds as '1.0b0' "
        "(expected a version such as 1.0, 2.1.3 or 2.0rc1 (PEP 440, no '-'))"
    )

    broken = project_copy(str(tmp_path / "broken"), "1.0")
    shutil.rmtree(os.path.join(broken, "shop"))  # [tool.setuptools] packages names it
    line = one_error_line(
        cli(
            "release",
            broken,
            "-o",
            str(out),
            "--system-recipes",
            wheel,
            "--cache",
            os.path.join(CACHE, "pip"),
        )
    )
    assert (
        line == f"Error: [release] path: {broken} does not build: error: package directory "
        "'shop' does not exist (expected a project that `pip wheel` builds)"
    )

    # offline, a dependency is not among the distributions at hand (a release's wheels)
    tarball = releases.tarball("1.0")
    dists = os.path.join(unpack(tarball, tmp_path / "unpacked"), "dists")
    missing = project_copy(str(tmp_path / "missing"), "1.0", dependency="attrs")
    assert (
        one_error_line(
            cli(
                "release",
                missing,
                "-o",
                str(out),
                "--offline",
                "--find-links",
                dists,
                "--system-recipes",
                wheel,
            )
        )
        == "Error: [release] distributions: No matching distribution found for attrs (from shop) "
        "(expected every distribution in --find-links when offline)"
    )

    assert (
        one_error_line(cli("rpm", tarball, "-o", str(out), "--release", "1-beta"))
        == "Error: [rpm] release: '1-beta' is not usable (expected letters, digits and ._+~^ "
        "(no '-'), e.g. 1 or 2.el9)"
    )
    template = tmp_path / "broken.spec.j2"
    template.write_text("Name: {{ name }}\n{% for x in %}\n")
    line = one_error_line(cli("rpm", tarball, "-o", str(out), "--template", str(template)))
    assert line.startswith("Error: [rpm] template: broken.spec.j2: template syntax error")
    template.write_text("Name: {{ name }}\nVersion: {{ no_such_value }}\n")
    line = one_error_line(cli("rpm", tarball, "-o", str(out), "--template", str(template)))
    assert (
        line == "Error: [rpm] template: broken.spec.j2: 'no_such_value' is undefined "
        "(broken.spec.j2 line 2)"
    )
    # a spec that rpmbuild refuses: no RPM, rpmbuild's own error line
    template.write_text("Name: {{ name }}\nVersion: {{ version }}\n")
    line = one_error_line(cli("rpm", tarball, "-o", str(out), "--template", str(template)))
    assert line.startswith("Error: [rpm] rpmbuild: the build failed: error:")
    assert os.listdir(out) == []


def on_a_terminal(*args: str, columns: int = 300) -> tuple[int, str, str]:
    """``system-recipes ARGS`` with stderr on a pseudo-terminal ``columns`` wide (stdout piped,
    as in ``path=$(system-recipes rpm ...)``): the exit status, stdout, and what the terminal
    received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    process = subprocess.Popen(
        [SYSTEM_RECIPES, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=environment,
    )
    os.close(slave)
    received = b""
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the command and everything it started have closed it
                break
            if not data:
                break
            received += data
    finally:
        os.close(master)
    stdout = process.stdout.read().decode()
    process.stdout.close()
    status = process.wait(timeout=600)
    return status, stdout, received.decode().replace("\r\n", "\n")  # the tty's \n -> \r\n


def steps(terminal: str) -> list[str]:
    """The texts a progress line showed, in order, without the seconds and the blanks."""
    shown = [re.sub(r" \(\d+ s\) *$", "", text) for text in terminal.split("\r")]
    return [text for i, text in enumerate(shown) if text.strip() and shown[i - 1] != text]


def erased(terminal: str) -> bool:
    """Whether the progress line ended erased: blanks over it, back to the line's start."""
    return terminal.endswith("\r") and terminal[:-1].rsplit("\r", 1)[-1].strip() == ""


def test_release_and_rpm_say_what_step_runs_on_a_terminal(releases, tmp_path):
    """Seconds of pip and rpmbuild: on a terminal one line says what is running and is erased
    at the end, so the terminal keeps only the result; the output is the same bytes as when
    stderr is piped (the builds of the fixture, whose stderr is empty)."""
    status, stdout, terminal = on_a_terminal(
        "release",
        PROJECT,
        "-o",
        str(tmp_path / "release"),
        "--system-recipes",
        releases.wheel,
        "--cache",
        os.path.join(CACHE, "pip"),
    )
    assert status == 0, terminal
    assert "\n" not in terminal and erased(terminal), terminal
    shown = steps(terminal)
    assert shown[:2] == [
        "release: copying the sources to build from",
        "release: pip wheel: resolving the distributions",
    ]
    assert "release: pip wheel: building the wheel of shop" in shown, shown
    assert "release: pip wheel: collecting zc.buildout==6.0.1" in shown, shown
    assert shown[-1] == "release: writing shop-1.0.tar.gz"
    assert sha256(stdout.strip()) == sha256(releases.tarball("1.0"))

    status, stdout, terminal = on_a_terminal(
        "rpm", releases.tarball("1.0"), "-o", str(tmp_path / "rpm")
    )
    assert status == 0, terminal
    assert "\n" not in terminal and erased(terminal), terminal
    shown = steps(terminal)
    for step in (
        "rpm: rpmbuild %prep: unpacking the release",
        "rpm: rpmbuild %install: install.sh installs the venv, offline",
        "rpm: rpmbuild: packaging the files (digests, compressed payload)",
    ):
        assert step in shown, shown
    assert shown[-1] == f"rpm: copying {os.path.basename(stdout.strip())} into {tmp_path}/rpm"
    assert sha256(stdout.strip()) == sha256(releases.rpm("1.0"))

    # a failure: the line is erased, then the one error line, on a line of its own
    template = tmp_path / "refused.spec.j2"
    template.write_text("Name: {{ name }}\nVersion: {{ version }}\n")
    status, stdout, terminal = on_a_terminal(
        "rpm",
        releases.tarball("1.0"),
        "-o",
        str(tmp_path / "refused"),
        "--template",
        str(template),
        columns=30,
    )
    assert status == 1 and stdout == ""
    progress, _, error = terminal.rpartition("\r")
    assert erased(progress + "\r") and steps(progress), terminal
    # never wider than the terminal, less one column: a line that wrapped could not be rewritten
    assert max(len(text) for text in progress.split("\r")) == 29, terminal
    assert (
        error.startswith("Error: [rpm] rpmbuild: the build failed: error:")
        and error.count("\n") == 1
    ), terminal


def test_an_output_that_cannot_be_a_directory_is_one_line(releases, tmp_path):
    """-o names a directory that is created when missing (the release and RPM builds of this
    module all write into new directories); a path that cannot be one is refused."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert (
        one_error_line(cli("release", PROJECT, "-o", str(blocker / "dist")))
        == f"Error: [release] output: {blocker}/dist: Not a directory (expected a directory, "
        "or a path where one can be created)"
    )
    assert (
        one_error_line(cli("rpm", releases.tarball("1.0"), "-o", str(blocker)))
        == f"Error: [rpm] output: {blocker}: File exists (expected a directory, or a path where "
        "one can be created)"
    )


# -- the RPM -------------------------------------------------------------------------------------


def test_rpm_lists_the_staged_files_and_the_scriptlets(releases):
    path = releases.rpm("1.0")
    assert os.path.basename(path).startswith("shop-1.0-1.") and path.endswith(".rpm")
    info = rpm_query_file(path, "--qf", "%{NAME}|%{VERSION}|%{RELEASE}|%{SUMMARY}|%{LICENSE}\n")
    assert info == "shop|1.0|1|Example web service for the system-recipes end-to-end tests|MIT\n"
    assert rpm_query_file(path, "--qf", "%{URL}") == "https://example.invalid/shop"
    files = rpm_query_file(path, "-l").splitlines()  # some names hold spaces
    site = f"/opt/shop/lib/{PYTHON}/site-packages"
    # release.json documents what is inside: every distribution, its version and sha256
    assert [f for f in files if not (f == "/opt/shop" or f.startswith("/opt/shop/"))] == [
        "/usr/share/doc/shop-1.0",
        "/usr/share/doc/shop-1.0/release.json",
    ]
    for expected in (
        "/opt/shop/bin/shop-server",
        "/opt/shop/bin/buildout",
        "/opt/shop/bin/system-recipes",
        "/opt/shop/pyvenv.cfg",
        f"{site}/shop/server.py",
        f"{site}/system_recipes/templates/release.spec.j2",
        # zc.buildout imports pip and setuptools as it starts: %post needs them
        f"{site}/pip/__init__.py",
        f"{site}/setuptools/__init__.py",
        f"{site}/system_recipes/profiles/base.cfg",
    ):
        assert expected in files, expected
    # no test suite; every distribution, wheel included (zc.buildout requires it: pip check)
    assert not [f for f in files if re.search(r"/tests?(/|$)", f)]
    assert "/opt/shop/bin/wheel" in files
    assert [
        f for f in files if re.fullmatch(re.escape(site) + r"/wheel-[^/]*\.dist-info/RECORD", f)
    ]
    # the profiles at the documented path, a relative link into the venv
    links = dict(
        line.split(" -> ")
        for line in rpm_query_file(path, "--qf", "[%{FILENAMES} -> %{FILELINKTOS}\n]").splitlines()
        if " -> " in line and not line.endswith(" -> ")
    )
    assert links["/opt/shop/profiles"] == f"lib/{PYTHON}/site-packages/system_recipes/profiles"
    scripts = rpm_query_file(path, "--scripts")
    assert "postinstall scriptlet" in scripts and "preuninstall scriptlet" in scripts
    assert "host_config=/etc/shop/host.cfg" in scripts
    assert '"$buildout" -c "$host_config" "buildout:parts="' in scripts
    # the venv's interpreter: its ABI, not a path any Python provides
    requires = rpm_query_file(path, "--requires").splitlines()
    assert [r for r in requires if not r.startswith("rpmlib(")] == [
        "/bin/sh",
        "/bin/sh",
        f"python(abi) = {sys.version_info[0]}.{sys.version_info[1]}",
    ]
    # rpm keeps the %changelog entry: the default epoch (1980) clamped to a date rpm accepts
    assert rpm_query_file(path, "--changelog") == (
        "* Tue Jan 03 1995 system-recipes <system-recipes@localhost> - 1.0-1\n"
        "- Built from shop-1.0.tar.gz.\n\n"
    )


# rpmlint's findings on the release RPM that are allowed, each as (check, what it names): a
# venv under /opt, made of distributions installed as their wheels ship them, cannot avoid
# them. Anything else rpmlint reports fails the test.
VENV_FINDINGS = [
    # the whole package lives in /opt/NAME: that is the point of a self-contained venv
    ("dir-or-file-in-opt", r"/opt/shop(/.*)?"),  # some names hold spaces
    # console scripts run the venv's own interpreter
    ("wrong-script-interpreter", r"/opt/shop/bin/\S+ /opt/shop/bin/python"),
    # the venv's interpreter links to the system Python that python(abi) brings
    ("symlink-should-be-relative", r"/opt/shop/bin/python3 /usr/bin/python3"),
    ("dangling-symlink", r"/opt/shop/bin/python3 /usr/bin/python3"),
    # modules that carry a shebang (or an executable mode) in their own wheels, and
    # system-recipes' shell-script templates (data, rendered into files, never run)
    ("non-executable-script", r"SITE/\S+\.(py|sh\.j2) 644 .*"),
    ("env-script-interpreter", r"SITE/supervisor/scripts/\S+\.py /usr/bin/env python.*"),
    ("script-without-shebang", r"SITE/pip/_internal/__init__\.py"),
    # setuptools' wheel ships an empty lock file in its vendored tree
    ("zero-length", r"SITE/setuptools/_vendor/\.lock"),
    ("hidden-file-or-dir", r"SITE/setuptools/_vendor/\.lock"),
    # identical files in different distributions (license texts, empty __init__.py...)
    ("files-duplicate", r"/opt/shop/\S+ /opt/shop/\S+"),
    ("files-duplicated-waste", r"\d+"),
    # markupsafe's and PyYAML's wheels: their compiled speedups as built (the distributions'
    # own files, as their RECORD lists them) and markupsafe's C source beside them
    ("unstripped-binary-or-object", r"SITE/(markupsafe|yaml)/\S+\.so"),
    ("devel-file-in-non-devel-package", r"SITE/markupsafe/_speedups\.c"),
]
# ... and three that depend on where the RPM is built, not on what it holds
ENVIRONMENT_FINDINGS = [
    ("no-signature", ""),  # signing is the distributor's step, with its key (rpmsign)
    # Fedora forbids a Packager tag in a spec; a build system sets %packager
    ("no-packager-tag", ""),
    ("invalid-license", r"MIT"),  # Debian's rpmlint knows no license (ValidLicenses = [])
]


def test_rpmlint_finds_only_what_a_venv_under_opt_implies(releases, tmp_path):
    path = releases.rpm("1.0")
    # an empty home: no user configuration of rpmlint (it creates ~/.config/rpmlint, so not
    # /nonexistent, which root would then own and an unprivileged run could not read)
    result = subprocess.run(
        ["rpmlint", "--permissive", path],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    findings = [line for line in result.stdout.splitlines() if line.startswith("shop.")]
    assert findings, result.stdout + result.stderr
    allowed = [
        (check, re.compile(pattern.replace("SITE", f"/opt/shop/lib/{PYTHON}/site-packages")))
        for check, pattern in VENV_FINDINGS + ENVIRONMENT_FINDINGS
    ]
    unexpected = []
    for line in findings:
        _, level, check, *rest = line.split(" ", 3)
        what = rest[0] if rest else ""
        if not any(check == name and pattern.fullmatch(what) for name, pattern in allowed):
            unexpected.append(line)
    assert unexpected == [], "\n".join(unexpected)
    # the package's own metadata is clean: tags, description, changelog
    for check in (
        "no-url-tag",
        "no-group-tag",
        "description-line-too-long",
        "changelog-time-overflow",
        "no-documentation",
        "name-repeated-in-summary",
    ):
        assert f" {check}" not in result.stdout, check


def rpm(box: Sandbox, *args: str) -> subprocess.CompletedProcess:
    command = ["rpm", *args[:1], "--nodeps", "--dbpath", "/var/lib/rpm"]
    if force_debian() and args[0] != "-e":
        command.append("--force-debian")
    return box.run(command + list(args[1:]), timeout=300)


def said(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


@pytest.fixture
@needs("sandbox")
def rpm_host():
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        box.run(["mkdir", "-p", "/var/lib/rpm"], check=True)
        yield box


def write_host_config(box: Sandbox, text: str | None = None) -> None:
    text = text if text is not None else RPM_WEB1
    box.run("mkdir -p /etc/shop && cat > /etc/shop/host.cfg", input=text, check=True)


def etc_snapshot(box: Sandbox) -> dict[str, bytes | None]:
    """Every path below /etc in the sandbox with its content (None for a directory)."""
    snapshot = {}
    base = box.path("/etc")
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            relative = full[len(box.path("")) :]
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as stream:
                    snapshot[relative] = stream.read()
            else:
                snapshot[relative] = None
    return snapshot


def test_rpm_install_upgrade_erase_runs_the_host_buildout(releases, rpm_host):
    box = rpm_host
    write_host_config(box)
    box.run("cat > /etc/shop/operator-notes", input="not ours\n", check=True)
    before = etc_snapshot(box)
    etc_shop = os.stat(box.path("/etc/shop"))

    installed = rpm(box, "-i", releases.rpm("1.0"))
    assert installed.returncode == 0, said(installed)
    assert (
        "shop: running the host buildout: /opt/shop/bin/system-recipes converge -c /etc/shop/host.cfg"
        in installed.stdout
    )
    assert rpm_query(box) == "1.0-1"
    check_installed_tree(box)  # after %post's host buildout: every file as packaged
    configured = web1_files()
    assert "/etc/shop/shop.ini" in configured
    for path in configured:  # the same files as the profiles scenario
        with open(WEB1_TREE + path) as stream:
            assert box.read(path) == stream.read(), path

    upgraded = rpm(box, "-U", releases.rpm("2.0"))
    assert upgraded.returncode == 0, said(upgraded)
    assert said(upgraded).count("running the host buildout") == 1
    assert "removing the host configuration" not in said(upgraded)
    assert rpm_query(box) == "2.0-1"
    assert "for shop 2.0" in box.read("/etc/shop/shop.ini")
    assert part_said(upgraded.stdout, "shop-config", "updated")
    check_installed_tree(box)

    erased = rpm(box, "-e", "shop")
    assert erased.returncode == 0, said(erased)
    assert "shop: removing the host configuration" in erased.stdout
    assert rpm_query(box) is None and not box.exists("/opt/shop")
    after = etc_snapshot(box)
    for path in configured:
        assert path not in after
    # nothing else: the only other change in /etc is the account the deployment part added
    # (system-recipes never deletes accounts)
    changed = {p for p in set(before) | set(after) if before.get(p, b"?") != after.get(p, b"?")}
    assert changed and changed <= ACCOUNT_FILES, changed
    assert "\nshop:" in box.read("/etc/passwd")
    # /etc/shop was there before the package (it holds host.cfg): its mode and owner are back
    erased_etc = os.stat(box.path("/etc/shop"))
    assert (erased_etc.st_mode, erased_etc.st_uid, erased_etc.st_gid) == (
        etc_shop.st_mode,
        etc_shop.st_uid,
        etc_shop.st_gid,
    )


def test_failing_host_buildout_is_reported_and_keeps_the_configuration(releases, rpm_host):
    box = rpm_host
    write_host_config(box)
    assert rpm(box, "-i", releases.rpm("1.0")).returncode == 0
    configured = {path: box.read(path) for path in web1_files()}
    write_host_config(box, RPM_WEB1 + "mode = 0999\n")

    upgraded = rpm(box, "-U", releases.rpm("2.0"))
    output = said(upgraded)
    # rpm 4.18 reports a failed %post as a warning (the package stays upgraded, rpm exits 0)
    assert "warning: %post(shop-2.0-1" in output and "scriptlet failed, exit status 1" in output
    assert "\nError: [shop-config] mode: '0999' is not an octal mode" in output  # buildout's
    assert (
        "shop: the host buildout failed (exit 1); the previous configuration is in place" in output
    )
    assert rpm_query(box) == "2.0-1"
    assert "Traceback" not in output
    assert {path: box.read(path) for path in web1_files()} == configured
    assert "for shop 1.0" in configured["/etc/shop/shop.ini"]


def test_missing_host_config_is_logged_and_install_succeeds(releases, rpm_host):
    box = rpm_host
    installed = rpm(box, "-i", releases.rpm("1.0"))
    assert installed.returncode == 0, said(installed)
    assert installed.stdout.splitlines()[0] == (
        "shop: /etc/shop/host.cfg does not exist: host configuration not applied; write it, "
        "then run: /opt/shop/bin/system-recipes converge -c /etc/shop/host.cfg"
    )
    assert rpm_query(box) == "1.0-1" and not box.exists("/etc/shop")
    assert box.exists("/opt/shop/bin/buildout")
    erased = rpm(box, "-e", "shop")
    assert erased.returncode == 0, said(erased)
    assert "no host configuration to remove" in erased.stdout
    assert not box.exists("/opt/shop")


def rpm_dump_differences(first: str, second: str) -> str:
    """The files two package files hold differently, as ``rpm -qp --dump`` lines side by side
    (path, size, mtime, digest, mode, owner, group...), and any header tag that differs."""
    dumps = []
    for path in (first, second):
        lines = rpm_query_file(path, "--dump").splitlines()
        dumps.append({line.rsplit(" ", 10)[0]: line for line in lines})
    report = []
    for name in sorted(set(dumps[0]) | set(dumps[1])):
        one, two = dumps[0].get(name, "(absent)"), dumps[1].get(name, "(absent)")
        if one != two:
            report += [f"- {one}", f"+ {two}"]
    tags = "%{BUILDHOST} %{BUILDTIME} %{SIZE} %{SIGMD5} %{SHA256HEADER}\n"
    one, two = (rpm_query_file(path, "--qf", tags) for path in (first, second))
    if one != two:
        report += [f"- header: {one.strip()}", f"+ header: {two.strip()}"]
    return "\n".join(report) or "(every file and the tags compared are the same)"


@pytest.mark.sandbox
def test_the_same_tarball_gives_the_same_rpm_wherever_and_whenever(releases, tmp_path):
    """The fixture's build (this machine's hostname, TMPDIR and umask, pytest's working
    directory) and one made later in another output and working directory, with another TMPDIR,
    hostname (a UTS namespace) and umask: byte-identical."""
    first = releases.rpm("1.0")
    elsewhere = tmp_path / "elsewhere"
    # a TMPDIR long enough that the staged venv's python passes the kernel's 127-byte shebang
    # line: pip then writes each console script in its /bin/sh form, which install.sh rewrites
    tmpdir = elsewhere / ("tmp-" + "x" * 100)
    tmpdir.mkdir(parents=True)
    hostname = "elsewhere-" + socket.gethostname()[:40]
    current_umask = os.umask(0o022)
    os.umask(current_umask)
    assert current_umask != 0o077 and os.environ.get("TMPDIR") != str(tmpdir)
    time.sleep(1.1)  # another second than the first build's, whatever the cache held
    result = subprocess.run(
        [
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && umask 077 && exec "$@"',
            hostname,
            SYSTEM_RECIPES,
            "rpm",
            releases.tarball("1.0"),
            "-o",
            str(elsewhere / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(elsewhere),
        env={
            **{k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"},
            "TMPDIR": str(tmpdir),
        },
    )
    assert result.returncode == 0, result.stderr
    second = result.stdout.strip()
    assert second == str(elsewhere / "dist" / os.path.basename(first))
    assert sha256(first) == sha256(second), rpm_dump_differences(first, second)
    assert os.listdir(tmpdir) == []  # the private _topdir is gone


# what pip recorded of each file (RECORD) against the file rpm installed, in the installed tree
CHECK_RECORDS = """
import base64, hashlib, importlib.metadata, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
checked, wrong = 0, []
for dist in importlib.metadata.distributions(path=[site]):
    for entry in dist.files or []:
        path = dist.locate_file(entry)
        if entry.hash is None:
            continue
        try:
            data = path.read_bytes()
        except OSError as error:
            wrong.append(f"{dist.metadata['Name']}: {entry}: {error.strerror}")
            continue
        digest = base64.urlsafe_b64encode(hashlib.new(entry.hash.mode, data).digest())
        if digest.rstrip(b"=").decode() != entry.hash.value or len(data) != entry.size:
            wrong.append(f"{dist.metadata['Name']}: {entry}: not as recorded")
        checked += 1
print(checked)
print("\\n".join(wrong))
"""


def check_installed_tree(box: Sandbox) -> None:
    """``rpm -V`` finds every file as packaged, ``pip check`` every requirement met, and every
    RECORD hash matches the installed file."""
    verified = box.run(["rpm", "-V", "--nodeps", "--dbpath", "/var/lib/rpm", "shop"])
    assert (verified.returncode, said(verified)) == (0, "")
    pip = box.run(["/opt/shop/bin/python", "-I", "-m", "pip", "check"])
    assert pip.returncode == 0 and pip.stdout == "No broken requirements found.\n", said(pip)
    records = box.run(["/opt/shop/bin/python", "-I", "-c", CHECK_RECORDS], check=True)
    checked, _, wrong = records.stdout.partition("\n")
    assert wrong.strip() == "" and int(checked) > 1000, records.stdout


def test_the_installed_package_is_as_packaged_before_and_after_the_host_buildout(
    releases, rpm_host
):
    box = rpm_host
    installed = rpm(box, "-i", releases.rpm("1.0"))
    assert installed.returncode == 0, said(installed)
    assert "host configuration not applied" in installed.stdout  # %post ran, wrote nothing
    assert "warning" not in said(installed) and "Traceback" not in said(installed)
    check_installed_tree(box)

    write_host_config(box)
    converged = box.run(["/opt/shop/bin/system-recipes", "converge", "-c", "/etc/shop/host.cfg"])
    assert converged.returncode == 0 and "Traceback" not in said(converged), said(converged)
    assert box.exists("/etc/shop/shop.ini")
    buildout = box.run(["/opt/shop/bin/buildout", "-c", "/etc/shop/host.cfg"], cwd="/")
    assert buildout.returncode == 0 and "Traceback" not in said(buildout), said(buildout)
    check_installed_tree(box)


@pytest.mark.sandbox
def test_release_from_an_application_buildout_ships_its_configuration(releases, tmp_path):
    """PATH may be the application's buildout: its ``develop`` names the project, and its own
    .cfg files and templates travel in the release to PREFIX/buildout for host.cfg to extend."""
    buildout = tmp_path / "app-buildout"
    (buildout / "templates").mkdir(parents=True)
    (buildout / "buildout.cfg").write_text(f"[buildout]\ndevelop = {PROJECT}\nparts =\n")
    (buildout / "shop-role.cfg").write_text("[buildout]\nparts = shop-config\n")
    (buildout / "templates" / "shop.ini.j2").write_text("[server]\nport = {{ port }}\n")
    output = tmp_path / "out"
    output.mkdir()
    result = cli(
        "release",
        str(buildout),
        "-o",
        str(output),
        "--system-recipes",
        releases.wheel,
        "--cache",
        os.path.join(CACHE, "pip"),
    )
    assert result.returncode == 0, result.stderr
    release = unpack(result.stdout.strip(), tmp_path)
    assert os.path.basename(release) == "shop-1.0"
    stage = str(tmp_path / "stage")
    installed = install(release, stage)
    assert installed.returncode == 0, installed.stderr
    shipped = {
        os.path.relpath(os.path.join(d, n), f"{stage}/opt/shop/buildout")
        for d, _, names in os.walk(f"{stage}/opt/shop/buildout")
        for n in names
    }
    assert shipped == {"buildout.cfg", "shop-role.cfg", "templates/shop.ini.j2"}

    (buildout / "buildout.cfg").write_text("[buildout]\nparts =\n")
    assert (
        one_error_line(cli("release", str(buildout), "-o", str(output)))
        == f"Error: [buildout] develop: {buildout}/buildout.cfg develops no project "
        "(expected the application's project directory)"
    )


_names = st.text("abcxyz0129._-", min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))


@settings(max_examples=40, deadline=None)
@given(
    files=st.dictionaries(
        st.lists(_names, min_size=1, max_size=3).map("/".join),
        st.tuples(st.binary(max_size=64), st.sampled_from([0o644, 0o755])),
        max_size=6,
    ),
    epoch=st.integers(min_value=EPOCH, max_value=2**32),
)
def test_archive_is_a_function_of_its_content(files, epoch):
    """Any set of files: the same bytes whatever order they are given in, and they come back."""
    # a path cannot be both a file and a directory
    files = {p: v for p, v in files.items() if not any(o.startswith(p + "/") for o in files)}
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for order in (sorted(files), sorted(files, reverse=True)):
            path = os.path.join(directory, f"{len(paths)}.tar.gz")
            write_archive(path, "top-1.0", {p: files[p] for p in order}, epoch)
            paths.append(path)
        assert sha256(paths[0]) == sha256(paths[1])
        assert sorted(os.listdir(directory)) == ["0.tar.gz", "1.tar.gz"]  # no temporary left
        with tarfile.open(paths[0]) as archive:
            for relative, (data, mode) in files.items():
                member = archive.getmember(f"top-1.0/{relative}")
                assert (member.mode, member.mtime, member.uid) == (mode, epoch, 0)
                assert archive.extractfile(member).read() == data


@pytest.mark.parametrize(
    "epoch, date",
    [
        (EPOCH, "Tue Jan 03 1995"),  # rpm drops pre-1990 dates
        (1700000000, "Tue Nov 14 2023"),
    ],
)
def test_the_changelog_date_is_the_epoch_rpm_and_rpmlint_accept(epoch, date):
    from system_recipes.release.rpm import spec_context

    context = spec_context(
        {"name": "x", "version": "1", "python": "3.12"}, "x-1.tar.gz", "x-1", epoch=epoch
    )
    assert context["changelog_date"] == date and context["epoch"] == epoch
    assert context["requires"] == ["python(abi) = 3.12"]


def test_the_docs_name_the_commands_the_scriptlets_run():
    """docs/release.md's scriptlet table names, for %post and %preun, exactly the commands of
    the installed venv that the packaged spec's scriptlets run (a variable set to PREFIX/bin/...
    is how the spec names each one)."""
    from system_recipes.release.rpm import render_spec, spec_context

    context = spec_context(
        {"name": "shop", "version": "1.0", "python": "3.11"},
        "shop-1.0.tar.gz",
        "shop-1.0",
        epoch=EPOCH,
    )
    spec = render_spec(context)
    with open(os.path.join(REPO, "docs", "release.md"), encoding="utf-8") as stream:
        rows = {
            line.split("|")[1].strip(): line.split("|")[3]
            for line in stream
            if line.startswith("| `%")
        }
    for scriptlet in ("%post", "%preun"):
        body = re.search(rf"^{scriptlet}\n(.*?)\n%", spec, re.M | re.S).group(1)
        runs = {
            f"{command} -c /etc/shop/host.cfg"
            for command in re.findall(r'^\w+="?(/opt/shop/bin/[^"\n]+)"?$', body, re.M)
        }
        assert runs, body
        said = set(
            re.findall(r"`(/opt/shop/bin/[^`]+? -c /etc/shop/host\.cfg)", rows[f"`{scriptlet}`"])
        )
        assert said == runs, scriptlet


def test_post_leaves_the_host_buildout_to_fleet_host_while_it_installs(releases, rpm_host):
    """fleet-host installs every package first and runs the host buildout once after them: an
    RPM's %post that sees its flag (or the variable) writes nothing."""
    box = rpm_host
    write_host_config(box)
    box.run(
        "mkdir -p /run/system-recipes && touch /run/system-recipes/defer-host-buildout", check=True
    )
    installed = rpm(box, "-i", releases.rpm("1.0"))
    assert installed.returncode == 0, said(installed)
    assert "shop: the host buildout is deferred to system-recipes fleet-host" in installed.stdout
    assert "running the host buildout" not in said(installed)
    assert not box.exists("/etc/shop/shop.ini")
    box.run("rm /run/system-recipes/defer-host-buildout", check=True)
    upgraded = box.run(
        [
            "env",
            "SYSTEM_RECIPES_DEFER_BUILDOUT=1",
            "rpm",
            "-U",
            "--nodeps",
            "--dbpath",
            "/var/lib/rpm",
        ]
        + (["--force-debian"] if force_debian() else [])
        + [releases.rpm("2.0")],
        timeout=300,
    )
    assert upgraded.returncode == 0, said(upgraded)
    assert "deferred to system-recipes fleet-host" in upgraded.stdout
    assert not box.exists("/etc/shop/shop.ini")

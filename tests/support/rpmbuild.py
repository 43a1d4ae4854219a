"""Build the example application (tests/example_app) as a real RPM and install it in a sandbox.

Usage from a test module (``tests/`` is on ``sys.path``; conftest.py provides the session
fixture ``example_rpms`` of support/example_fixtures.py: cached builds)::

    from support.rpmbuild import rpm_install, rpm_query
    from support.sandbox import Sandbox

    RPM_OVERLAYS = ("/etc", "/var", "/run", "/opt", "/usr")

    def test_something(example_rpms):
        rpm_1 = example_rpms("1.0")            # path of shop-1.0-1.noarch.rpm, built once
        rpm_2 = example_rpms("2.0", "1")       # per session and (version, release)
        with Sandbox(overlays=RPM_OVERLAYS) as box:
            rpm_install(box, rpm_1)                       # rpm -i --nodeps --dbpath /var/lib/rpm
            assert rpm_query(box, "shop") == "1.0-1"
            rpm_install(box, rpm_2, upgrade=True)         # rpm -U ...

Without the fixture: ``build_example_rpm("1.0", "1", str(tmp_path))`` builds into a directory
of your choosing and returns the ``.rpm`` path.

The package ``shop`` (noarch, no dependencies, no scriptlets) installs::

    /opt/shop/bin/shop-server    the HTTP service; ``--config PATH``, /health -> "OK <version>"
    /opt/shop/bin/shop-cleanup   the cron job; ``[--days N] [--dry-run] DIRECTORY``
    /opt/shop/VERSION            "<version>\\n"

The version is baked into both scripts by the spec's ``%build``. The build is hermetic (its own
``_topdir``, ``_dbpath`` and ``HOME``, so ``~/.rpmmacros`` and ``~/.rpmdb`` are not used; no
network), skips the brp post-install scripts, and is reproducible: fixed SOURCE_DATE_EPOCH,
build host and file mtimes, so two builds of one (version, release) are byte-identical.
The ``.rpm`` must be at a path the sandbox can see: anything under /tmp (pytest's tmp dirs) is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

EXAMPLE_APP = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_app"
)
NAME = "shop"
SOURCES = ("shop-server", "shop-cleanup")
SOURCE_DATE_EPOCH = 1704067200  # 2024-01-01T00:00:00Z
RPM_OVERLAYS = ("/etc", "/var", "/run", "/opt", "/usr")

# rpm forbids '-' in version and release; keep to characters that need no quoting anywhere.
_VALID = re.compile(r"^[A-Za-z0-9._+~^]+$")

SPEC = """\
%define _build_id_links none
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}

Name:           {name}
Version:        {version}
Release:        {release}
Summary:        Example shop service for the system-recipes end-to-end tests
License:        MIT
BuildArch:      noarch
AutoReqProv:    no
Source0:        shop-server
Source1:        shop-cleanup

%description
A tiny HTTP service (shop-server) and its cleanup cron job (shop-cleanup). Software only: the
configuration around it is written by system-recipes.

%prep
%setup -q -c -T -n %{{name}}-%{{version}}

%build
for name in shop-server shop-cleanup; do
    sed 's/@VERSION@/%{{version}}/' %{{_sourcedir}}/$name > $name
done
echo %{{version}} > VERSION
grep -q 'VERSION = "%{{version}}"' shop-server

%install
install -d %{{buildroot}}/opt/shop/bin
install -m 0755 shop-server shop-cleanup %{{buildroot}}/opt/shop/bin/
install -m 0644 VERSION %{{buildroot}}/opt/shop/VERSION

%files
%defattr(-,root,root,-)
%dir /opt/shop
%dir /opt/shop/bin
/opt/shop/bin/shop-server
/opt/shop/bin/shop-cleanup
/opt/shop/VERSION

%changelog
* Mon Jan 01 2024 system-recipes tests <tests@example.invalid> - {version}-{release}
- Example build.
"""


def _check(label: str, value: str) -> None:
    if not _VALID.match(value):
        raise ValueError(f"{label} {value!r}: expected letters, digits and ._+~^ only")


def build_example_rpm(version: str, release: str, outdir: str) -> str:
    """Build ``shop-VERSION-RELEASE.noarch.rpm`` from tests/example_app into ``outdir``.

    Returns the path of the ``.rpm`` (``outdir/shop-VERSION-RELEASE.noarch.rpm``). The private
    rpmbuild tree (``outdir/rpmbuild-VERSION-RELEASE``) is removed after a successful build and
    kept after a failure, whose RuntimeError carries rpmbuild's output.
    """
    _check("version", version)
    _check("release", release)
    outdir = os.path.abspath(outdir)
    topdir = os.path.join(outdir, f"rpmbuild-{version}-{release}")
    if os.path.exists(topdir):
        shutil.rmtree(topdir)
    for sub in ("SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS", "BUILDROOT", "tmp", "home", "db"):
        os.makedirs(os.path.join(topdir, sub))
    for name in SOURCES:
        target = os.path.join(topdir, "SOURCES", name)
        shutil.copyfile(os.path.join(EXAMPLE_APP, name), target)
        os.utime(target, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
    spec = os.path.join(topdir, "SPECS", f"{NAME}.spec")
    with open(spec, "w", encoding="utf-8") as stream:
        stream.write(SPEC.format(name=NAME, version=version, release=release))

    defines = {
        "_topdir": topdir,
        "_dbpath": os.path.join(topdir, "db"),
        "_tmppath": os.path.join(topdir, "tmp"),
        "_buildhost": "system-recipes.invalid",
        "use_source_date_epoch_as_buildtime": "1",
        "clamp_mtime_to_source_date_epoch": "1",
        "_binary_payload": "w9.gzdio",
        "_binary_filedigest_algorithm": "8",  # sha256
    }
    command = ["rpmbuild", "-bb", "--quiet"]
    for key, value in defines.items():
        command += ["--define", f"{key} {value}"]
    command.append(spec)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.path.join(topdir, "home"),
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
    }
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    built = os.path.join(topdir, "RPMS", "noarch", f"{NAME}-{version}-{release}.noarch.rpm")
    if result.returncode or not os.path.exists(built):
        raise RuntimeError(
            f"rpmbuild failed (exit {result.returncode}), tree kept in {topdir}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    target = os.path.join(outdir, os.path.basename(built))
    os.replace(built, target)
    shutil.rmtree(topdir)
    return target


def rpm_install(
    sandbox, rpm_path: str, dbpath: str = "/var/lib/rpm", upgrade: bool = False
) -> subprocess.CompletedProcess:
    """``rpm -i`` (or ``-U`` with ``upgrade=True``) ``--nodeps --dbpath DBPATH`` in ``sandbox``.

    ``sandbox`` is a :class:`sandbox.Sandbox` overlaying at least /var and the directories the
    package writes (/opt; use ``RPM_OVERLAYS``). Debian's rpm needs ``--force-debian`` to
    install; it is added when this rpm knows the option. Raises AssertionError (with rpm's
    output) if rpm fails; returns the CompletedProcess.
    """
    command = ["rpm", "-U" if upgrade else "-i", "--nodeps", "--dbpath", dbpath]
    if force_debian():
        command.append("--force-debian")
    command.append(os.path.abspath(rpm_path))
    sandbox.run(["mkdir", "-p", dbpath], check=True)
    return sandbox.run(command, check=True, timeout=120)


def rpm_query(sandbox, name: str = NAME, dbpath: str = "/var/lib/rpm") -> str | None:
    """``VERSION-RELEASE`` of the installed package ``name`` in ``sandbox``, or None."""
    result = sandbox.run(
        ["rpm", "-q", "--dbpath", dbpath, "--qf", "%{VERSION}-%{RELEASE}", name], timeout=60
    )
    return result.stdout.strip() if result.returncode == 0 else None


def rpm_query_file(rpm_path: str, *args: str) -> str:
    """``rpm -qp ARGS RPM_PATH`` on the host, with a throw-away ``--dbpath`` (without one,
    Debian's rpm creates ``~/.rpmdb`` even for a query of a package file). Returns stdout."""
    with tempfile.TemporaryDirectory(prefix="rpmdb-") as dbpath:
        result = subprocess.run(
            ["rpm", "-qp", "--dbpath", dbpath, *args, rpm_path],
            capture_output=True,
            text=True,
            timeout=60,
        )
    if result.returncode:
        raise AssertionError(
            f"rpm -qp {' '.join(args)} {rpm_path} exited {result.returncode}:"
            f"\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def rpm_files(rpm_path: str) -> list[str]:
    """``rpm -qpl``: the paths the package file installs."""
    return rpm_query_file(rpm_path, "-l").split()


_FORCE_DEBIAN: list[bool] = []


def force_debian() -> bool:
    if not _FORCE_DEBIAN:
        result = subprocess.run(["rpm", "--help"], capture_output=True, text=True, timeout=60)
        _FORCE_DEBIAN.append("--force-debian" in result.stdout)
    return _FORCE_DEBIAN[0]


def install_below_root(root: str, rpm_path: str, dbpath: str = "/var/lib/rpm") -> None:
    """``rpm --root ROOT -i --nodeps --noscripts``: the package's facts in a scratch root's rpm
    database (as root: rpm installs below a root only then); no scriptlet runs."""
    command = ["rpm", "--root", root, "--dbpath", dbpath, "-i", "--nodeps", "--noscripts"]
    if force_debian():
        command.append("--force-debian")
    subprocess.run([*command, rpm_path], check=True, capture_output=True)

"""``system-recipes rpm``: an RPM from a release tarball, whose scriptlets run the host buildout.

The spec is rendered from ``templates/release.spec.j2`` (or ``--template``) and built with
``rpmbuild -bb`` in a private ``_topdir`` (own HOME and rpm database, so neither ``~/.rpmmacros``
nor ``~/.rpmdb`` is read or written). ``%install`` runs the release's ``install.sh --destdir
%{buildroot}``; ``%post`` runs the host buildout through ``PREFIX/bin/system-recipes converge -c
HOST_CONFIG`` on install and upgrade, ``%preun`` on erase runs ``PREFIX/bin/buildout -c
HOST_CONFIG buildout:parts=`` so system-recipes removes what it wrote. The ``.rpm`` appears in
the output directory only when the build succeeded (temporary name, then rename).

Reproducible: one tarball gives one RPM, byte for byte. The build time and every file time are
SOURCE_DATE_EPOCH, by default the release's own (its tarball's member times); the header's
build host is ``localhost``; install.sh leaves no trace of the staging path (docs/release.md).
The venv runs on the Python the release was built for, so the package requires ``python(abi)
= X.Y``.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.render import RenderError, packaged_templates, render
from system_recipes.release.progress import Progress, rpmbuild_step
from system_recipes.release.progress import run as run_watched
from system_recipes.release.tarball import output_directory, source_date_epoch

SPEC_TEMPLATE = "release.spec.j2"
RPM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
RPM_VERSION = re.compile(r"^[A-Za-z0-9._+~^]+$")  # rpm forbids '-' in version and release
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")  # spliced into shell and spec lines unquoted
PYTHON_VERSION = re.compile(r"^\d+\.\d+$")
URL = re.compile(r"^https?://[^\s%]+$")
# The earliest %changelog date: rpm drops an entry dated before 1990 ("bad date in %changelog",
# and the build still succeeds), rpmlint doubts one before 1995 (with a day of slack for time
# zones), and a release's default SOURCE_DATE_EPOCH is 1980 (the earliest a zip can hold).
CHANGELOG_EPOCH = 789091200  # 1995-01-03T00:00:00Z
BUILD_HOST = "localhost"  # in every header: the machine that built it is not part of the RPM


def read_release(tarball: str) -> tuple[dict, str, int]:
    """``release.json`` of a release tarball, the tarball's top directory and its time (the
    SOURCE_DATE_EPOCH it was made with)."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            member = next(
                (
                    m
                    for m in archive.getmembers()
                    if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/release.json")
                ),
                None,
            )
            if member is None:
                raise ConfigError(
                    "rpm",
                    "tarball",
                    f"{tarball} has no release.json",
                    "a tarball from `system-recipes release`",
                )
            stream = archive.extractfile(member)
            assert stream is not None  # a regular member (isfile above) has content
            return json.load(stream), member.name.split("/")[0], int(member.mtime)
    except (OSError, tarfile.TarError, ValueError) as error:
        raise ConfigError(
            "rpm",
            "tarball",
            f"{tarball}: cannot read: {error}",
            "a tarball from `system-recipes release`",
        ) from None


def _check(option: str, value: str, pattern: re.Pattern, expected: str) -> str:
    if not pattern.match(value):
        raise ConfigError("rpm", option, f"{value!r} is not usable", expected)
    return value


def spec_context(
    release: dict,
    tarball: str,
    top: str,
    *,
    epoch: int,
    name=None,
    version=None,
    release_number=None,
    summary=None,
    license=None,
    prefix=None,
    host_config=None,
    python=None,
    requires=None,
    url=None,
) -> dict:
    name = _check("name", name or release["name"], RPM_NAME, "letters, digits and ._+-")
    version = _check(
        "version", version or release["version"], RPM_VERSION, "letters, digits and ._+~^ (no '-')"
    )
    release_number = _check(
        "release",
        release_number or "1",
        RPM_VERSION,
        "letters, digits and ._+~^ (no '-'), e.g. 1 or 2.el9",
    )
    prefix = _check(
        "prefix",
        (prefix or f"/opt/{name}").rstrip("/"),
        PLAIN_PATH,
        "an absolute path of letters, digits and ._+-",
    )
    host_config = _check(
        "host-config",
        host_config or f"/etc/{name}/host.cfg",
        PLAIN_PATH,
        "an absolute path of letters, digits and ._+-",
    )
    python = _check(
        "python",
        python or "/usr/bin/python3",
        PLAIN_PATH,
        "the absolute path of a Python interpreter",
    )
    # install.sh refuses an interpreter of another version than the release's wheels
    abi = _check(
        "python",
        str(release.get("python", "")),
        PYTHON_VERSION,
        "release.json naming the Python version of the release, e.g. 3.11",
    )
    return {
        "name": name,
        "version": version,
        "release": release_number,
        "summary": _one_line("summary", summary or release.get("summary") or name),
        "url": _url(url if url is not None else release.get("url") or ""),
        "license": _one_line("license", license or release.get("license") or "unknown"),
        "requires": [
            _one_line("requires", r)
            for r in (requires if requires is not None else [f"python(abi) = {abi}"])
        ],
        "prefix": prefix,
        "host_config": host_config,
        "python": python,
        "tarball": os.path.basename(tarball),
        "source_directory": top,
        "epoch": epoch,
        "changelog_date": time.strftime("%a %b %d %Y", time.gmtime(max(epoch, CHANGELOG_EPOCH))),
        "release_info": release,
    }


def _url(value: str) -> str:
    if value and not URL.match(value):
        raise ConfigError(
            "rpm", "url", f"{value[:100]!r} is not usable", "an http(s) URL without spaces or %"
        )
    return value


def _one_line(option: str, value: str) -> str:
    value = value.strip()
    if not value or "\n" in value:
        raise ConfigError("rpm", option, f"{value!r} is not usable", "one non-empty line")
    return value.replace("%", "%%")  # a literal percent sign, not a macro


def render_spec(context: dict, template: str | None = None) -> str:
    search = (packaged_templates(),)
    name = SPEC_TEMPLATE
    if template:
        if not os.path.isfile(template):
            raise ConfigError("rpm", "template", f"{template} does not exist", "a spec template")
        search = (os.path.dirname(os.path.abspath(template)),)
        name = os.path.basename(template)
    try:
        return render(name, context, search)
    except RenderError as error:
        raise ConfigError("rpm", "template", f"{name}: {error}") from None


def build_rpm(tarball: str, output: str = ".", *, template: str | None = None, **options) -> str:
    """Build the RPM of ``tarball`` into ``output``; return the ``.rpm`` path."""
    tarball = os.path.abspath(tarball)
    release, top, released = read_release(tarball)
    options["release_number"] = options.pop("release", None)
    epoch = source_date_epoch() if os.environ.get("SOURCE_DATE_EPOCH") else released
    context = spec_context(release, tarball, top, epoch=epoch, **options)
    spec = render_spec(context, template)
    output = output_directory("rpm", output)
    topdir = tempfile.mkdtemp(prefix="system-recipes-rpm-")
    try:
        with Progress("rpm") as progress:
            built = _rpmbuild(topdir, spec, tarball, context, progress)
            progress.step(f"copying {os.path.basename(built)} into {output}")
            return _deliver(built, output)
    finally:
        shutil.rmtree(topdir, ignore_errors=True)


def _deliver(built: str, output: str) -> str:
    """The built package copied into ``output`` under its own name, whole or not at all."""
    target = os.path.join(output, os.path.basename(built))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(built)}.", dir=output)
    os.close(descriptor)
    try:
        shutil.copyfile(built, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return target


def _rpmbuild(topdir: str, spec_text: str, tarball: str, context: dict, progress: Progress) -> str:
    progress.step("rpmbuild: starting")
    for sub in ("SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS", "BUILDROOT", "tmp", "home", "db"):
        os.makedirs(os.path.join(topdir, sub))
    shutil.copyfile(tarball, os.path.join(topdir, "SOURCES", context["tarball"]))
    spec = os.path.join(topdir, "SPECS", f"{context['name']}.spec")
    with open(spec, "w", encoding="utf-8") as stream:
        stream.write(spec_text)
    epoch = context["epoch"]
    defines = {
        "_topdir": topdir,
        "_dbpath": os.path.join(topdir, "db"),
        "_tmppath": os.path.join(topdir, "tmp"),
        # the header's build host, otherwise this machine's name: one tarball, one RPM anywhere
        "_buildhost": BUILD_HOST,
        "use_source_date_epoch_as_buildtime": "1",
        "clamp_mtime_to_source_date_epoch": "1",
        "_binary_payload": "w6.gzdio",
        "_binary_filedigest_algorithm": "8",  # sha256
    }
    command = ["rpmbuild", "-bb"]
    for key, value in defines.items():
        command += ["--define", f"{key} {value}"]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.path.join(topdir, "home"),
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    try:
        result = run_watched(
            command + [spec],
            progress,
            rpmbuild_step,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=900,
            # nothing of the caller's working directory or umask: the payload is written by the
            # scriptlets, which set umask 022 themselves (a build under umask 077 gives the same
            # bytes); rpmbuild itself then runs with the same umask too
            cwd=topdir,
            umask=0o022,
        )
    except FileNotFoundError:
        raise ConfigError(
            "rpm",
            "rpmbuild",
            "rpmbuild is not installed",
            "rpmbuild on PATH (the rpm-build package)",
        ) from None
    built = glob.glob(os.path.join(topdir, "RPMS", "*", "*.rpm"))
    if result.returncode or len(built) != 1:
        raise ConfigError("rpm", "rpmbuild", f"the build failed: {_rpmbuild_error(result)}")
    return built[0]


def _rpmbuild_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    for prefix in ("install.sh:", "error: line", "error:"):
        found = [
            line
            for line in lines
            if line.startswith(prefix) and not line.startswith("error: Bad exit status")
        ]
        if found:
            return found[0]
    return lines[-1] if lines else f"rpmbuild exited {result.returncode}"

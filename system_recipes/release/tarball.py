"""``system-recipes release``: a self-contained, reproducible source release.

``NAME-VERSION.tar.gz`` holds one directory ``NAME-VERSION/``::

    install.sh         installs with no network into PREFIX through a staging root (--destdir)
    requirements.txt   every distribution pinned by version and sha256 (pip --require-hashes)
    release.json       name, version, summary, license, Python, console scripts, distributions
    dists/*.whl        the application, its dependencies, zc.buildout, system-recipes, pip
    buildout/          the application buildout's *.cfg and templates/, when PATH was one

The archive is byte-identical for the same input: entries sorted, owner root (0/0), every mtime
SOURCE_DATE_EPOCH (default 1980-01-01), modes 0755/0644, PAX format, gzip header without name
or time. It is written under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from importlib.metadata import version as installed_version

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.render import RenderError, packaged_templates, render
from system_recipes.release import dists as dist_tools
from system_recipes.release.progress import Progress
from system_recipes.release.project import Project, canonical, check_version, load

DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip (wheel) can hold
INSTALL_TEMPLATE = "release-install.sh.j2"


def source_date_epoch() -> int:
    text = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not text:
        return DEFAULT_EPOCH
    if not text.isdigit() or int(text) < DEFAULT_EPOCH:
        raise ConfigError(
            "release",
            "SOURCE_DATE_EPOCH",
            f"{text!r} is not usable",
            f"seconds since 1970, at least {DEFAULT_EPOCH} (zip's earliest time)",
        )
    return int(text)


def output_directory(command: str, output: str) -> str:
    """``-o DIR``, created (with its parents) when it does not exist yet, as ``dist/`` usually
    does not on a fresh checkout; checked last, so bad input creates nothing."""
    output = os.path.abspath(output)
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            command,
            "output",
            f"{output}: {error.strerror}",
            "a directory, or a path where one can be created",
        ) from None
    return output


def build_release(
    path: str,
    output: str = ".",
    *,
    find_links: list[str] | None = None,
    offline: bool = False,
    system_recipes: str | None = None,
    cache: str | None = None,
) -> str:
    """Build ``OUTPUT/NAME-VERSION.tar.gz`` from the project or buildout at ``path``; return it."""
    project = load(path)
    epoch = source_date_epoch()
    if system_recipes and not os.path.exists(system_recipes):
        raise ConfigError(
            "release",
            "system-recipes",
            f"{system_recipes} does not exist",
            "a system-recipes checkout or wheel",
        )
    output = output_directory("release", output)
    work = tempfile.mkdtemp(prefix="system-recipes-release-")
    try:
        with Progress("release") as progress:
            return _build(
                project,
                output,
                work,
                find_links or [],
                offline,
                system_recipes or dist_tools.system_recipes_source(),
                cache,
                epoch,
                progress,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build(
    project: Project,
    output: str,
    work: str,
    find_links: list[str],
    offline: bool,
    system_recipes: str,
    cache: str | None,
    epoch: int,
    progress: Progress,
) -> str:
    progress.step("copying the sources to build from")
    sources = os.path.join(work, "src")
    application = dist_tools.copy_source(project.directory, os.path.join(sources, "application"))
    origins = {application: project.directory}
    if os.path.isdir(system_recipes):
        copy = dist_tools.copy_system_recipes(
            system_recipes, os.path.join(sources, "system-recipes")
        )
        origins[copy], system_recipes = system_recipes, copy
    dists_dir = os.path.join(work, "dists")
    os.makedirs(dists_dir)
    requirements = [
        application,
        system_recipes,
        f"zc.buildout=={installed_version('zc.buildout')}",
        "pip",
    ]
    dist_tools.build_wheels(
        requirements,
        dists_dir,
        find_links=find_links,
        offline=offline,
        cache=cache,
        epoch=epoch,
        origins=origins,
        progress=progress,
    )
    dists = dist_tools.inventory(dists_dir)
    app = dist_tools.find(dists, project.name)
    meta = dist_tools.wheel_metadata(os.path.join(dists_dir, app.filename))
    check_version(meta.version)
    if project.version is not None and meta.version != project.version:
        raise ConfigError(
            "project",
            "version",
            f"{project.version!r} builds as {meta.version!r}",
            "the version in its normalized form",
        )
    dist_tools.find(dists, "system-recipes")
    pip = dist_tools.find(dists, "pip")

    name = canonical(meta.name)
    top = f"{name}-{meta.version}"
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    release = {
        "name": name,
        "version": meta.version,
        "summary": meta.summary,
        "license": meta.license,
        "url": meta.url,
        "python": python,
        "requires_python": meta.requires_python,
        "scripts": list(meta.scripts),
        "distributions": [
            {"file": d.filename, "name": d.name, "version": d.version, "sha256": d.sha256}
            for d in dists
        ],
        "buildout": project.buildout is not None,
    }
    try:
        install = render(
            INSTALL_TEMPLATE,
            {
                "name": name,
                "version": meta.version,
                "python": python,
                "python_tuple": f"{sys.version_info[0]}, {sys.version_info[1]}",
                "pip_wheel": pip.filename,
                "pip_sha256": pip.sha256,
            },
            (packaged_templates(),),
        )
    except RenderError as error:
        raise ConfigError("release", "template", f"{INSTALL_TEMPLATE}: {error}") from None

    files: dict[str, tuple[bytes | str, int]] = {
        "install.sh": (install.encode(), 0o755),
        "requirements.txt": (dist_tools.requirements_text(dists).encode(), 0o644),
        "release.json": ((json.dumps(release, indent=2, sort_keys=True) + "\n").encode(), 0o644),
    }
    for dist in dists:
        files[f"dists/{dist.filename}"] = (os.path.join(dists_dir, dist.filename), 0o644)
    if project.buildout:
        files.update(_buildout_files(project.buildout))
    target = os.path.join(output, f"{top}.tar.gz")
    progress.step(f"writing {top}.tar.gz")
    write_archive(target, top, files, epoch)
    return target


def _buildout_files(directory: str) -> dict[str, tuple[str, int]]:
    """The application buildout's own configuration: *.cfg and templates/ beside it."""
    found = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".cfg") and os.path.isfile(os.path.join(directory, name)):
            found[f"buildout/{name}"] = (os.path.join(directory, name), 0o644)
    templates = os.path.join(directory, "templates")
    for dirpath, dirnames, filenames in os.walk(templates):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            found["buildout/" + os.path.relpath(full, directory)] = (full, 0o644)
    return found


def write_archive(
    target: str, top: str, files: dict[str, tuple[bytes | str, int]], epoch: int
) -> None:
    """A reproducible .tar.gz of ``files`` ({relative path: (bytes or source path, mode)}) under
    ``top/``, written to a temporary name in the same directory and renamed at the end."""
    directories = {top}
    for relative in files:
        parts = relative.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directories.add(top + "/" + "/".join(parts[:depth]))
    entries = sorted(
        [(d, None, 0o755) for d in directories]
        + [(f"{top}/{rel}", content, mode) for rel, (content, mode) in files.items()]
    )
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", dir=os.path.dirname(target)
    )
    try:
        with (
            os.fdopen(descriptor, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
        ):
            for name, content, mode in entries:
                info = tarfile.TarInfo(name)
                info.mtime, info.mode = epoch, mode
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if content is None:
                    info.type = tarfile.DIRTYPE
                    archive.addfile(info)
                    continue
                data = content if isinstance(content, bytes) else _read(content)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()

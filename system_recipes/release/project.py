"""What a release is made from: a Python project (pyproject.toml), or an application buildout
whose ``[buildout] develop`` names one. Checked before anything is built."""

from __future__ import annotations

import configparser
import os
import re
import tomllib
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from system_recipes.core.declare.errors import ConfigError, shown

VERSION_EXPECTED = "a version such as 1.0, 2.1.3 or 2.0rc1 (PEP 440, no '-')"
NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Project:
    directory: str  # where pyproject.toml is
    name: str
    version: str | None  # None when the version is dynamic: read from the built wheel
    buildout: str | None = None  # the application buildout directory, if PATH was one


def check_version(version: str, section: str = "project", option: str = "version") -> str:
    """``version`` when it is a PEP 440 version in its normalized form, as packaging (and so pip
    and setuptools) writes it: a version they would write otherwise is refused rather than
    silently changed, which also keeps out the '-' rpm forbids; and no epoch, which no rpm
    version can hold."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise ConfigError(
            section, option, f"{shown(version)} is not a release version", VERSION_EXPECTED
        ) from None
    if parsed.epoch:
        problem = f"{shown(version)} is not a release version: it has an epoch"
        raise ConfigError(section, option, problem, VERSION_EXPECTED)
    if str(parsed) != version:
        problem = f"{shown(version)} is not a release version: it builds as {shown(str(parsed))}"
        raise ConfigError(section, option, problem, VERSION_EXPECTED)
    return version


def canonical(name: str) -> str:
    """PEP 503 normalized name: how wheel file names and indexes spell a distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load(path: str) -> Project:
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise ConfigError(
            "release",
            "path",
            f"{path} is not a directory",
            "a Python project or an application buildout directory",
        )
    buildout = None
    if not os.path.exists(os.path.join(path, "pyproject.toml")):
        if not os.path.exists(os.path.join(path, "buildout.cfg")):
            raise ConfigError(
                "release",
                "path",
                f"{path} has no pyproject.toml or buildout.cfg",
                "a Python project or an application buildout directory",
            )
        buildout, path = path, _developed(path)
    return _read_pyproject(path, buildout)


def _developed(buildout: str) -> str:
    """The project an application buildout develops: the first ``[buildout] develop`` entry."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(os.path.join(buildout, "buildout.cfg"), encoding="utf-8")
    except configparser.Error as error:
        raise ConfigError(
            "release",
            "path",
            f"{buildout}/buildout.cfg: {error}".splitlines()[0],
            "an application buildout",
        ) from None
    develop = parser.get("buildout", "develop", fallback="").split()
    if not develop:
        raise ConfigError(
            "buildout",
            "develop",
            f"{buildout}/buildout.cfg develops no project",
            "the application's project directory",
        )
    project = os.path.normpath(os.path.join(buildout, develop[0]))
    if not os.path.exists(os.path.join(project, "pyproject.toml")):
        raise ConfigError(
            "buildout", "develop", f"{project} has no pyproject.toml", "a Python project directory"
        )
    return project


def _read_pyproject(directory: str, buildout: str | None) -> Project:
    where = os.path.join(directory, "pyproject.toml")
    try:
        with open(where, "rb") as stream:
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            "release", "path", f"{where}: invalid TOML: {error}", "a pyproject.toml"
        ) from None
    project = data.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise ConfigError(
            "project", "name", f"{where} names no project", "a [project] table with a name"
        )
    name = project["name"]
    if not NAME.match(name):
        raise ConfigError(
            "project", "name", f"{name!r} is not a distribution name", "letters, digits and ._-"
        )
    version = project.get("version")
    if version is None:
        if "version" not in project.get("dynamic", []):
            raise ConfigError(
                "project",
                "version",
                f"{where} has no version",
                'version = "1.0" or a dynamic version',
            )
    else:
        check_version(str(version))
    return Project(directory, name, None if version is None else str(version), buildout)

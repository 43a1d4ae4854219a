"""The example project (tests/example_app/project) copied at another version."""

from __future__ import annotations

import os
import shutil

from support.paths import REPO

PROJECT = os.path.join(REPO, "tests", "example_app", "project")


def project_copy(target: str, version: str, dependency: str | None = None) -> str:
    """The example project with another version (symbolic links resolved into files)."""
    shutil.copytree(PROJECT, target, symlinks=False)
    path = os.path.join(target, "pyproject.toml")
    with open(path) as stream:
        text = stream.read()
    text = text.replace('version = "1.0"', f'version = "{version}"')
    if dependency:
        text = text.replace('dependencies = ["packaging>=23"]', f'dependencies = ["{dependency}"]')
    with open(path, "w") as stream:
        stream.write(text)
    return target

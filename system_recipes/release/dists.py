"""Every distribution a release needs, as wheels with sha256 hashes.

``pip wheel`` resolves the application, system-recipes (so the installed prefix can run the
host buildout) and zc.buildout (pinned to the version running here) through the configured
index, or only ``--find-links`` directories when offline. Wheels from the index are copied
as they are; local projects and sdists are built with SOURCE_DATE_EPOCH set, which the wheel
builder uses for every member's time, so the same input gives the same bytes.
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from system_recipes.core.declare.errors import ConfigError
from system_recipes.release.progress import Progress, pip_wheel_step
from system_recipes.release.progress import run as run_watched
from system_recipes.release.project import canonical

# What a build leaves in a source tree; never copied into the private build copy.
BUILD_LEFTOVERS = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".tox",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "demo-root",
)


@dataclass(frozen=True)
class Dist:
    filename: str
    name: str  # canonical
    version: str
    sha256: str


@dataclass(frozen=True)
class Metadata:
    name: str
    version: str
    summary: str
    license: str
    requires_python: str
    scripts: tuple[str, ...]
    url: str = ""  # Home-page, else the first Project-URL


def system_recipes_source() -> str:
    """The system-recipes to ship: this installation's source tree (editable install or checkout)."""
    dist = importlib.metadata.distribution("system-recipes")
    direct = dist.read_text("direct_url.json")
    if direct:
        url = json.loads(direct).get("url", "")
        if url.startswith("file://") and os.path.isdir(unquote(urlparse(url).path)):
            return unquote(urlparse(url).path)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkout = os.path.dirname(package)
    if os.path.exists(os.path.join(checkout, "setup.cfg")):
        return checkout
    raise ConfigError(
        "release",
        "system-recipes",
        "cannot find the system-recipes source tree",
        "--system-recipes PATH (a checkout or a wheel)",
    )


def copy_source(source: str, target: str) -> str:
    """A private copy to build from: building in place would leave build/ and *.egg-info in the
    project (pip builds local projects in their tree), and symlinks are followed."""
    shutil.copytree(source, target, ignore=BUILD_LEFTOVERS, symlinks=False)
    return target


def copy_system_recipes(source: str, target: str) -> str:
    """Only what system-recipes' own build reads: the top-level files (setup.cfg, pyproject.toml,
    README.md, LICENSE...), the package, the templates and the profiles; a checkout also holds
    benchmarks and scratch trees that have no place in a wheel and would make every release
    slow."""
    os.makedirs(target)
    for name in sorted(os.listdir(source)):
        full = os.path.join(source, name)
        if os.path.isfile(full):
            shutil.copy2(full, os.path.join(target, name))
        elif name in ("system_recipes", "templates", "profiles"):
            shutil.copytree(full, os.path.join(target, name), ignore=BUILD_LEFTOVERS)
    return target


def build_wheels(
    requirements: list[str],
    dists: str,
    *,
    find_links: list[str],
    offline: bool,
    cache: str | None,
    epoch: int,
    origins: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> None:
    """``pip wheel`` every requirement into ``dists``. ``origins`` maps the private copies
    being built back to the directories the operator named, for error messages; ``progress``
    shows the distribution pip is at, on a terminal."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--wheel-dir",
        dists,
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "--no-input",
    ]
    for directory in find_links:
        command += ["--find-links", os.path.abspath(directory)]
    if offline:
        command.append("--no-index")
    if cache:
        command += ["--cache-dir", os.path.abspath(cache)]
    env = dict(
        os.environ, SOURCE_DATE_EPOCH=str(epoch), PYTHONHASHSEED="0", LC_ALL="C.UTF-8", TZ="UTC"
    )
    progress = progress or Progress("release", enabled=False)
    progress.step("pip wheel: resolving the distributions")
    result = run_watched(
        command + requirements,
        progress,
        pip_wheel_step,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    if result.returncode:
        problem = pip_error(result.stdout + result.stderr)
        for copy, origin in (origins or {}).items():
            problem = problem.replace(copy, origin)
        if " does not build: " in problem:
            raise ConfigError("release", "path", problem, "a project that `pip wheel` builds")
        raise ConfigError(
            "release",
            "distributions",
            problem,
            "every distribution from the index or --find-links"
            if not offline
            else "every distribution in --find-links when offline",
        )


def pip_error(output: str) -> str:
    """pip's output boiled down to the line that says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR: No matching distribution found for"):
            return line[len("ERROR: ") :]
    errors = [line for line in lines if line.startswith("ERROR:") and "ignored" not in line]
    if any(
        "subprocess-exited-with-error" in line or "did not run successfully" in line
        for line in lines
    ):
        # a build backend failed: its last own words before pip's notes say why
        backend = [
            line
            for line in lines
            if not line.startswith(
                (
                    "note:",
                    "hint:",
                    "ERROR:",
                    "╰─>",
                    "×",
                    "│",
                    "error: subprocess",
                    "[end of output]",
                    "WARNING:",
                    "See above",
                )
            )
            and not line.startswith(
                (
                    "Processing",
                    "Building",
                    "Collecting",
                    "Installing",
                    "Getting requirements",
                    "Preparing",
                    "Saved",
                    "Looking in",
                    "Created wheel",
                    "Stored in",
                )
            )
        ]
        reason = backend[-1] if backend else "the build backend failed"
        project = next(
            (m.group(1) for line in lines for m in [re.search(r"Processing (\S+)", line)] if m),
            "a project",
        )
        return f"{project} does not build: {reason}"
    if errors:
        return errors[-1][len("ERROR: ") :]
    return lines[-1] if lines else "pip wheel failed"


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def inventory(dists: str) -> list[Dist]:
    found = []
    for filename in sorted(os.listdir(dists)):
        if not filename.endswith(".whl"):
            raise ConfigError(
                "release", "distributions", f"{filename} is not a wheel", "wheels only"
            )
        name, version = filename.split("-")[:2]
        found.append(
            Dist(filename, canonical(name), version, digest(os.path.join(dists, filename)))
        )
    return found


def wheel_metadata(path: str) -> Metadata:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        info = next(n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        message = email.parser.BytesParser().parsebytes(archive.read(info))
        entry_points = info.replace("METADATA", "entry_points.txt")
        scripts: list[str] = []
        if entry_points in names:
            section = None
            for line in archive.read(entry_points).decode().splitlines():
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                elif section == "console_scripts" and "=" in line:
                    scripts.append(line.split("=", 1)[0].strip())
    license_text = message.get("License-Expression") or message.get("License") or "unknown"
    urls = [message.get("Home-page") or ""] + [
        u.partition(",")[2] for u in message.get_all("Project-URL") or []
    ]
    return Metadata(
        message["Name"],
        message["Version"],
        (message.get("Summary") or message["Name"]).strip(),
        license_text.strip().splitlines()[0],
        message.get("Requires-Python") or "",
        tuple(sorted(scripts)),
        next((u.strip() for u in urls if u.strip()), ""),
    )


def find(dists: list[Dist], name: str) -> Dist:
    for dist in dists:
        if dist.name == canonical(name):
            return dist
    raise ConfigError(
        "release",
        "distributions",
        f"no wheel of {name} was built",
        f"{name} among the resolved distributions",
    )


def requirements_text(dists: list[Dist]) -> str:
    """A pip requirements file that pins every wheel by version and sha256 (--require-hashes)."""
    lines = []
    for dist in sorted(dists, key=lambda d: d.name):
        lines.append(f"{dist.name}=={dist.version} \\\n    --hash=sha256:{dist.sha256}")
    return "\n".join(lines) + "\n"

"""Virtualenvs of the benchmark, outside the checkout: system-recipes installed (not editable)
from this checkout, the peers, matplotlib for the plot."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from converge_work import BENCH, REPO

VENVS = os.path.join(BENCH, ".venvs")
#: peers: venv name, pip packages, executable inside the venv, largest N by default
#: (pinned: the versions this benchmark was last run with on Python 3.11)
PEERS = {
    "salt": ("salt", ["salt==3007.16"], "salt-call", 1000),
    "pyinfra": ("pyinfra", ["pyinfra==3.10.0"], "pyinfra", 1000),
    "ansible": ("ansible", ["ansible-core==2.19.14"], "ansible-playbook", 100),
}
PLOT_VENV = ("plot", ["matplotlib==3.11.2"], "python")


def make_venvs_link() -> None:
    """bench/.venvs is a symlink to a directory outside the checkout: buildout hashes every
    file below an editable (develop) install's location on every run (zc.buildout
    _dir_hash), so tens of thousands of venv files inside the checkout would slow down
    every buildout run of the project, the one measured here included."""
    if os.path.isdir(VENVS):
        return
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    outside = os.path.join(cache, "system-recipes-bench", "venvs")
    os.makedirs(outside, exist_ok=True)
    if os.path.islink(VENVS):
        os.unlink(VENVS)  # dangling
    os.symlink(outside, VENVS)


def ensure_venv(name: str, packages: list[str], executable: str) -> tuple[str | None, str]:
    """bench/.venvs/NAME with ``packages``, created on demand; (path of executable, problem)."""
    directory = os.path.join(VENVS, name)
    target = os.path.join(directory, "bin", executable)
    if os.path.exists(target):
        return target, ""
    make_venvs_link()
    log = os.path.join(VENVS, name + ".log")
    print(
        f"bench: installing {' '.join(packages)} into bench/.venvs/{name} (log: {log})", flush=True
    )
    with open(log, "w") as stream:
        steps = [
            [sys.executable, "-m", "venv", "--clear", directory],
            [os.path.join(directory, "bin", "pip"), "install", "-q", *packages],
        ]
        for step in steps:
            if subprocess.run(step, stdout=stream, stderr=subprocess.STDOUT).returncode:
                return None, f"install failed (see {os.path.relpath(log, REPO)})"
    if not os.path.exists(target):
        return None, f"installed, but {executable} is missing"
    return target, ""


def installed_copy() -> str:
    """The bin directory of a venv with system-recipes *installed* (not editable), as an
    operator's host has it: buildout hashes every file of an editable install's checkout on
    every run, which is not what an operator pays. Rebuilt when the source changes."""
    digest = hashlib.sha256()
    sources = ["setup.cfg", "pyproject.toml", "README.md", "LICENSE"]
    # every directory setup.cfg's packages come from (package_dir: templates, profiles)
    for top in ("system_recipes", "templates", "profiles"):
        for directory, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            sources += [
                os.path.relpath(os.path.join(directory, f), REPO)
                for f in sorted(files)
                if not f.endswith(".pyc")
            ]
    for name in sources:
        digest.update(name.encode())
        with open(os.path.join(REPO, name), "rb") as stream:
            digest.update(stream.read())
    name = "system-recipes-" + digest.hexdigest()[:12]
    bin_dir = os.path.join(VENVS, name, "bin")
    if os.path.exists(os.path.join(bin_dir, "buildout")):
        return bin_dir
    make_venvs_link()
    with tempfile.TemporaryDirectory(prefix="bench-src-") as copy:
        for source in sources:
            os.makedirs(os.path.dirname(os.path.join(copy, source)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, source), os.path.join(copy, source))
        target, problem = ensure_venv(name, [copy], "buildout")
    if target is None:
        raise SystemExit(f"bench: cannot install system-recipes into a bench venv: {problem}")
    return bin_dir


def plot(csv_path: str, script: str = "plot.py") -> str:
    """``script`` (bench/plot.py, bench/fleet_plot.py) draws the CSV in the plot venv."""
    python, problem = ensure_venv(*PLOT_VENV)
    if python is None:
        return f"no plot: matplotlib {problem}"
    png = csv_path[:-4] + ".png"
    result = subprocess.run(
        [python, os.path.join(BENCH, script), csv_path, png], capture_output=True, text=True
    )
    if result.returncode:
        return f"no plot: {(result.stderr.strip().splitlines() or ['plot failed'])[-1]}"
    return f"plot: {os.path.relpath(png)}"

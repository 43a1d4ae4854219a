"""The distribution: templates ship as package data and are found from an installed copy."""

import glob
import os
import re
import subprocess
import sys
import zipfile

from support.paths import REPO

from system_recipes.release.dists import copy_system_recipes


def test_wheel_carries_templates_and_finds_them(tmp_path):
    # built from a copy: a build in the checkout leaves build/ and an egg-info there, which
    # later release builds then take (they missed profiles/base.cfg)
    source = copy_system_recipes(REPO, str(tmp_path / "source"))
    probe = os.path.join(source, "templates", "sr-packaging-probe.j2")
    with open(probe, "w") as stream:
        stream.write("probe {{ value }}\n")
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
            str(tmp_path / "dist"),
            source,
        ],
        check=True,
        capture_output=True,
    )
    wheel = glob.glob(str(tmp_path / "dist" / "system_recipes-*.whl"))[0]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    assert "system_recipes/templates/sr-packaging-probe.j2" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    # the profiles a host.cfg extends, and the license setup.cfg names
    assert {
        "system_recipes/profiles/base.cfg",
        "system_recipes/profiles/roles/app-server.cfg",
        "system_recipes/profiles/templates/shop.ini.j2",
    } <= set(names)
    assert not [n for n in names if n.startswith("system_recipes/profiles/hosts/")]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        metadata_text = archive.read(metadata).decode()
    assert "License-File: LICENSE" in metadata_text
    # release/project.py parses versions with packaging: declared, not there by accident
    assert re.search(r"^Requires-Dist: packaging>=", metadata_text, re.M), metadata_text
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from system_recipes.core.declare.render import packaged_templates;print(packaged_templates())",
        ],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert found == str(tmp_path / "site" / "system_recipes" / "templates")

"""The README's demo profile, run into a scratch root."""

import os
import subprocess

import pytest
from support.host import make_scratch_root
from support.paths import BUILDOUT, REPO


@pytest.mark.sandbox
def test_demo_profile_writes_its_tree(tmp_path):
    root = make_scratch_root(str(tmp_path / "root"))
    result = subprocess.run(
        [
            BUILDOUT,
            "-c",
            os.path.join(REPO, "profiles", "hosts", "demo.cfg"),
            f"system-recipes:root={root}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(os.path.join(root, "etc/demo/demo.ini")) as stream:
        assert "log-file = /var/log/demo/demo.log" in stream.read()
    assert "skipped" not in result.stdout or "root is" in result.stdout
    assert os.path.isdir(os.path.join(root, "var/lib/demo"))
    # one service section: its supervisor program, log rotation and cron job too
    for path in ("etc/supervisor/conf.d/demo.conf", "etc/logrotate.d/demo", "etc/cron.d/demo"):
        assert os.path.isfile(os.path.join(root, path)), path
    with open(os.path.join(root, "etc/supervisor/conf.d/demo.conf")) as stream:
        assert (
            "command = /usr/bin/python3 -m http.server --directory /var/lib/demo 8080"
            in stream.read()
        )

"""`system-recipes fleet export ansible` of a test's System (support/fleet_scenarios.py) and the
exported playbook run on the test hosts: ``export`` writes the project, ``playbook`` runs
ansible-playbook site.yml through the hosts' ssh_config, ``recap`` reads its PLAY RECAP."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from support.paths import BIN, SYSTEM_RECIPES

#: the four hosts of the System, as the playbook's recap names them
HOSTS = ("host1", "host2", "host3", "host4")


def export(system, directory, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            SYSTEM_RECIPES,
            "fleet",
            "export",
            "ansible",
            "-m",
            system.model,
            "--profiles",
            system.profiles,
            "--entry-point",
            system.fleet.entry_point,
            "--ansible-pull",
            os.path.join(BIN, "ansible-pull"),
            str(directory),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def playbook(system, directory, *extra: str) -> subprocess.CompletedProcess:
    """ansible-playbook site.yml in the export, through the test hosts' ssh_config (its key,
    user root); ansible's own files in a directory of the test's."""
    home = tempfile.mkdtemp(prefix="sra-")  # short: the control sockets live there
    env = {
        **os.environ,
        "ANSIBLE_HOME": home,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": home,
        "ANSIBLE_NOCOLOR": "1",
    }
    try:
        return subprocess.run(
            [
                os.path.join(BIN, "ansible-playbook"),
                "site.yml",
                "-e",
                f"ansible_ssh_extra_args='-F {system.fleet.ssh_config}'",
                *extra,
            ],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run(["rm", "-rf", home])


def recap(result) -> dict[str, dict[str, int]]:
    """host -> its PLAY RECAP counters."""
    found = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(host\d)\s+: (.*)$", line)
        if match:
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return found

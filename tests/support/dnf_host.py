"""dnf as a test host's package manager, with a repository of the example RPMs.

dnf is Debian's own (python3-dnf; the entry script is the one Debian's ``dnf`` package installs
as /usr/bin/dnf), placed in the host's private /usr/local/sbin only -- installed on the machine,
it would make every test host a dnf host. rpm reads the database in /var/lib/rpm (the roles'
``dbpath``; Debian's rpm defaults to ~/.rpmdb); the repository is made by createrepo_c.
"""

from __future__ import annotations

import os
import shutil
import subprocess

DNF = (
    "#!/usr/bin/python3\nimport sys\nfrom dnf.cli import main\n"
    "main.user_main(sys.argv[1:], exit_code=True)\n"
)


def example_repository(example_rpms, directory, versions=("1.0",)) -> str:
    """A dnf repository of the example RPMs of ``versions`` in ``directory`` (made readable:
    dnf reads it as root from inside the hosts)."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    for version in versions:
        shutil.copy(example_rpms(version), directory)
    subprocess.run(["createrepo_c", "-q", directory], check=True)
    os.chmod(directory, 0o755)
    os.chmod(os.path.dirname(directory), 0o755)
    return directory


def install_dnf(host, repository: str) -> None:
    """dnf on ``host`` (found first on root's PATH), its repository ``repository``."""
    host.run(
        "mount -t tmpfs -o mode=0755 dnf /usr/local/sbin && "
        f"printf '%s' '{DNF}' > /usr/local/sbin/dnf && chmod 0755 /usr/local/sbin/dnf && "
        "mkdir -p /etc/rpm /etc/dnf/vars /etc/yum.repos.d /var/lib/rpm && "
        "echo '%_dbpath /var/lib/rpm' > /etc/rpm/macros && rpm --initdb && "
        "echo 12 > /etc/dnf/vars/releasever && "
        "printf '[main]\\ngpgcheck=0\\nbest=True\\n' > /etc/dnf/dnf.conf && "
        f"printf '[shop]\\nname=shop\\nbaseurl=file://{repository}\\ngpgcheck=0\\n' "
        "> /etc/yum.repos.d/shop.repo"
    )

"""The small fleet system of the fleet tests, on the test hosts of support/fleet_hosts.py: three
roles (a database, an app linking to it, a load balancer linking to the app), each writing one
file from a template, and a model placing them on four hosts; :class:`System` writes both into
a directory of a test's and runs ``system-recipes fleet ACTION`` on it. ``lines`` and ``states``
read a fleet command's output, ``tree`` lists a host's /etc and /var/lib."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from support.paths import REPO, SYSTEM_RECIPES

# Three roles: a database, an app linking to it, a load balancer linking to the app. Each writes
# one file from a template and has one NRPE check (the file is there and not empty).
ROLES = {
    "db": """\
[buildout]
parts = db db-config db-nrpe

[db]
recipe = system_recipes:deployment

[db-config]
recipe = system_recipes:template
path = ${db:etc-directory}/db.ini
text =
    [db]
    port = {{ port }}
    size = {{ size }}
port = 1
size = small

[db-nrpe]
recipe = system_recipes:nrpe
checks =
    check_db_config /usr/bin/test -s ${db-config:path}
""",
    "app": """\
[buildout]
parts = app app-config app-nrpe

[app]
recipe = system_recipes:deployment

[app-config]
recipe = system_recipes:template
path = ${app:etc-directory}/app.ini
text =
    [app]
    port = {{ port }}
    db = {{ db_host }}:{{ db_port }}
    greeting = {{ greeting }}
port = 1
db-host = none
db-port = 0
greeting = hello

[app-nrpe]
recipe = system_recipes:nrpe
checks =
    check_app_config /usr/bin/test -s ${app-config:path}
    check_app_healthy /usr/bin/test ! -e /etc/app-broken
""",
    "lb": """\
[buildout]
parts = lb lb-config

[lb]
recipe = system_recipes:deployment

[lb-config]
recipe = system_recipes:template
path = ${lb:etc-directory}/lb.ini
text =
    [lb]
    port = {{ port }}
    backends = {{ app_host }} port {{ app_port }}
port = 1
app-host = none
app-port = 0
""",
}

MODEL = """\
[system]
name = "{name}"
profiles = "{profiles}"
port-range = "21000-21099"

[hosts.host1]
address = "{host1}"
tags = ["db"]
memory = "1G"

[hosts.host2]
address = "{host2}"
tags = ["app"]
memory = "1G"

[hosts.host3]
address = "{host3}"
tags = ["app"]
memory = "1G"

[hosts.host4]
address = "{host4}"
tags = ["lb"]
memory = "1G"

[services.db]
role = "roles/db.cfg"
port = 5400
port-option = "db-config:port"
placement = {{ tags = ["db"] }}

[services.app]
role = "roles/app.cfg"
instances = 2
port = "auto"
port-option = "app-config:port"
links = ["db"]
placement = {{ tags = ["app"] }}

[services.lb]
role = "roles/lb.cfg"
port = 8080
port-option = "lb-config:port"
links = ["app"]
placement = {{ tags = ["lb"] }}
"""


class System:
    """A model of the test hosts in a directory of its own, and the fleet commands on it."""

    def __init__(self, directory, fleet, name: str, extra: str = ""):
        self.directory, self.fleet, self.name = str(directory), fleet, name
        self.profiles = os.path.join(self.directory, "profiles")
        os.makedirs(os.path.join(self.profiles, "roles"))
        shutil.copy(os.path.join(REPO, "profiles", "base.cfg"), self.profiles)
        for role, text in ROLES.items():
            self.write(f"profiles/roles/{role}.cfg", text)
        self.model = os.path.join(self.directory, f"{name}.toml")
        addresses = {host.name: host.address for host in fleet}
        self.write(
            f"{name}.toml", MODEL.format(name=name, profiles=self.profiles, **addresses) + extra
        )
        shutil.copy(fleet.known_hosts, os.path.join(self.directory, f"{name}.known_hosts"))
        assert self.fleet_command("compile").returncode == 0

    def write(self, path: str, text: str) -> None:
        with open(os.path.join(self.directory, path), "w") as stream:
            stream.write(text)

    def edit(self, old: str, new: str) -> None:
        with open(self.model) as stream:
            text = stream.read()
        assert old in text
        self.write(f"{self.name}.toml", text.replace(old, new))

    def args(self, action: str, *extra: str) -> list[str]:
        args = [SYSTEM_RECIPES, "fleet", action, "-m", self.model, "--profiles", self.profiles]
        if action != "compile":
            args += ["-F", self.fleet.ssh_config, "--entry-point", self.fleet.entry_point]
        return args + list(extra)

    def fleet_command(self, action: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.args(action, *extra), capture_output=True, text=True, timeout=300
        )

    def runs(self) -> list[str]:
        runs = os.path.join(self.directory, ".fleet", "runs")
        return [os.path.join(runs, name) for name in sorted(os.listdir(runs))]

    def summary(self) -> dict:
        with open(os.path.join(self.runs()[-1], "summary.json")) as stream:
            return json.load(stream)


def lines(result) -> list[str]:
    return result.stdout.splitlines()


def states(result) -> dict[str, str]:
    """host -> its last state line's state."""
    found = {}
    for line in lines(result):
        match = re.match(r"(host\d): ([a-z ]+?)(?::|$| \()", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def tree(host) -> list[str]:
    """Every path under the host's /etc and /var/lib, with its type, mode, size and mtime."""
    listing = host.run("find /etc /var/lib -xdev -printf '%p %y %m %s %T@\\n' | sort")
    return listing.stdout.splitlines()

"""The work bench/fleet.py gives each tool: a system model for `fleet apply`, an Ansible project
writing the same files, and the exported playbook (`fleet export ansible`) when the CLI has it.

Standard library only; imported by bench/fleet.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
BASE_CFG = os.path.join(REPO, "profiles", "base.cfg")
GREETINGS = ("hello", "bonjour")  # the one option the `change` scenario flips, of svc01

# One role per service (sections are named after it, so M services can share a host): a file
# written from a template and an NRPE check that fleet apply runs on the host before it counts
# the host as done.
ROLE = """\
[buildout]
parts = {svc}-config {svc}-nrpe

[{svc}-config]
recipe = system_recipes:template
path = /etc/bench/{svc}.ini
text =
    [{svc}]
    port = {{{{ port }}}}
    greeting = {{{{ greeting }}}}
port = 1
greeting = hello

[{svc}-nrpe]
recipe = system_recipes:nrpe
checks =
    check_{svc}_config /usr/bin/test -s ${{{svc}-config:path}}
"""

# What Ansible writes: the same two files per service, byte for byte (checked after the runs)
CONFIG_J2 = "[{{ svc }}]\nport = {{ svc_port }}\ngreeting = {{ greeting }}\n"
NRPE_J2 = (
    "# NRPE commands of [{{ svc }}-nrpe], written by system-recipes: edits here are overwritten.\n"
    "command[check_{{ svc }}_config]=/usr/bin/test -s /etc/bench/{{ svc }}.ini\n"
)
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: directory
      file: {path: /etc/bench, state: directory, mode: '0755'}
    - name: config
      template: {src: config.ini.j2, dest: '/etc/bench/{{ item.svc }}.ini', mode: '0644'}
      vars: {svc: '{{ item.svc }}', svc_port: '{{ item.port }}', greeting: '{{ item.greeting }}'}
      loop: '{{ services }}'
      loop_control: {label: '{{ item.svc }}'}
    - name: nrpe
      template: {src: nrpe.cfg.j2, dest: '/etc/nagios/nrpe.d/{{ item.svc }}-nrpe.cfg', mode: '0644'}
      vars: {svc: '{{ item.svc }}'}
      loop: '{{ services }}'
      loop_control: {label: '{{ item.svc }}'}
"""


def services(m: int) -> list[str]:
    return [f"svc{k:02d}" for k in range(1, m + 1)]


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as stream:
        stream.write(text)
    return path


class Workload:
    """The scaled system: every one of the N hosts runs M services (one wave, no links), each
    service a config file and an NRPE check. ``directory`` holds the model, its pinned host
    keys, the profiles and the Ansible project."""

    name = "scaled"

    def __init__(self, directory: str, fleet, m: int, forks: int, bin_dir: str):
        self.directory, self.fleet, self.m, self.forks = directory, fleet, m, forks
        self.profiles = os.path.join(directory, "profiles")
        self.model = os.path.join(directory, f"{self.name}.toml")
        self.greeting = GREETINGS[0]
        shutil.copy(fleet.known_hosts, os.path.join(directory, f"{self.name}.known_hosts"))
        self.write_profiles()
        self.write_model()
        self.write_ansible()
        compiled = subprocess.run(
            self.fleet_args("compile", bin_dir)[:7], capture_output=True, text=True
        )
        if compiled.returncode:
            raise RuntimeError(f"fleet compile failed: {compiled.stdout}{compiled.stderr}")

    # -- fleet ------------------------------------------------------------------------------
    def write_profiles(self) -> None:
        os.makedirs(os.path.join(self.profiles, "roles"), exist_ok=True)
        shutil.copy(BASE_CFG, self.profiles)
        for svc in services(self.m):
            write(os.path.join(self.profiles, "roles", f"{svc}.cfg"), ROLE.format(svc=svc))

    def write_model(self) -> None:
        n = len(self.fleet)
        lines = [
            "[system]",
            f'name = "{self.name}"',
            f'profiles = "{self.profiles}"',
            'port-range = "21000-21999"',
            "",
        ]
        for host in self.fleet:
            lines += [
                f"[hosts.{host.name}]",
                f'address = "{host.address}"',
                'tags = ["node"]',
                'memory = "1G"',
                "",
            ]
        for k, svc in enumerate(services(self.m), 1):
            lines += [
                f"[services.{svc}]",
                f'role = "roles/{svc}.cfg"',
                f"instances = {n}",
                f"port = {9000 + k}",
                f'port-option = "{svc}-config:port"',
                f"max-unavailable = {n}",
                'placement = { tags = ["node"], spread = true }',
            ]
            if k == 1:
                lines.append(f'settings = {{ {svc}-config = {{ greeting = "{self.greeting}" }} }}')
            lines.append("")
        write(self.model, "\n".join(lines))

    def fleet_args(self, action: str, bin_dir: str) -> list[str]:
        return [
            os.path.join(bin_dir, "system-recipes"),
            "fleet",
            action,
            "-m",
            self.model,
            "--profiles",
            self.profiles,
            "-F",
            self.fleet.ssh_config,
            "--entry-point",
            os.path.join(bin_dir, "system-recipes"),
            "--forks",
            str(self.forks),
        ]

    def flip(self) -> None:
        """One option of one service changed (svc01's greeting), in the model and for Ansible."""
        self.greeting = GREETINGS[1 - GREETINGS.index(self.greeting)]
        self.write_model()
        self.write_ansible_vars()

    # -- Ansible ----------------------------------------------------------------------------
    @property
    def ansible_dir(self) -> str:
        return os.path.join(self.directory, "ansible")

    def write_ansible(self) -> None:
        d = self.ansible_dir
        write(os.path.join(d, "config.ini.j2"), CONFIG_J2)
        write(os.path.join(d, "nrpe.cfg.j2"), NRPE_J2)
        write(os.path.join(d, "playbook.yml"), PLAYBOOK)
        write(
            os.path.join(d, "inventory.ini"),
            "".join(
                f"{host.name} ansible_host={host.address} "
                f"ansible_ssh_extra_args='-o HostKeyAlias={host.name}'\n"
                for host in self.fleet
            ),
        )
        self.write_ansible_vars()

    def write_ansible_vars(self) -> None:
        rows = [
            f"  - {{svc: {svc}, port: {9000 + k}, "
            f"greeting: {self.greeting if k == 1 else GREETINGS[0]}}}"
            for k, svc in enumerate(services(self.m), 1)
        ]
        write(
            os.path.join(self.ansible_dir, "group_vars", "all.yml"),
            "services:\n" + "\n".join(rows) + "\n",
        )

    def ansible_env(self, base: dict) -> dict:
        """The same ssh config and pinned host keys as fleet apply, the same forks; Ansible's
        own defaults otherwise (a control master kept 60 s between runs, pipelining on)."""
        control = os.path.join(self.directory, "cp")
        os.makedirs(control, exist_ok=True)
        return dict(
            base,
            ANSIBLE_FORKS=str(self.forks),
            ANSIBLE_HOST_KEY_CHECKING="True",
            ANSIBLE_PIPELINING="True",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="False",
            ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
            ANSIBLE_LOCAL_TEMP=os.path.join(self.directory, "ansible-tmp"),
            ANSIBLE_SSH_CONTROL_PATH_DIR=control,
            # the test hosts' sshd has no sftp subsystem: without this, every file Ansible
            # sends first fails over sftp and scp before it is piped
            ANSIBLE_SSH_TRANSFER_METHOD="piped",
            ANSIBLE_SSH_ARGS=(
                f"-F {self.fleet.ssh_config} -o UserKnownHostsFile={self.fleet.known_hosts} "
                "-o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=60s"
            ),
        )

    def ansible_args(self, playbook: str, plan: bool) -> list[str]:
        d = self.ansible_dir
        args = [playbook, "-i", os.path.join(d, "inventory.ini"), os.path.join(d, "playbook.yml")]
        return args + (["--check", "--diff"] if plan else [])

    # -- what was written -------------------------------------------------------------------
    def files(self) -> list[str]:
        return [
            path
            for svc in services(self.m)
            for path in (f"/etc/bench/{svc}.ini", f"/etc/nagios/nrpe.d/{svc}-nrpe.cfg")
        ]

    def contents(self, host) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for path in self.files():
            try:
                with open(host.path(path), "rb") as stream:
                    found[path] = stream.read()
            except FileNotFoundError:
                found[path] = None
        return found


# -- the exported playbook (issue 14) ------------------------------------------------------------
def export_available(bin_dir: str) -> bool:
    """`system-recipes fleet export` exists in this CLI (another change adds it)."""
    result = subprocess.run(
        [os.path.join(bin_dir, "system-recipes"), "fleet", "export", "--help"],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


def export_layout(directory: str) -> tuple[str, str]:
    """(inventory, playbook) of an exported project, or ("", why not)."""
    inventory = next(
        (
            os.path.join(directory, name)
            for name in ("inventory", "inventory.ini", "inventory.yml", "hosts", "hosts.ini")
            if os.path.exists(os.path.join(directory, name))
        ),
        "",
    )
    playbook = next(
        (
            os.path.join(directory, name)
            for name in ("site.yml", "playbook.yml", "apply.yml")
            if os.path.exists(os.path.join(directory, name))
        ),
        "",
    )
    if not inventory or not playbook:
        return "", f"no inventory or playbook found in the export ({sorted(os.listdir(directory))})"
    return inventory, playbook


# -- where fleet's time goes ---------------------------------------------------------------------
def fleet_breakdown(directory: str, wall: float) -> str:
    """From the newest run's summary.json and host logs (.fleet/runs/ID/): the time outside the
    run (the controller's start-up, model and compile), and per host (median): connecting,
    fleet-host's own steps (their ``seconds``), the rest (the remote interpreter's start-up,
    checks, confirmation, round trips)."""
    import json
    import re
    import statistics

    runs = os.path.join(directory, ".fleet", "runs")
    if not os.path.isdir(runs):
        return ""
    run = os.path.join(runs, sorted(os.listdir(runs))[-1])
    try:
        with open(os.path.join(run, "summary.json")) as stream:
            summary = json.load(stream)
    except (OSError, ValueError):
        return ""
    connect, own, total = [], [], []
    for host, info in summary.get("hosts", {}).items():
        try:
            with open(info["log"]) as stream:
                log = stream.read()
        except (OSError, KeyError):
            continue
        stamps = {
            state: float(h) * 3600 + float(m) * 60 + float(s)
            for h, m, s, state in re.findall(
                rf"^# (\d+):(\d+):([\d.]+) {re.escape(host)}: (\w+)", log, re.M
            )
        }
        if "connecting" in stamps and "planning" in stamps:
            connect.append(stamps["planning"] - stamps["connecting"])
        own.append(sum(float(s) for s in re.findall(r'"step": "done".*?"seconds": ([\d.]+)', log)))
        total.append(float(info.get("seconds", 0)))
    if not total:
        return ""
    median = statistics.median
    return (
        f"outside the run {wall - summary.get('seconds', 0):.2f} s; per host {median(total):.2f} s"
        f" = connect {median(connect) if connect else 0:.2f} + fleet-host steps "
        f"{median(own):.2f} + rest {median(total) - median(own) - (median(connect) if connect else 0):.2f}"
    )

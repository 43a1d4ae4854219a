"""`system-recipes fleet export ansible`: the system run by Ansible (ansible-core 2.19.14, the
test extra) on the same sshd test hosts as the fleet tests. ansible-playbook of the export
converges the hosts to exactly the trees `fleet apply` writes, a second run is ok everywhere,
`--check --diff` shows what `fleet plan --diff` shows, a failing host stops the rollout as
`--max-fail` does, and ansible-pull converges a host from a git repository of the export
(docs/systems.md, "fleet apply or Ansible")."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml
from support.ansible_export import HOSTS, export, playbook, recap
from support.fleet_scenarios import System, states
from support.paths import BIN, REPO, SYSTEM_RECIPES

pytest_plugins = ["support.fleet_hosts"]


def tree(host, model: str) -> dict[str, tuple]:
    """Every file, link and directory the host's manifest records, and the kept host.cfg, as
    they are on the host: kind, mode, owner, group and the content's sha256 (or link target)."""
    manifest = json.loads(host.read("/var/lib/system-recipes/manifest.json"))
    paths = {f"/etc/system-recipes/{model}/host.cfg"}
    for parts in manifest["instances"].values():
        for books in parts.values():
            for kind in ("files", "directories", "links"):
                paths.update(books.get(kind, {}))
    found = {}
    for path in sorted(paths):
        where = host.path(path)
        info = os.lstat(where)
        if os.path.islink(where):
            content = os.readlink(where)
        elif os.path.isdir(where):
            content = "directory"
        else:
            with open(where, "rb") as stream:
                content = hashlib.sha256(stream.read()).hexdigest()
        found[path] = (oct(info.st_mode), info.st_uid, info.st_gid, content)
    return found


def test_the_export_converges_as_fleet_apply_does_then_is_ok_then_checks_as_plan(
    make_hosts, tmp_path
):
    # the same system on two sets of hosts at the same addresses, one after the other:
    # fleet apply on the first, the exported playbook on the second; the model in the same
    # directory both times (its compiled files name the profiles by path)
    first = make_hosts(4)
    addresses = {host.name: host.address for host in first}
    (tmp_path / "system").mkdir()
    applied = System(tmp_path / "system", first, "exp")
    result = applied.fleet_command("apply")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = {host.name: tree(host, "exp") for host in first}
    first.close()
    shutil.rmtree(tmp_path / "system")

    second = make_hosts(addresses=addresses)
    (tmp_path / "system").mkdir()
    system = System(tmp_path / "system", second, "exp")
    project = tmp_path / "project"
    exported = export(system, project)
    assert "exp: revision 1 (sha256:" in exported.stdout
    assert "host2: wave 2, " in exported.stdout
    assert (project / "host_vars" / "host2" / "host.cfg").read_text() == (
        tmp_path / "system" / "exp" / "host2.cfg"
    ).read_text()  # what fleet compile writes
    assert "HostKeyAlias={{ inventory_hostname }}" in (project / "group_vars/all.yml").read_text()
    assert (project / "known_hosts").read_text() == open(second.known_hosts).read()
    inventory = (project / "inventory.yml").read_text()
    assert "    tag_app:\n      hosts:\n        host2: {}\n        host3: {}\n" in inventory
    assert "    service_lb:\n      hosts:\n        host4: {}\n" in inventory

    run = playbook(system, project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {h: (c["changed"], c["failed"]) for h, c in recap(run).items()} == {
        h: (1, 0) for h in HOSTS
    }
    # the waves: db, the app servers one at a time (max-unavailable 1: serial 1), lb
    plays = re.findall(r"^PLAY \[(.*)\]", run.stdout, re.M)
    assert plays == [
        "exp wave 1 of 3: host1",
        "exp wave 2 of 3: host2, host3",
        "exp wave 2 of 3: host2, host3",
        "exp wave 3 of 3: host4",
    ]
    assert {host.name: tree(host, "exp") for host in second} == expected

    again = playbook(system, project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {h: (c["changed"], c["failed"]) for h, c in recap(again).items()} == {
        h: (0, 0) for h in HOSTS
    }
    status = system.fleet_command("status")
    assert status.returncode == 0, status.stdout  # fleet sees the revision Ansible applied

    # one option of one service: --check --diff shows what fleet plan --diff shows
    system.edit(
        'role = "roles/app.cfg"\n',
        'role = "roles/app.cfg"\nsettings = { app-config = { greeting = "bonjour" } }\n',
    )
    export(system, project)
    plan = system.fleet_command("plan", "--diff")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    check = playbook(system, project, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    pending = {h for h, state in states(plan).items() if state == "pending"}
    assert pending == {"host2", "host3"}
    assert {h for h, c in recap(check).items() if c["changed"]} == pending
    for host in pending:
        block = re.search(rf"^{host}: diff\n(.*?)(?=^host\d: |\Z)", plan.stdout, re.M | re.S)
        assert block and "+greeting = bonjour" in block.group(1)
        assert block.group(1).strip() in check.stdout
    assert "greeting = hello" in second["host2"].read("/etc/app/app.ini")  # nothing applied


def test_a_failing_host_stops_the_rollout_as_max_fail_does(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "maxfail")
    system.edit('links = ["db"]\n', 'links = ["db"]\nmax-unavailable = 2\n')
    fleet["host2"].run("touch /etc/app-broken")  # its check fails
    project = tmp_path / "project"
    export(system, project, "--check-timeout", "1", "--confirm-timeout", "0")
    assert "  serial: 2\n  max_fail_percentage: 0\n" in (project / "site.yml").read_text()
    run = playbook(system, project)
    assert run.returncode != 0, run.stdout
    counters = recap(run)
    # what fleet apply --max-fail 0 does (tests/fleet/test_fleet_apply.py): both app servers were in
    # flight and host3 finished its own transaction; the load balancer never started
    assert {h: (c["changed"], c["failed"]) for h, c in counters.items()} == {
        "host1": (1, 0),
        "host2": (0, 1),
        "host3": (1, 0),
    }
    assert "check check_app_healthy still fails after 1 s (exit 1: )" in run.stdout
    assert "NO MORE HOSTS LEFT" in run.stdout
    assert not fleet["host4"].exists("/etc/lb/lb.ini")

    export(system, project, "--check-timeout", "1", "--confirm-timeout", "0", "--max-fail", "50%")
    tolerated = playbook(system, project)
    assert tolerated.returncode != 0, tolerated.stdout  # a host failed: never 0
    assert {h: (c["changed"], c["failed"]) for h, c in recap(tolerated).items()} == {
        "host1": (0, 0),
        "host2": (0, 1),
        "host3": (0, 0),
        "host4": (1, 0),
    }


def test_ansible_pull_converges_a_host_from_a_git_repository_of_the_export(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "pull")
    project = tmp_path / "project"
    export(system, project, "--pull-schedule", "*/5 * * * *")
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "export"], check=True)
    host = fleet["host1"]
    # the timer: the export's own host configuration for it, converged on the host
    host.run([os.path.join(BIN, "buildout"), "-c", str(project / "pull" / "host1.cfg")])
    cron = host.read("/etc/cron.d/ansible-pull-pull")
    entry = next(line for line in cron.splitlines() if line.startswith("*/5 * * * * root "))
    command = entry[len("*/5 * * * * root ") :]
    assert f" -U {project} " in command and "--limit host1 local.yml" in command
    path = next(line for line in cron.splitlines() if line.startswith("PATH="))
    pulled = host.run(f"{path} {command}", check=False, timeout=300)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert re.search(
        r"^host1\s+: ok=1\s+changed=1\s+unreachable=0\s+failed=0", pulled.stdout, re.M
    ), pulled.stdout
    assert host.read("/etc/db/db.ini") == "[db]\nport = 5400\nsize = small\n"
    again = host.run(f"{path} {command}", check=False, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"host1\s+: ok=1\s+changed=0\s+unreachable=0\s+failed=0", again.stdout)
    plan = system.fleet_command("plan")
    assert states(plan)["host1"] == "in sync", plan.stdout


def test_the_example_system_exports_its_waves_and_bad_input_is_one_line(tmp_path):
    """The shipped example (a copy: the export writes the revision into the lock): its waves,
    groups and timers; a missing key file or a bad option is one line, nothing written."""
    repo = REPO
    for name in ("shop.toml", "shop.lock.toml"):
        shutil.copy(os.path.join(repo, "profiles", "systems", name), tmp_path)
    model, project = str(tmp_path / "shop.toml"), tmp_path / "project"
    command = [SYSTEM_RECIPES, "fleet", "export", "ansible", "-m", model, str(project)]
    missing = subprocess.run(command, capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        f"Error: fleet export: {tmp_path}/shop.known_hosts: no pinned host keys (nothing is "
        "trusted on first use: `fleet trust` pins them)\n"
    )
    (tmp_path / "shop.known_hosts").write_text(
        "app1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"
    )
    for option, line in (
        (["--max-fail", "lots"], "--max-fail: 'lots' (expected a number of hosts such as 2, "),
        (["--pull-schedule", "often"], "--pull-schedule: 'often' (expected five cron fields"),
    ):
        bad = subprocess.run(command + option, capture_output=True, text=True)
        assert bad.returncode == 1 and bad.stderr.startswith(f"Error: fleet export: {line}")
        assert not project.exists()
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    plays = yaml.safe_load((project / "site.yml").read_text())
    assert [each["name"] for each in plays] == [
        "shop wave 1 of 4: db1",
        "shop wave 2 of 4: app1, app2",
        "shop wave 3 of 4: lb1",
        "shop wave 4 of 4: mon1",
    ]
    assert [each.get("serial") for each in plays] == [1, 1, 1, None]  # mon1 runs no service
    inventory = (project / "inventory.yml").read_text()
    assert "    service_shop:\n      hosts:\n        app1: {}\n        app2: {}\n" in inventory
    assert (project / "host_vars/app1/host.cfg").read_text() == open(
        os.path.join(repo, "profiles", "systems", "shop", "app1.cfg")
    ).read()
    assert "db-password = " not in (project / "host_vars/app1/host.cfg").read_text()
    timer = (project / "pull/app1.cfg").read_text()
    assert "recipe = system_recipes:cron\n" in timer and "--limit app1 local.yml\n" in timer


def shop_copy(directory, *extra_hosts: tuple[str, str, str]) -> str:
    """The shipped example in ``directory`` (the export writes the revision into its lock),
    with ``extra_hosts`` (name, address, tag) and pinned keys; the model's path."""
    repo = REPO
    for name in ("shop.toml", "shop.lock.toml"):
        shutil.copy(os.path.join(repo, "profiles", "systems", name), directory)
    with open(os.path.join(directory, "shop.toml"), "a", encoding="utf-8") as stream:
        for name, address, tag in extra_hosts:
            stream.write(
                f'\n[hosts.{name}]\naddress = "{address}"\ntags = ["{tag}"]\nmemory = "1G"\n'
            )
    with open(os.path.join(directory, "shop.known_hosts"), "w", encoding="utf-8") as stream:
        stream.write("app1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n")
    return os.path.join(directory, "shop.toml")


def ansible(tool: str, project, *arguments: str) -> subprocess.CompletedProcess:
    """An Ansible tool in the export (its ansible.cfg), Ansible's own files in a scratch home."""
    home = tempfile.mkdtemp(prefix="sra-")
    try:
        return subprocess.run(
            [os.path.join(BIN, tool), *arguments],
            cwd=project,
            env={**os.environ, "ANSIBLE_HOME": home, "ANSIBLE_NOCOLOR": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_export_is_yaml_that_ansible_reads_as_the_model_says(tmp_path):
    """Host names YAML 1.1 reads as something else (`no` is false, `null` is nothing) stay
    names: the project is dumped by PyYAML, not pieced together from strings; the playbooks
    pass ansible-playbook --syntax-check."""
    model = shop_copy(tmp_path, ("no", "10.77.0.40", "app"), ("null", "10.77.0.41", "extra"))
    project = tmp_path / "project"
    done = subprocess.run(
        [SYSTEM_RECIPES, "fleet", "export", "ansible", "-m", model, str(project)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    listed = ansible("ansible-inventory", project, "--list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    inventory = json.loads(listed.stdout)
    assert inventory["_meta"]["hostvars"]["no"]["ansible_host"] == "10.77.0.40"
    assert inventory["_meta"]["hostvars"]["null"]["ansible_host"] == "10.77.0.41"
    assert set(inventory["tag_app"]["hosts"]) == {"app1", "app2", "no"}
    assert inventory["tag_extra"]["hosts"] == ["null"]
    for playbook_file in ("site.yml", "local.yml"):
        checked = ansible("ansible-playbook", project, "--syntax-check", playbook_file)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    with open(project / "host_vars" / "no" / "fleet.yml", encoding="utf-8") as stream:
        settings = yaml.safe_load(stream)
    assert settings["fleet_checks"] == [] and f"no: wave {settings['fleet_wave']}, " in done.stdout
    with open(project / "group_vars" / "all.yml", encoding="utf-8") as stream:
        settings = yaml.safe_load(stream)
    assert settings["fleet_entry_point"] == "system-recipes"
    assert settings["ansible_ssh_common_args"].endswith(" -o HostKeyAlias={{ inventory_hostname }}")


EXPORT_MANIFEST = ".fleet-export.json"  # what the export wrote into DIR, with the sha256


def export_shop(model: str, project, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEM_RECIPES, "fleet", "export", "ansible", "-m", model, str(project), *extra],
        capture_output=True,
        text=True,
    )


def files_under(directory) -> dict[str, bytes]:
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as stream:
                found[os.path.relpath(path, directory)] = stream.read()
    return found


def test_the_export_replaces_no_file_of_the_operators_without_force(tmp_path):
    """An Ansible project of the operator's own in DIR: the export names the first file it
    would replace, writes nothing (not the lock's revision either); --force replaces them,
    and later exports replace what they wrote, but not a file changed by hand since."""
    model = shop_copy(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    mine = {"site.yml": "- hosts: all\n", "ansible.cfg": "[defaults]\n", "inventory.yml": "all:\n"}
    for name, text in mine.items():
        (project / name).write_text(text)
    (project / "inventory").write_text("[web]\nweb1\n")  # not a file of the export's at all
    lock = (tmp_path / "shop.lock.toml").read_bytes()
    before = files_under(tmp_path)
    refused = export_shop(model, project)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == (
        f"Error: {project}/ansible.cfg: not written by fleet export, or before it kept "
        f"{EXPORT_MANIFEST} (expected a file it wrote: --force replaces it) (and 2 more)\n"
    )
    assert files_under(tmp_path) == before  # nothing written, the lock included

    forced = export_shop(model, project, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "shop.lock.toml").read_bytes() != lock  # the revision, as apply does
    assert (project / "inventory").read_text() == "[web]\nweb1\n"  # never the export's
    books = json.loads((project / EXPORT_MANIFEST).read_text())["files"]
    assert {"site.yml", "ansible.cfg", "inventory.yml", "host_vars/app1/host.cfg"} <= set(books)
    assert "inventory" not in books
    assert (
        books["site.yml"]
        == "sha256:" + hashlib.sha256((project / "site.yml").read_bytes()).hexdigest()
    )

    again = export_shop(model, project, "--max-fail", "1")  # its own files: replaced
    assert again.returncode == 0, again.stderr
    assert "--max-fail 1" in (project / "site.yml").read_text()

    (project / "site.yml").write_text((project / "site.yml").read_text() + "# by hand\n")
    before = files_under(tmp_path)
    edited = export_shop(model, project)
    assert edited.returncode == 1 and edited.stderr == (
        f"Error: {project}/site.yml: changed by hand since fleet export wrote it (expected it "
        "as written: --force replaces it)\n"
    )
    assert files_under(tmp_path) == before


def test_a_host_gone_from_the_model_takes_only_the_exports_files_along(tmp_path):
    model = shop_copy(tmp_path, ("spare", "10.77.0.50", "spare"))
    project = tmp_path / "project"
    assert export_shop(model, project).returncode == 0
    (project / "host_vars" / "spare" / "notes.yml").write_text("mine: true\n")
    with open(model, encoding="utf-8") as stream:
        text = stream.read()
    with open(model, "w", encoding="utf-8") as stream:
        stream.write(text.split("\n[hosts.spare]")[0])
    done = export_shop(model, project)
    assert done.returncode == 0, done.stderr
    # the export's own files of the host are gone; the operator's file (and so its directory)
    # stays
    assert os.listdir(project / "host_vars" / "spare") == ["notes.yml"]
    assert not (project / "pull" / "spare.cfg").exists()
    books = json.loads((project / EXPORT_MANIFEST).read_text())["files"]
    assert not [path for path in books if "spare" in path]


def test_an_export_without_a_manifest_adopts_the_files_it_would_write(tmp_path):
    """A DIR an older version wrote (no manifest): a file holding what the export writes is
    adopted; any other is refused, since it may have been edited, and --force replaces it and
    removes the files of a host gone from the model (named by its header.jsonl)."""
    model = shop_copy(tmp_path, ("spare", "10.77.0.50", "spare"))
    project = tmp_path / "project"
    assert export_shop(model, project).returncode == 0
    (project / EXPORT_MANIFEST).unlink()
    adopted = export_shop(model, project)
    assert adopted.returncode == 0, adopted.stderr
    assert (
        "host_vars/spare/host.cfg" in json.loads((project / EXPORT_MANIFEST).read_text())["files"]
    )

    (project / EXPORT_MANIFEST).unlink()
    with open(model, encoding="utf-8") as stream:
        text = stream.read()
    with open(model, "w", encoding="utf-8") as stream:
        stream.write(text.split("\n[hosts.spare]")[0])
    # the model changed: every file that changes with it (each host's header, the inventory)
    # is refused too, and nothing is written
    before = files_under(tmp_path)
    refused = export_shop(model, project)
    assert refused.returncode == 1, refused.stdout
    assert re.fullmatch(
        rf"Error: {project}/\S+: not written by fleet export, or before it kept "
        rf"\{EXPORT_MANIFEST} \(expected a file it wrote: --force replaces it\) \(and \d+ more\)\n",
        refused.stderr,
    ), refused.stderr
    assert files_under(tmp_path) == before
    forced = export_shop(model, project, "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (project / "host_vars" / "spare").exists()
    assert not (project / "pull" / "spare.cfg").exists()

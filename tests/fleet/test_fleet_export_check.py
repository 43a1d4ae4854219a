"""The exported playbook's `--check` on hosts never applied: every host pending, and nothing
written on any of them -- no /etc/system-recipes/MODEL/, no state directory, no lock file
(check mode runs `fleet-host plan`, which changes nothing on a host; docs/systems.md)."""

from __future__ import annotations

from support.ansible_export import HOSTS, export, playbook, recap
from support.fleet_scenarios import System, tree

pytest_plugins = ["support.fleet_hosts"]


def test_check_mode_leaves_hosts_never_applied_as_they_were(make_hosts, tmp_path):
    fleet = make_hosts(4)
    (tmp_path / "system").mkdir()
    system = System(tmp_path / "system", fleet, "chk")
    project = tmp_path / "project"
    export(system, project)
    before = {host.name: tree(host) for host in fleet}
    check = playbook(system, project, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert {h for h, c in recap(check).items() if c["changed"]} == set(HOSTS)
    for host in fleet:
        assert not host.exists("/etc/system-recipes") and not host.exists("/var/lib/system-recipes")
    assert {host.name: tree(host) for host in fleet} == before


def test_the_ansible_task_message_counts_in_the_singular_for_one():
    """The plugin is loaded by Ansible from its file: so is it here."""
    import importlib.util

    from system_recipes.fleet.export.ansible import PLUGIN

    spec = importlib.util.spec_from_file_location("fleet_host_action", PLUGIN)
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert [plugin.counted(n, "file change") for n in (0, 1, 2)] == [
        "0 file changes",
        "1 file change",
        "2 file changes",
    ]
    with open(PLUGIN) as stream:
        text = stream.read()
    assert "} changes" not in text and "} file changes" not in text

"""An RPM upgrade through the model: the example system's shop service (profiles/systems/shop.toml,
its app hosts only) on two sshd hosts whose package manager is dnf with a repository of the
example RPMs. Its version raised in the model, one `fleet apply` upgrades the package on each
host and restarts shop there exactly once, one host after the other (max-unavailable 1).

The hosts are Debian test hosts (tests/support/fleet_hosts.py) with Debian's own dnf in their
private /usr/local/sbin and a createrepo_c repository (tests/support/dnf_host.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from support.dnf_host import example_repository, install_dnf
from support.live_daemons import STALE, Daemons, shop_pid, start
from support.paths import REPO

pytest_plugins = ["support.fleet_hosts"]

EXAMPLE = os.path.join(REPO, "profiles", "systems", "shop.toml")
SYSTEM_RECIPES = os.path.join(os.path.dirname(sys.executable), "system-recipes")
SUPERVISOR = "/etc/supervisor/supervisord.conf"
SUPERVISOR_LOG = "/var/log/supervisor/supervisord.log"  # Debian's supervisord.conf


def app_hosts_only(text: str, addresses: dict[str, str]) -> str:
    """The example model with its app hosts and the shop service only (no database, load
    balancer or monitoring host, so no link to the database), at the test hosts' addresses."""
    kept, keep = [], True
    for block in re.split(r"(?m)^(?=\[)", text):
        header = block.split("\n", 1)[0]
        if header.startswith("["):
            keep = header in ("[system]", "[hosts.app1]", "[hosts.app2]") or header.startswith(
                "[services.shop"
            )
        if keep:
            kept.append(block)
    model = "".join(kept).replace('links = ["db"]\n', "")
    for name, address in addresses.items():
        model = re.sub(
            rf'(\[hosts\.{name}\]\naddress = )"[^"]+"', rf'\g<1>"{address}"', model, count=1
        )
    return model


def prepare(host, repository: str, daemons: Daemons) -> None:
    """The profiles where the model says (this checkout's, read-only), dnf with the example
    RPMs' repository, supervisord running with Debian's configuration (as at boot); shop 1.0
    already installed on app1 only: app2 gets it from its first `fleet apply`."""
    install_dnf(host, repository)
    host.run(
        f"rm -f {STALE} && mkdir -p /opt/shop/profiles && "
        f"mount --bind {REPO}/profiles /opt/shop/profiles && "
        "mount -o remount,bind,ro /opt/shop/profiles"
        + (" && /usr/local/sbin/dnf install -y -q shop-1.0" if host.name == "app1" else "")
    )
    pid = start(host, f"supervisord -c {SUPERVISOR}", "/run/supervisord.pid", ("supervisord",))
    daemons.add(host, "supervisord", pid, "/run/supervisord.pid", ("supervisord",))


def fleet(action: str, model: str, hosts, *extra: str) -> subprocess.CompletedProcess:
    args = [SYSTEM_RECIPES, "fleet", action, "-m", model, "--profiles", f"{REPO}/profiles"]
    if action != "compile":
        args += ["-F", hosts.ssh_config, "--entry-point", hosts.entry_point]
    return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=300)


def stamps(log: str, state: str) -> list[str]:
    """The times (HH:MM:SS.mmm) a host's log gives its lines ``HOST: STATE...``."""
    return re.findall(rf"^# (\d\d:\d\d:\d\d\.\d\d\d) \w+: {state}\b", log, re.M)


def test_an_rpm_upgrade_restarts_shop_once_per_host_one_host_at_a_time(
    make_hosts, example_rpms, tmp_path
):
    repository = example_repository(example_rpms, tmp_path / "repository", ("1.0", "1.1"))

    hosts = make_hosts(2, names=["app1", "app2"])
    model = tmp_path / "shop.toml"
    with open(EXAMPLE) as stream:
        model.write_text(app_hosts_only(stream.read(), {h.name: h.address for h in hosts}))
    shutil.copy(hosts.known_hosts, tmp_path / "shop.known_hosts")
    daemons = Daemons()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(prepare, h, str(repository), daemons) for h in hosts]:
                future.result()
        compiled = fleet("compile", str(model), hosts)
        assert compiled.returncode == 0, compiled.stderr

        # a first install: app2's configuration reads facts of a package not there yet, so
        # its plan is known only once apply has installed it; the preflight lets it through
        planned = fleet("plan", str(model), hosts)
        assert planned.returncode == 2, planned.stdout + planned.stderr
        assert (
            "app2: pending: file changes known once the packages are in; packages shop-1.0"
            in planned.stdout
        ), planned.stdout
        first = fleet("apply", str(model), hosts)
        assert first.returncode == 0, first.stdout + first.stderr
        before = {}
        for host in hosts:
            assert host.run("rpm -q shop").stdout == "shop-1.0-1.noarch\n"
            before[host.name] = shop_pid(host)
            assert host.read("/opt/shop/VERSION") == "1.0\n"
        spawned = {h.name: h.read(SUPERVISOR_LOG).count("spawned: 'shop") for h in hosts}

        model.write_text(model.read_text().replace('version = "1.0"', 'version = "1.1"', 1))
        plan = fleet("plan", str(model), hosts)
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert re.search(r"^app1: pending: .*packages shop-1\.1", plan.stdout, re.M), plan.stdout

        upgrade = fleet("apply", str(model), hosts)
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        runs = tmp_path / ".fleet" / "runs"
        run = runs / sorted(name for name in os.listdir(runs) if name.endswith("-apply"))[-1]
        with open(run / "summary.json") as stream:
            summary = json.load(stream)
        assert {name: h["state"] for name, h in summary["hosts"].items()} == {
            "app1": "changed",
            "app2": "changed",
        }
        logs = {}
        for host in hosts:
            assert host.run("rpm -q shop").stdout == "shop-1.1-1.noarch\n"
            assert host.read("/opt/shop/VERSION") == "1.1\n"
            after = shop_pid(host)
            assert after != before[host.name], host.name  # restarted ...
            # ... exactly once: supervisord spawned shop one more time
            assert host.read(SUPERVISOR_LOG).count("spawned: 'shop") == spawned[host.name] + 1
            with open(summary["hosts"][host.name]["log"]) as stream:
                logs[host.name] = stream.read()
            assert '"installed": ["shop-1.1"]' in logs[host.name], logs[host.name]
        # one host at a time: app2 started applying only once app1 was done (and the other
        # way round is impossible: app1 comes first in the wave)
        (app1_done,) = stamps(logs["app1"], "changed")
        (app2_started,) = stamps(logs["app2"], "applying")
        assert app1_done <= app2_started, (app1_done, app2_started)
        lines = upgrade.stdout.splitlines()
        assert lines.index(next(x for x in lines if x.startswith("app1: changed"))) < lines.index(
            next(x for x in lines if x.startswith("app2: applying"))
        )
        print(f"upgrade: app1 done {app1_done}, app2 applying {app2_started}")

        again = fleet("apply", str(model), hosts)
        assert again.returncode == 0, again.stdout + again.stderr
        for host in hosts:
            assert host.read(SUPERVISOR_LOG).count("spawned: 'shop") == spawned[host.name] + 1
    finally:
        daemons.stop()

"""Live, on one machine: the example system (profiles/systems/shop.toml) on five sshd hosts at
the model's own addresses, with the daemons already running as after a boot (Debian's own
configurations, the shop RPM installed with the app hosts' dnf, a new PostgreSQL cluster on
db1). One `system-recipes fleet apply` converges it: in link order, each host done when its
own checks pass -- PostgreSQL on db1 restarted once for its new listen address and hba file
(the model's `restart = "on"`), shop started under supervisord. Then: haproxy on lb1 routes to
both shop instances, every NRPE check answers OK to the monitoring host (and only to it),
Nagios itself reports every service of the system OK, the database lets in exactly the hosts
linked to it, and a second `fleet apply` changes nothing and restarts nothing (exit 0), and
`fleet plan` and `fleet status` exit 0."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from support.dnf_host import example_repository, install_dnf
from support.live_daemons import STALE, SUPERVISOR, Daemons, alive, shop_pid, start
from support.paths import REPO

pytest_plugins = ["support.fleet_hosts"]

MODEL = os.path.join(REPO, "profiles", "systems", "shop.toml")
COMPILED = os.path.join(REPO, "profiles", "systems", "shop")  # `fleet compile`'s output
SYSTEM_RECIPES = os.path.join(os.path.dirname(sys.executable), "system-recipes")
# link order: what is linked to first (db, then shop, then the lb balancing it), Nagios last;
# one shop host at a time (its max-unavailable = 1)
ORDER = ("db1", "app1", "app2", "lb1", "mon1")
CHECK_NRPE = "/usr/lib/nagios/plugins/check_nrpe"
PG = "/usr/lib/postgresql/15/bin"
NAGIOS_STATUS = "/var/lib/nagios4/status.dat"
NAGIOS_COMMANDS = "/var/lib/nagios4/rw/nagios.cmd"
REQUESTS = 10


def fleet(action: str, model: str, hosts, *extra: str) -> subprocess.CompletedProcess:
    """`system-recipes fleet ACTION` on the model copy, reaching the test hosts."""
    return subprocess.run(
        [
            SYSTEM_RECIPES,
            "fleet",
            action,
            "-m",
            model,
            "--profiles",
            os.path.join(REPO, "profiles"),
            "-F",
            hosts.ssh_config,
            "--entry-point",
            hosts.entry_point,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def last_run(model: str) -> tuple[dict, dict[str, list[dict]]]:
    """The last run's summary and, per host, the JSON lines fleet-host printed (its log)."""
    runs = os.path.join(os.path.dirname(model), ".fleet", "runs")
    run = os.path.join(runs, sorted(os.listdir(runs))[-1])
    with open(os.path.join(run, "summary.json")) as stream:
        summary = json.load(stream)
    events = {}
    for name, host in summary["hosts"].items():
        with open(host["log"]) as stream:
            events[name] = [json.loads(line) for line in stream if line.startswith("{")]
    return summary, events


def wait_port(address: str, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {address}:{port}") from None
            time.sleep(0.05)


def start_daemons(hosts, daemons: Daemons, nrpe_hosts: list[str]) -> None:
    def daemon(host: str, name: str, command: str, pidfile: str, *programs: str) -> None:
        pid = start(hosts[host], command, pidfile, programs)
        daemons.add(hosts[host], name, pid, pidfile, programs)

    def app(name: str) -> None:
        daemon(
            name,
            "supervisord",
            f"supervisord -c {SUPERVISOR}",
            "/run/supervisord.pid",
            "supervisord",
        )

    def db(name: str) -> None:
        daemon(
            name,
            "postgres",
            "pg_ctlcluster 15 main start",
            "/var/lib/postgresql/15/main/postmaster.pid",
            "postgres",
        )

    def lb(name: str) -> None:
        # as Debian's unit with the recipe's drop-in: a master reading the main file and conf.d
        daemon(
            name,
            "haproxy",
            "install -d /run/haproxy /etc/haproxy/conf.d && /usr/sbin/haproxy -W -D -f "
            "/etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d -p /run/haproxy.pid",
            "/run/haproxy.pid",
            "haproxy",
        )

    def nrpe(name: str) -> None:
        daemon(
            name,
            "nrpe",
            "install -d -o nagios -g nagios /run/nagios && "
            "/usr/sbin/nrpe -c /etc/nagios/nrpe.cfg -d",
            "/run/nagios/nrpe.pid",
            "nrpe",
        )

    def nagios(name: str) -> None:
        # the directories Debian's unit and tmpfiles.d make, then Nagios as a daemon
        daemon(
            name,
            "nagios4",
            "install -d -o nagios -g nagios /run/nagios4 "
            "/var/lib/nagios4/spool /var/lib/nagios4/spool/checkresults /var/log/nagios4 "
            "/var/log/nagios4/archives && install -d -o nagios -g www-data -m 2710 "
            "/var/lib/nagios4/rw && nagios4 -d /etc/nagios4/nagios.cfg",
            "/run/nagios4/nagios4.pid",
            "nagios4",
        )

    jobs = [(app, "app1"), (app, "app2"), (db, "db1"), (lb, "lb1"), (nagios, "mon1")]
    jobs += [(nrpe, name) for name in nrpe_hosts]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for future in [pool.submit(job, name) for job, name in jobs]:
            future.result()


# -- what the proofs read -----------------------------------------------------------------------
def nrpe_checks(mon1_cfg: str) -> list[tuple[str, str, str]]:
    """(host, NRPE check, Nagios service description) of mon1's [monitoring] nrpe-checks."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(mon1_cfg)
    rows = [
        line.split() for line in parser["monitoring"]["nrpe-checks"].split("\n") if line.strip()
    ]
    return [(host, check, " ".join(description)) for host, check, *description in rows]


def status_blocks(text: str, kind: str) -> list[dict]:
    blocks = re.findall(rf"^{kind} \{{\n(.*?)^\s*\}}", text, re.M | re.S)
    return [
        dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
        for block in blocks
    ]


def files_written(plan: dict) -> list[str]:
    """The paths an apply's plan named (``create /etc/shop/shop.ini``, ``mkdir /run/shop``;
    accounts are in /etc/passwd, /etc/group and /etc/shadow)."""
    paths = [action.split(" ", 1)[1] for action in plan["actions"]]
    return [path for path in paths if path.startswith("/")] + [
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
    ]


def stats(host, paths: list[str]) -> dict:
    found = {}
    for path in paths:
        if host.exists(path):
            st = os.lstat(host.path(path))
            found[path] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
    return found


# -- the test -----------------------------------------------------------------------------------
def test_the_example_system_runs_live(make_hosts, example_rpms, tmp_path):
    with open(MODEL, "rb") as stream:
        model = tomllib.load(stream)
    addresses = {name: host["address"] for name, host in model["hosts"].items()}
    profiles = model["system"]["profiles"]
    compiled = {}
    for name in addresses:
        with open(os.path.join(COMPILED, f"{name}.cfg")) as stream:
            compiled[name] = stream.read()
    repository = example_repository(example_rpms, tmp_path / "repository")
    hosts = make_hosts(addresses=addresses)
    # the model, its lock and the hosts' pinned keys, where the runs' logs and the lock's new
    # revision may go (not into this checkout)
    system = tmp_path / "system"
    system.mkdir()
    for name in ("shop.toml", "shop.lock.toml"):
        shutil.copy(os.path.join(os.path.dirname(MODEL), name), system)
    shutil.copy(hosts.known_hosts, system / "shop.known_hosts")
    daemons = Daemons()
    try:
        prepare(hosts, repository, profiles)
        monitored = [name for name, text in compiled.items() if "[nrpe-server]" in text]
        start_daemons(hosts, daemons, monitored)
        run_and_prove(hosts, str(system / "shop.toml"), model, compiled, daemons)
    finally:
        daemons.stop()


def prepare(hosts, repository: str, profiles: str) -> None:
    """What a host has before the fleet reaches it: the profiles where the model says they are
    (this checkout's, read-only), dnf and the shop RPM on the app hosts, a PostgreSQL cluster
    on db1."""

    def one(host) -> None:
        types = host.run("stat -f -c %T /etc /var /run /opt").stdout.split()
        assert types == ["overlayfs"] * 4, (host.name, types)  # nothing below is the machine's
        host.run(
            f"rm -f {STALE} && mkdir -p {profiles} && "
            f"mount --bind {REPO}/profiles {profiles} && "
            f"mount -o remount,bind,ro {profiles}"
        )
        if host.name.startswith("app"):
            install_dnf(host, repository)
            host.run("/usr/local/sbin/dnf install -y -q shop-1.0")
        if host.name == "db1":
            # one cluster (the recipe takes the single one there is): a new main, in db1's
            # overlays only (no pg_ctlcluster near the machine's cluster: the pids are shared)
            host.run(
                "rm -rf /etc/postgresql/15/main /var/lib/postgresql/15/main && "
                "pg_createcluster 15 main -p 5432 >/dev/null"
            )

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        for future in [pool.submit(one, host) for host in hosts]:
            future.result()


def steps(events: list[dict], step: str) -> list[dict]:
    return [event for event in events if event.get("step") == step]


def run_and_prove(hosts, model_path: str, model, compiled, daemons) -> None:
    booted = daemons.current()
    first = fleet("apply", model_path, hosts)
    assert first.returncode == 0, first.stdout + first.stderr
    summary, events = last_run(model_path)
    assert {name: host["state"] for name, host in summary["hosts"].items()} == {
        name: "changed" for name in ORDER
    }, first.stdout
    # in link order, one host at a time (each wave's only host, shop's max-unavailable 1)
    done = [first.stdout.index(f"\n{name}: changed") for name in ORDER]
    assert done == sorted(done), first.stdout
    for name in ORDER:
        assert hosts[name].read("/etc/system-recipes/shop/host.cfg") == compiled[name]
        assert steps(events[name], "packages")[-1]["changed"] == 0, events[name]
    # PostgreSQL was restarted once for what takes effect only at a restart; the others kept
    # their pids (reloads) -- but NRPE, which a reload would leave allowing every host it
    # allowed before, restarts
    now = daemons.current()
    assert now[("db1", "postgres")] != booted[("db1", "postgres")]
    assert {k: v for k, v in now.items() if k[1] in ("supervisord", "haproxy", "nagios4")} == {
        k: v for k, v in booted.items() if k[1] in ("supervisord", "haproxy", "nagios4")
    }
    db = hosts["db1"].run(
        f"runuser -u postgres -- {PG}/psql -X -At -h /run/postgresql "
        "-c 'SHOW listen_addresses' -c 'SELECT count(*) FROM pg_settings WHERE pending_restart'"
    )
    assert db.stdout == "*\n0\n", db.stdout
    for name in ("app1", "app2"):
        daemons.add(hosts[name], "shop", shop_pid(hosts[name]))

    prove_the_load_balancer(hosts, model)
    checks = nrpe_checks(compiled[model["monitoring"]["host"]])
    prove_nrpe(hosts, model, checks)
    prove_the_database_access(hosts, model)
    prove_nagios(hosts, model, checks)

    # a second apply: nothing rewritten, nothing restarted, and plan and status agree
    written = {
        name: stats(
            hosts[name],
            files_written(steps(events[name], "plan")[-1])
            + [
                "/etc/system-recipes/shop",
                "/etc/system-recipes/shop/host.cfg",
                "/var/lib/system-recipes/fleet/shop.json",
            ],
        )
        for name in ORDER
    }
    assert all(len(found) > 4 for found in written.values()), written
    daemons.current()
    pids = dict(daemons.pids)
    second = fleet("apply", model_path, hosts)
    assert second.returncode == 0, second.stdout + second.stderr
    summary, events = last_run(model_path)
    assert {name: host["state"] for name, host in summary["hosts"].items()} == {
        name: "unchanged" for name in ORDER
    }, second.stdout
    for name in ORDER:
        assert not steps(events[name], "buildout"), events[name]  # no host ran it
        assert stats(hosts[name], list(written[name])) == written[name], name
    for (name, daemon), pid in pids.items():
        assert alive(pid), (name, daemon, pid)
    for name in ("app1", "app2"):
        assert shop_pid(hosts[name]) == pids[(name, "shop")]
    assert {k: v for k, v in daemons.current().items()} == {k: pids[k] for k in daemons.pidfiles}
    plan = fleet("plan", model_path, hosts)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    status = fleet("status", model_path, hosts)
    assert status.returncode == 0, status.stdout + status.stderr
    print(f"first apply: {first.stdout.splitlines()[-1]}\nsecond: {second.stdout.splitlines()[-1]}")


def prove_the_load_balancer(hosts, model) -> None:
    """From the controller, through lb1's port: every answer is shop's, and each instance's own
    access log shows it served its share, to lb1's address."""
    lb = model["hosts"]["lb1"]["address"]
    port = model["services"]["lb"]["port"]
    wait_port(lb, port)
    servers = wait_servers_up(hosts["lb1"], "lb", 2)
    assert sorted(servers) == ["shop.1", "shop.2"], servers
    answers = []
    for _ in range(REQUESTS):
        with urllib.request.urlopen(f"http://{lb}:{port}/", timeout=10) as answer:
            answers.append(answer.read().decode())
    assert answers == ["shop 1.0\n"] * REQUESTS, answers
    served = {}
    for name in ("app1", "app2"):
        ini = hosts[name].read("/etc/shop/shop.ini")
        log = re.search(r"^log-file = (\S+)$", ini, re.M).group(1)
        served[name] = len(re.findall(rf" {re.escape(lb)} GET / 200$", hosts[name].read(log), re.M))
    # roundrobin over two healthy servers: each answers every other request
    assert served == {"app1": REQUESTS // 2, "app2": REQUESTS // 2}, served


def haproxy_stat(host) -> list[dict]:
    """``show stat`` on lb1's stats socket (Debian's haproxy.cfg: /run/haproxy/admin.sock)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(host.path("/run/haproxy/admin.sock"))
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    fields = lines[0].lstrip("# ").split(",")
    return [dict(zip(fields, line.split(","), strict=False)) for line in lines[1:] if line]


def wait_servers_up(host, backend: str, count: int, timeout: float = 20) -> dict:
    """The servers of ``backend`` and their status, once ``count`` of them are UP."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = haproxy_stat(host)
        except OSError:  # the worker is still binding its stats socket
            rows = []
        servers = {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }
        if list(servers.values()).count("UP") >= count:
            return servers
        if time.monotonic() > deadline:
            raise AssertionError(f"haproxy on {host.name}: {servers}")
        time.sleep(0.1)


def prove_nrpe(hosts, model, checks) -> None:
    """From the monitoring host, every check of every host answers OK; another host is not
    answered (each NRPE allows exactly the monitoring host)."""
    mon = hosts[model["monitoring"]["host"]]
    addresses = {name: host["address"] for name, host in model["hosts"].items()}

    def ask(row):
        host, check, _ = row
        for _ in range(50):  # a daemon may still be binding its port
            result = mon.run([CHECK_NRPE, "-H", addresses[host], "-c", check], check=False)
            if result.returncode == 0:
                break
            time.sleep(0.1)
        return result

    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        for (host, check, _), result in zip(checks, pool.map(ask, checks), strict=True):
            assert result.returncode == 0, (host, check, result.stdout, result.stderr)
            assert " OK" in result.stdout, (host, check, result.stdout)
    assert {host for host, _, _ in checks} == {"app1", "app2", "db1", "lb1"}
    refused = hosts["lb1"].run(
        [CHECK_NRPE, "-H", addresses["app1"], "-c", "check_shop_http"], check=False
    )
    assert refused.returncode != 0 and "OK" not in refused.stdout, refused.stdout


def prove_the_database_access(hosts, model) -> None:
    """shop does not use its database (shop-server reads only [server]): the access rules are
    proven instead. With a role and database shop (created as the DBA would) and the password
    where the model's secret reference says, each app host connects to the address and port
    its shop.ini was given; lb1 and mon1 are refused."""
    db, port = model["hosts"]["db1"]["address"], model["services"]["db"]["port"]
    secret = model["services"]["shop"]["secrets"]["db-password"].removeprefix("file:")
    password = "live-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]
    hosts["db1"].run(
        f"runuser -u postgres -- {PG}/psql -X -q -h /run/postgresql -p {port} "
        f"-c \"CREATE ROLE shop LOGIN PASSWORD '{password}'\" "
        "-c 'CREATE DATABASE shop OWNER shop'"
    )
    wait_port(db, port)

    def connect(name: str, address: str, port: int):
        host = hosts[name]
        # as the operator puts the secret the model references (mkdir: /etc/shop keeps the
        # mode the deployment gave it)
        host.run(f"mkdir -p /etc/shop && (umask 077 && echo {password} > {secret})")
        return host.run(
            f"PGPASSWORD=$(cat {secret}) PGCONNECT_TIMEOUT=10 {PG}/psql -X -At "
            f"-h {address} -p {port} -U shop -d shop "
            "-c 'SELECT inet_client_addr()'",
            check=False,
        )

    for name in ("app1", "app2"):
        ini = configparser.ConfigParser(interpolation=None)
        ini.read_string(hosts[name].read("/etc/shop/shop.ini"))
        result = connect(name, ini["database"]["host"], int(ini["database"]["port"]))
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.strip() == model["hosts"][name]["address"], result.stdout
    for name in ("lb1", "mon1"):
        result = connect(name, db, port)
        address = model["hosts"][name]["address"]
        assert result.returncode != 0, (name, result.stdout)
        assert (
            f'no pg_hba.conf entry for host "{address}", user "shop", database "shop"'
            in result.stderr
        ), (name, result.stderr)


def write_fifo(path: str, text: str, timeout: float = 20) -> None:
    """Write to Nagios' command file (a FIFO) once Nagios reads it: never block on it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except (FileNotFoundError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing reads {path}") from None
            time.sleep(0.05)
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


def prove_nagios(hosts, model, checks) -> None:
    """Nagios itself, with the generated objects: every host and every service of the system
    is checked at once (forced checks through Nagios' own command file) and status.dat says
    each host is UP and each service OK -- exactly the services of mon1's nrpe-checks."""
    mon = hosts[model["monitoring"]["host"]]
    now = int(time.time())
    write_fifo(
        mon.path(NAGIOS_COMMANDS),
        "".join(
            [f"[{now}] SCHEDULE_FORCED_HOST_CHECK;{host};{now}\n" for host in model["hosts"]]
            + [
                f"[{now}] SCHEDULE_FORCED_SVC_CHECK;{host};{description};{now}\n"
                for host, _, description in checks
            ]
        ),
    )
    wanted = {(host, description) for host, _, description in checks}
    deadline = time.monotonic() + 60
    while True:
        try:
            text = mon.read(NAGIOS_STATUS)
        except FileNotFoundError:
            text = ""
        services = {
            (s["host_name"], s["service_description"]): s
            for s in status_blocks(text, "servicestatus")
            if s["host_name"] in model["hosts"]
        }
        systems = {
            h["host_name"]: h
            for h in status_blocks(text, "hoststatus")
            if h["host_name"] in model["hosts"]
        }
        fresh = [s for s in [*services.values(), *systems.values()] if int(s["last_check"]) >= now]
        if set(services) == wanted and len(fresh) == len(wanted) + len(model["hosts"]):
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Nagios did not check everything: {sorted(services)}, "
                f"{len(fresh)} checked since the command"
            )
        time.sleep(0.2)
    states = {key: (s["current_state"], s["plugin_output"]) for key, s in services.items()}
    assert all(state == "0" for state, _ in states.values()), states
    ups = {name: (h["current_state"], h["plugin_output"]) for name, h in systems.items()}
    assert all(state == "0" for state, _ in ups.values()), ups

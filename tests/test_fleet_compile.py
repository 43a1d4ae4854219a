"""Compilation (level 4): the example system compiles to its golden host.cfg files, byte for
byte, again and again; a change of one service changes only the hosts that run it or link to
it; the check names come from the meta-recipe's exported facts; the compiled files are
accepted by `system-recipes plan` and converge with the real buildout (app and monitoring
hosts), Nagios accepting the generated objects."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from support.paths import BUILDOUT, REPO, SYSTEM_RECIPES
from support.results import ok
from support.rpmbuild import RPM_OVERLAYS, rpm_install
from support.sandbox import Sandbox

from system_recipes.cli import main
from system_recipes.meta.explain import load

SYSTEMS = os.path.join(REPO, "profiles", "systems")
GOLDEN = os.path.join(SYSTEMS, "shop")  # the example compiled: `fleet compile`s default output
HOSTS = ("app1", "app2", "db1", "lb1", "mon1")


@pytest.fixture
def system(tmp_path):
    """A copy of the example model and its lock; compile into tmp_path/out."""
    for name in ("shop.toml", "shop.lock.toml"):
        shutil.copy(os.path.join(SYSTEMS, name), tmp_path / name)
    return tmp_path


def compile_(system, *args, capsys) -> list[str]:
    code = main(
        ["fleet", "compile", "-m", str(system / "shop.toml"), "-o", str(system / "out"), *args]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out.splitlines()


def compiled(system) -> dict[str, str]:
    out = system / "out"
    return {name[:-4]: (out / name).read_text() for name in sorted(os.listdir(out))}


def edit(system, old: str, new: str) -> None:
    path = system / "shop.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_example_compiles_to_the_golden_files(system, capsys):
    lines = compile_(system, capsys=capsys)
    assert lines == [f"{host}: wrote {system / 'out' / host}.cfg" for host in HOSTS]
    golden = {
        name[:-4]: open(os.path.join(GOLDEN, name)).read() for name in sorted(os.listdir(GOLDEN))
    }
    assert compiled(system) == golden, (
        "regenerate profiles/systems/shop/: system-recipes "
        "fleet compile -m profiles/systems/shop.toml"
    )
    # the lock was current: not rewritten
    assert (system / "shop.lock.toml").read_bytes() == open(
        os.path.join(SYSTEMS, "shop.lock.toml"), "rb"
    ).read()


def test_the_compiled_files_wire_the_services(system, capsys):
    compile_(system, capsys=capsys)
    files = compiled(system)
    app1, lb1, db1, mon1 = files["app1"], files["lb1"], files["db1"], files["mon1"]
    # the header says which model and lock (by name: a digest of the whole model would change
    # every host's file on any edit)
    assert re.search(r"^# model: shop.toml, lock: shop.lock.toml$", app1, re.M)
    # extends base.cfg and the role where they are on the hosts, the role's parts listed
    assert (
        "extends =\n    /opt/shop/profiles/base.cfg\n    /opt/shop/profiles/roles/"
        "app-server.cfg\nparts =\n    shop\n    nrpe-server\n" in app1
    )
    # the allocated port, the link's address and port, the model's setting
    assert (
        "[shop-config]\nport = 20000\ndb-host = 10.77.0.20\ndb-port = 5432\n"
        "host = 0.0.0.0\n" in app1
    )
    assert "[shop]\ncheck = http 20000 /health\n" in app1
    # the load balancer's backends: every shop instance, address and allocated port
    assert "backends =\n    shop.1 10.77.0.11:20000\n    shop.2 10.77.0.12:20000\n" in lb1
    assert "bind = *:80\nmode = http\n" in lb1 and "health-check = /health\n" in lb1
    # the database lets in exactly the hosts whose services link to it
    assert "clients =\n    10.77.0.11/32 shop shop\n    10.77.0.12/32 shop shop\n" in db1
    # every host with checks allows exactly the monitoring host
    for host in ("app1", "app2", "db1", "lb1"):
        assert (
            "[nrpe-server]\nrecipe = system_recipes:nrpe-server\nallowed-hosts = "
            "10.77.0.30\n" in files[host]
        ), host
    assert "nrpe-server" not in mon1
    # Nagios: a host per host of the model, a service per check
    assert (
        "hosts =\n    app1 10.77.0.11\n    app2 10.77.0.12\n    db1 10.77.0.20\n"
        "    lb1 10.77.0.10\n    mon1 10.77.0.30\n" in mon1
    )
    assert (
        "nrpe-checks =\n    app1 check_shop_http shop.1 check_shop_http\n"
        "    app2 check_shop_http shop.2 check_shop_http\n"
        "    db1 check_db_tcp db.1 check_db_tcp\n    lb1 check_lb_tcp lb.1 check_lb_tcp\n" in mon1
    )
    # packages to ensure; secrets by reference only
    assert "packages = shop 1.0\n" in app1 and "packages = haproxy\n" in lb1
    assert "secrets = shop db-password file:/etc/shop/db-password\n" in app1


def test_recompiling_is_byte_identical(system, capsys):
    compile_(system, capsys=capsys)
    before = {**compiled(system), "lock": (system / "shop.lock.toml").read_bytes()}
    lines = compile_(system, capsys=capsys)
    assert lines == [f"{host}: unchanged {system / 'out' / host}.cfg" for host in HOSTS]
    assert {**compiled(system), "lock": (system / "shop.lock.toml").read_bytes()} == before


@pytest.mark.parametrize(
    "old, new, args, changed",
    [
        # the application's own setting: only its hosts
        ('host = "0.0.0.0"', 'host = "::"', (), {"app1", "app2"}),
        # the database's port: its host, and the hosts of the service that links to it
        ("port = 5432", "port = 5433", ("--allow-moves",), {"db1", "app1", "app2"}),
        # the load balancer's balance: its host only
        (
            'backends = "shop"',
            'backends = "shop"\nsettings = { lb = { balance = "leastconn" } }',
            (),
            {"lb1"},
        ),
    ],
)
def test_one_service_changes_only_the_hosts_that_run_it_or_link_to_it(
    system, capsys, old, new, args, changed
):
    compile_(system, capsys=capsys)
    before = compiled(system)
    edit(system, old, new)
    lines = compile_(system, *args, capsys=capsys)
    after = compiled(system)
    # whole files: the others stay byte for byte as they were
    assert {host for host in HOSTS if after[host] != before[host]} == changed
    for host in set(HOSTS) - changed:
        assert f"{host}: unchanged {system / 'out' / host}.cfg" in lines


def test_the_check_names_are_the_facts_the_meta_recipe_exports(system, capsys):
    # the service meta-recipe's expansion exports the names of the NRPE checks it writes
    _, expansions = load(os.path.join(REPO, "profiles", "roles", "app-server.cfg"))
    assert expansions["shop"].facts == {"nrpe-checks": ["check_shop_http"]}
    # a model check of another kind: the role writes another check, Nagios asks for that one
    edit(system, 'check = "http /health"', 'check = "tcp"')
    compile_(system, capsys=capsys)
    files = compiled(system)
    assert "[shop]\ncheck = tcp 20000\n" in files["app1"]
    assert "    app1 check_shop_tcp shop.1 check_shop_tcp\n" in files["mon1"]
    # a role in level-1 sections names its checks itself ([shop-nrpe] checks)
    edit(system, 'role = "roles/app-server.cfg"', 'role = "roles/app-server-explicit.cfg"')
    edit(system, 'check = "tcp"\n', "")
    compile_(system, capsys=capsys)
    files = compiled(system)
    assert "[shop]" not in files["app1"]
    assert "    app1 check_shop_http shop.1 check_shop_http\n" in files["mon1"]


def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_RECIPES, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "old, new, line",
    [
        (
            'port-option = "shop-config:port"\n',
            "",
            "Error: [services.shop] port-option: missing: the service has a port and its role takes "
            "it in one of its options (expected SECTION:OPTION of the role, such as "
            "shop-config:port)",
        ),
        (
            'port-option = "shop-config:port"',
            'port-option = "shop-conf:port"',
            "Error: [services.shop] port-option: roles/app-server.cfg has no [shop-conf] port "
            "(expected a section and option of the role (`system-recipes explain` shows the sections "
            "a service section generates))",
        ),
        (
            'host = "0.0.0.0"',
            "port = 8080",
            "Error: [services.shop.settings.shop-config] port: is compiled from the allocation: port "
            "of shop (auto), into [services.shop] port-option (expected settings of options the "
            "compiler does not set)",
        ),
        (
            'role = "roles/app-server.cfg"',
            'role = "roles/app-server-explicit.cfg"',
            "Error: [services.shop] check: roles/app-server-explicit.cfg has 0 system_recipes:service "
            "sections to take it (expected a role with one service section, or no check in the model "
            "(the role's own checks stay))",
        ),
        (
            'kind = "haproxy"',
            'kind = "haproxy"\nport-option = "lb:port"',
            "Error: [services.lb] port-option: only a service with a role has one (a haproxy service "
            "is compiled by system-recipes) (expected no port-option here)",
        ),
    ],
)
def test_a_mistake_is_one_line_and_nothing_is_written(system, old, new, line):
    os.unlink(system / "shop.lock.toml")
    edit(system, old, new)
    result = run("fleet", "compile", "-m", "shop.toml", cwd=str(system))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [line]
    assert sorted(os.listdir(system)) == ["shop.toml"]  # no lock, no compiled files


def test_explain_says_where_each_value_came_from(system):
    ok(run("fleet", "compile", "-m", "shop.toml", cwd=str(system)))
    out = ok(run("fleet", "explain", "-m", "shop.toml", "app1", cwd=str(system))).stdout
    assert out.startswith(
        "app1 (10.77.0.11) runs shop.1 (port 20000); model shop.toml, lock shop.lock.toml\n"
    )
    for value, origin in [
        ("[buildout] extends = /opt/shop/profiles/roles/app-server.cfg", "[services.shop] role"),
        ("[buildout] parts = shop", "roles/app-server.cfg parts ([services.shop] role)"),
        (
            "[shop-config] port = 20000",
            "the allocation: port of shop (auto), into [services.shop] port-option",
        ),
        (
            "[shop-config] db-host = 10.77.0.20",
            "[services.shop] links: the address of each "
            "host of db ([hosts.NAME] address, hosts from the allocation)",
        ),
        ("[shop-config] host = 0.0.0.0", "[services.shop.settings.shop-config] host"),
        ("[shop] check = http 20000 /health", "[services.shop] check, on the port of shop"),
        (
            "[nrpe-server] allowed-hosts = 10.77.0.30",
            "[monitoring] host = mon1: [hosts.mon1] address",
        ),
    ]:
        assert f"{value}\n    <- {origin}\n" in out, (value, out)
    mon1 = ok(run("fleet", "explain", "-m", "shop.toml", "mon1", cwd=str(system))).stdout
    assert "the nrpe-checks fact of [shop]'s expansion" in mon1, mon1
    bad = run("fleet", "explain", "-m", "shop.toml", "app9", cwd=str(system))
    assert bad.returncode == 1 and bad.stderr.splitlines() == [
        "Error: [hosts]: 'app9' is not a host of the model (expected one of app1, app2, db1, "
        "lb1, mon1)"
    ]


# -- the compiled files on hosts: plan, converge, the real tools ---------------------------------
def with_profiles(box: Sandbox) -> None:
    """The profiles where a release RPM installs them (/opt/shop/profiles: the example RPM is
    software only), so the golden files run as they are."""
    box.run(["mkdir", "-p", "/opt/shop"], check=True)
    box.run(["cp", "-r", os.path.join(REPO, "profiles"), "/opt/shop/profiles"], check=True)


def plan(box: Sandbox, config: str) -> subprocess.CompletedProcess:
    return box.run([SYSTEM_RECIPES, "plan", "-q", "-c", config], timeout=300)


@pytest.mark.sandbox
def test_every_compiled_host_is_accepted_by_plan(example_rpms, tmp_path):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        rpm_install(box, example_rpms("1.0"))
        with_profiles(box)
        for host in HOSTS:
            config = shutil.copy(os.path.join(GOLDEN, f"{host}.cfg"), tmp_path)
            result = plan(box, config)
            assert result.returncode == 2 and result.stderr == "", (
                host,
                result.stdout,
                result.stderr,
            )


@pytest.mark.sandbox
def test_the_app_host_converges(example_rpms, tmp_path):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        rpm_install(box, example_rpms("1.0"))
        with_profiles(box)
        config = shutil.copy(os.path.join(GOLDEN, "app1.cfg"), tmp_path)
        ok(box.run([BUILDOUT, "-c", config], timeout=300))
        ini = box.read("/etc/shop/shop.ini")
        assert "[server]\nhost = 0.0.0.0\nport = 20000\n" in ini, ini
        assert "[database]\nhost = 10.77.0.20\nport = 5432\n" in ini, ini
        nrpe = box.read("/etc/nagios/nrpe.d/shop.cfg")
        assert "command[check_shop_http]=" in nrpe and "-p 20000" in nrpe, nrpe
        allowed = box.read("/etc/nagios/nrpe.d/nrpe-server.cfg")
        assert re.search(r"^allowed_hosts=10\.77\.0\.30$", allowed, re.M), allowed
        # converged: nothing left to change
        assert plan(box, config).returncode == 0


@pytest.mark.sandbox
def test_the_monitoring_host_converges_and_nagios_accepts_the_objects(tmp_path):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        with_profiles(box)
        config = shutil.copy(os.path.join(GOLDEN, "mon1.cfg"), tmp_path)
        ok(box.run([BUILDOUT, "-c", config], timeout=300))
        objects = box.read("/etc/nagios4/conf.d/shop.cfg")
        for host in HOSTS:
            assert re.search(rf"host_name\s+{host}\n", objects), (host, objects)
        for host, check in (
            ("app1", "check_shop_http"),
            ("app2", "check_shop_http"),
            ("db1", "check_db_tcp"),
            ("lb1", "check_lb_tcp"),
        ):
            assert re.search(
                rf"host_name\s+{host}\n\s*service_description\s+\S+ {check}\n"
                rf"\s*check_command\s+check_nrpe!{check}\n",
                objects,
            ), objects
        verify = box.run(["nagios4", "-v", "/etc/nagios4/nagios.cfg"])
        assert verify.returncode == 0, verify.stdout
        assert plan(box, config).returncode == 0


def test_system_recipes_docs_writes_the_systems_reference(tmp_path):
    ok(run("docs", "-o", str(tmp_path / "recipes")))
    with open(os.path.join(REPO, "docs", "systems-reference.md")) as stream:
        assert (tmp_path / "systems-reference.md").read_text() == stream.read()
    assert "| `port-option` |" in (tmp_path / "systems-reference.md").read_text()

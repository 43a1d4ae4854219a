"""Compilation (level 4): the example system compiles to its golden host.cfg files, byte for
byte, again and again; a change of one service changes only the hosts that run it or link to
it; the check names come from the meta-recipe's exported facts; the compiled files are
accepted by `system-recipes plan` and converge with the real buildout (app and monitoring
hosts), Nagios accepting the generated objects."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest
from support.paths import BUILDOUT, REPO, SYSTEM_RECIPES
from support.results import ok
from support.rpmbuild import RPM_OVERLAYS, rpm_install
from support.sandbox import Sandbox

from system_recipes.commands.cli import main
from system_recipes.meta.explain import load

SYSTEMS = os.path.join(REPO, "profiles", "systems")
GOLDEN = os.path.join(SYSTEMS, "shop")  # the example compiled: `fleet compile`s default output
HOSTS = ("app1", "app2", "db1", "lb1", "mon1")
MANIFEST = ".fleet-compile.json"  # what fleet compile wrote into its output, with the sha256


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
    """HOST -> its compiled file; ``manifest`` -> what fleet compile says it wrote."""
    out = system / "out"
    return {
        (name[:-4] if name.endswith(".cfg") else "manifest"): (out / name).read_text()
        for name in sorted(os.listdir(out))
        if name.endswith(".cfg") or name == MANIFEST
    }


def edit(system, old: str, new: str) -> None:
    path = system / "shop.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_example_compiles_to_the_golden_files(system, capsys):
    lines = compile_(system, capsys=capsys)
    assert lines == [f"{host}: wrote {system / 'out' / host}.cfg" for host in HOSTS]
    golden = {
        (name[:-4] if name.endswith(".cfg") else "manifest"): open(
            os.path.join(GOLDEN, name)
        ).read()
        for name in sorted(os.listdir(GOLDEN))
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


def refused(system, *args, capsys) -> str:
    """fleet compile into tmp_path/out refused: its one line."""
    code = main(
        ["fleet", "compile", "-m", str(system / "shop.toml"), "-o", str(system / "out"), *args]
    )
    captured = capsys.readouterr()
    assert code == 1 and captured.out == "", captured.out + captured.err
    assert len(captured.err.splitlines()) == 1, captured.err
    return captured.err.rstrip("\n")


def snapshot(directory) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(root, name), directory): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, names in os.walk(directory)
        for name in names
    }


SPARE = '\n[hosts.spare]\naddress = "10.77.0.50"\ntags = ["spare"]\nmemory = "1G"\n'
ADD_SPARE = (
    'memory = "1G"\n\n# The application',
    'memory = "1G"\n' + SPARE + "\n# The application",
)


def test_a_file_compile_did_not_write_is_not_replaced_without_force(system, capsys):
    """The operator's own app1.cfg in the output: one line naming it, nothing written (not the
    lock, not the other hosts); --force replaces it, and the manifest records it."""
    out = system / "out"
    out.mkdir()
    (out / "app1.cfg").write_text("# mine\n[buildout]\nparts =\n")
    (out / "README").write_text("the operator's\n")
    (system / "shop.lock.toml").unlink()
    line = refused(system, capsys=capsys)
    assert line == (
        f"Error: {out}/app1.cfg: not written by fleet compile, or before it "
        f"kept {MANIFEST} (expected a file it wrote: --force replaces it)"
    )
    assert sorted(os.listdir(system)) == ["out", "shop.toml"]  # no lock
    assert sorted(os.listdir(out)) == ["README", "app1.cfg"]
    assert (out / "app1.cfg").read_text() == "# mine\n[buildout]\nparts =\n"

    lines = compile_(system, "--force", capsys=capsys)
    assert f"app1: updated {out}/app1.cfg" in lines and f"db1: wrote {out}/db1.cfg" in lines
    assert (out / "README").read_text() == "the operator's\n"  # not the command's: untouched
    books = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(books) == [f"{host}.cfg" for host in HOSTS]
    assert (
        books["app1.cfg"] == "sha256:" + hashlib.sha256((out / "app1.cfg").read_bytes()).hexdigest()
    )


def test_a_compiled_file_changed_by_hand_is_not_replaced_or_removed_without_force(system, capsys):
    out = system / "out"
    edit(system, *ADD_SPARE)
    compile_(system, capsys=capsys)
    written = (out / "app1.cfg").read_text()
    # a hand edit of a compiled file: the next compile refuses to replace it
    (out / "app1.cfg").write_text(written + "# tuned by hand\n")
    edit(system, 'host = "0.0.0.0"', 'host = "::"')
    before = snapshot(system)
    assert refused(system, capsys=capsys) == (
        f"Error: {out}/app1.cfg: changed by hand since fleet compile wrote it "
        "(expected it as written: --force replaces it)"
    )
    assert snapshot(system) == before
    # a host gone from the model: its compiled file goes, but not when changed by hand
    (out / "app1.cfg").write_text(written)
    edit(system, SPARE, "")
    (out / "spare.cfg").write_text((out / "spare.cfg").read_text() + "# mine\n")
    before = snapshot(system)
    assert refused(system, capsys=capsys) == (
        f"Error: {out}/spare.cfg: changed by hand since fleet compile wrote it "
        "(expected it as written: --force removes it)"
    )
    assert snapshot(system) == before
    lines = compile_(system, "--force", capsys=capsys)
    assert f"app1: updated {out}/app1.cfg" in lines
    assert f"spare: removed {out}/spare.cfg (not a host of the model)" in lines
    assert not (out / "spare.cfg").exists()
    assert "spare.cfg" not in json.loads((out / MANIFEST).read_text())["files"]


def test_a_host_gone_from_the_model_takes_its_compiled_file_along(system, capsys):
    out = system / "out"
    edit(system, *ADD_SPARE)
    compile_(system, capsys=capsys)
    edit(system, SPARE, "")
    lines = compile_(system, capsys=capsys)
    assert f"spare: removed {out}/spare.cfg (not a host of the model)" in lines
    assert sorted(os.listdir(out)) == [MANIFEST] + [f"{host}.cfg" for host in HOSTS]


def test_an_output_written_before_manifests_is_adopted_where_it_is_what_compile_writes(
    system, capsys
):
    """No manifest (an older version's output): the files holding what compile writes are
    adopted; a compiled file of a host gone from the model (its header names the model) may be
    the operator's edit: refused without --force, which removes it."""
    out = system / "out"
    edit(system, *ADD_SPARE)
    compile_(system, capsys=capsys)
    (out / MANIFEST).unlink()
    lines = compile_(system, capsys=capsys)
    assert lines == [f"{host}: unchanged {out}/{host}.cfg" for host in (*HOSTS, "spare")]
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == sorted(
        f"{host}.cfg" for host in (*HOSTS, "spare")
    )
    (out / MANIFEST).unlink()
    edit(system, SPARE, "")  # mon1 no longer monitors it: its file changes too
    assert refused(system, capsys=capsys) == (
        f"Error: {out}/mon1.cfg: not written by fleet compile, or before it kept "
        f"{MANIFEST} (expected a file it wrote: --force replaces it) (and 1 more)"
    )
    (out / "mon1.cfg").unlink()  # the operator checked it: the compile writes it again
    assert refused(system, capsys=capsys) == (
        f"Error: {out}/spare.cfg: not written by fleet compile, or before it kept "
        f"{MANIFEST} (expected a file it wrote: --force removes it)"
    )
    lines = compile_(system, "--force", capsys=capsys)
    assert f"spare: removed {out}/spare.cfg (not a host of the model)" in lines


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


LAYERED = """\
[system]
name = "layers"
profiles = "{profiles}"
port-range = "21000-21099"

[hosts.{db}]
address = "192.0.2.20"
tags = ["db"]
memory = "1G"

[hosts.app1]
address = "192.0.2.11"
tags = ["app"]
memory = "1G"

[hosts.app2]
address = "192.0.2.12"
tags = ["app"]
memory = "1G"

[hosts.lb1]
address = "192.0.2.10"
tags = ["lb"]
memory = "1G"

[services.db]
role = "roles/db.cfg"
port = 5400
port-option = "db-config:port"
placement = {{ tags = ["db"] }}

[services.api]
role = "roles/app.cfg"
instances = 2
port = "auto"
port-option = "app-config:port"
links = ["db"]
placement = {{ tags = ["app"] }}

[services.api-lb]
kind = "haproxy"
port = 8080
backends = "api"
placement = {{ tags = ["{lb_tag}"] }}

# a later service on the app hosts: it links to the API (a service of wave 2, as the LB's)
[services.web]
role = "roles/web.cfg"
instances = 2
port = "auto"
port-option = "web-config:port"
links = ["api"]
placement = {{ tags = ["app"] }}
"""

WEB_ROLE = """\
[buildout]
parts = web web-config

[web]
recipe = system_recipes:deployment

[web-config]
recipe = system_recipes:template
path = ${web:etc-directory}/web.ini
text =
    [web]
    port = {{ port }}
    api = {{ api_host }}:{{ api_port }}
port = 1
api-host = none
api-port = 0
"""


def layered_system(tmp_path, db: str = "db1", lb_tag: str = "lb"):
    from support.fleet_scenarios import ROLES

    from system_recipes.fleet.compile.prepare import prepare

    profiles = tmp_path / "profiles"
    (profiles / "roles").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "profiles", "base.cfg"), profiles)
    for role, text in {**ROLES, "web": WEB_ROLE}.items():
        (profiles / "roles" / f"{role}.cfg").write_text(text)
    model = tmp_path / "layers.toml"
    model.write_text(LAYERED.format(profiles=profiles, db=db, lb_tag=lb_tag))
    return prepare(str(model), str(profiles), allow_moves=True)


def test_hosts_go_in_waves_after_the_hosts_their_services_need(tmp_path):
    """The app hosts run the balanced API (a service of wave 2) and a web app linking to it
    (wave 3): the load balancer of the API still goes after them, never with them."""
    from system_recipes.fleet.compile.prepare import assign_waves

    system = layered_system(tmp_path)
    assert assign_waves(system) == [["db1"], ["app1", "app2"], ["lb1"]]
    assert [system.hosts[name].wave for name in ("db1", "app1", "app2", "lb1")] == [1, 2, 2, 3]
    assert system.notes == []


def test_hosts_that_need_each_other_are_one_line(tmp_path):
    """The database and the API's load balancer on one host, the API on two others: no order
    of hosts holds both needs; the earlier service's need holds, the later one is said."""
    from system_recipes.fleet.compile.prepare import assign_waves

    system = layered_system(tmp_path, db="dblb", lb_tag="db")
    assert assign_waves(system) == [["dblb", "lb1"], ["app1", "app2"]]  # lb1 runs nothing
    assert system.notes == [
        "waves: dblb and app1 need each other (api-lb on dblb balances api on app1, api on "
        "app1 links to db on dblb): dblb goes first, before the api its api-lb balances"
    ]
    assign_waves(system)
    assert len(system.notes) == 1  # said once

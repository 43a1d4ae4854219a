"""The system model (level 4): every mistake is one line naming the table and key; the
reference is generated from the declaration; the example system and its lock are current."""

from __future__ import annotations

import copy
import doctest
import os
import tomllib

import pytest
from support.paths import REPO

import system_recipes.fleet.model.allocate
import system_recipes.fleet.model.lockfile
import system_recipes.fleet.model.spec
import system_recipes.fleet.model.values
from system_recipes.core.declare.errors import ConfigError
from system_recipes.fleet.model.allocate import allocate, load_lock
from system_recipes.fleet.model.spec import (
    check_words,
    load_model,
    lock_path,
    parse_model,
    reference_markdown,
)
from system_recipes.fleet.model.tables import ModelError

SHOP = os.path.join(REPO, "profiles", "systems", "shop.toml")
with open(SHOP, "rb") as _stream:
    EXAMPLE = tomllib.load(_stream)


def error_of(edit) -> str:
    data = copy.deepcopy(EXAMPLE)
    edit(data)
    with pytest.raises(ModelError) as caught:
        parse_model(data)
    return str(caught.value)


def shop(**keys):
    return lambda data: data["services"]["shop"].update(keys)


ERRORS = [
    (shop(instnaces=2), "[services.shop] instnaces: unknown key (did you mean 'instances'?)"),
    (lambda d: d.update(servces={}), "[servces]: unknown table (did you mean 'services'?)"),
    (
        lambda d: d["system"].update(colour="red"),
        "[system] colour: unknown key (expected one of name, port-range, profiles)",
    ),
    (
        shop(instances="two"),
        "[services.shop] instances: the string 'two' is not an integer "
        "(expected an integer >= 1 and <= 1000)",
    ),
    (
        shop(instances=True),
        "[services.shop] instances: a boolean is not an integer "
        "(expected an integer >= 1 and <= 1000)",
    ),
    (
        shop(port="8080"),
        "[services.shop] port: the string '8080' is not an integer "
        '(expected a port number 1-65535 or "auto")',
    ),
    (
        shop(memory="1GB"),
        "[services.shop] memory: the string '1GB' is not a size (expected a "
        "size such as 512M or 4G, or 0; K, M, G and T are powers of 1024)",
    ),
    (
        shop(check="udp 53"),
        "[services.shop] check: 'udp 53' is not a check (expected http "
        "[PORT] [PATH], tcp [PORT] or none; without PORT, the service's port)",
    ),
    (
        shop(placement="app"),
        "[services.shop] placement: the string 'app' is not a table "
        "(expected a table [services.NAME.placement])",
    ),
    (
        shop(placement={"tags": ["app"], "spread": "yes"}),
        "[services.shop.placement] spread: the "
        "string 'yes' is not a boolean (expected true or false)",
    ),
    (
        shop(links=["db", "db"]),
        "[services.shop] links: 'db' is listed twice (expected an array, "
        "each a name: a lowercase letter, then letters, digits or '-', at most 32)",
    ),
    (
        lambda d: d["hosts"].update({"App_3": {}}),
        "[hosts.App_3]: 'App_3' is not a valid name "
        "(expected a name: a lowercase letter, then letters, digits or '-', at most 32)",
    ),
    (
        lambda d: d["hosts"]["app2"].pop("memory"),
        "[hosts.app2] memory: missing (expected a size "
        "such as 512M or 4G, or 0; K, M, G and T are powers of 1024)",
    ),
    (lambda d: d.pop("system"), "[system]: missing (expected a table [system])"),
    (
        lambda d: d["hosts"]["app2"].update(address="10.77.0.300"),
        "[hosts.app2] address: "
        "'10.77.0.300' is not an address (expected an IP address or a DNS name)",
    ),
    (
        lambda d: d["system"].update({"port-range": "3000-2000"}),
        "[system] port-range: "
        "'3000-2000' is not a range of ports from low to high (expected a range of ports such as "
        "20000-20999)",
    ),
    (
        shop(role="../roles/x.cfg"),
        "[services.shop] role: '../roles/x.cfg' is not valid (expected "
        "a profile relative to the profiles directory, such as roles/app-server.cfg)",
    ),
    # references between tables
    (
        shop(links=["dbb"]),
        "[services.shop] links: 'dbb' is not another service (expected names "
        "of [services.NAME] tables)",
    ),
    (
        lambda d: d["services"]["lb"].update(backends="shopp"),
        "[services.lb] backends: 'shopp' is "
        "not another service (expected the name of a [services.NAME] table)",
    ),
    (
        lambda d: d["services"]["db"].update(backends="shop"),
        '[services.db] backends: only a load balancer has backends (expected kind = "haproxy")',
    ),
    (
        lambda d: d["services"]["lb"].pop("backends"),
        "[services.lb] backends: missing: a load "
        "balancer needs backends (expected the name of the service it balances)",
    ),
    (
        lambda d: d.update(monitoring={"host": "mon9"}),
        "[monitoring] host: 'mon9' is not a host "
        "of the model (expected names of [hosts.NAME] tables)",
    ),
    (
        shop(placement={"hosts": ["app9"]}),
        "[services.shop.placement] hosts: 'app9' is not a host "
        "of the model (expected names of [hosts.NAME] tables)",
    ),
    (
        lambda d: d["services"]["db"].update(links=["shop"]),
        "[services.db] links: a cycle db -> shop -> db (expected links without cycles)",
    ),
    (
        lambda d: d["hosts"]["app2"].update(address="10.77.0.11"),
        "[hosts.app2] address: "
        "'10.77.0.11' is already the address of app1 (expected a unique address)",
    ),
    (
        shop(port=20005),
        "[services.shop] port: 20005 is inside the automatic range 20000-20999 "
        '(expected a port outside it, or "auto")',
    ),
    (
        shop(kind="haproxy"),
        "[services.shop] role: a service has a role or a kind, not both "
        "(expected a role or a kind (haproxy, postgresql))",
    ),
    (
        lambda d: d["services"]["db"].pop("port"),
        "[services.db] port: missing: a postgresql "
        'service listens on one (expected a port number or "auto")',
    ),
    (
        lambda d: d["services"]["shop"].pop("port"),
        "[services.lb] backends: shop has no port (expected a service with a port)",
    ),
    (
        lambda d: d["services"]["lb"].pop("port"),
        "[services.lb] port: missing: a haproxy service listens "
        'on one (expected a port number or "auto")',
    ),
]


@pytest.mark.parametrize(
    "edit,line", ERRORS, ids=[line.split(":")[0] + " " + line.split(":")[1] for _, line in ERRORS]
)
def test_every_mistake_is_one_line_naming_the_table_and_key(edit, line):
    assert error_of(edit) == line


def test_a_model_error_is_a_config_error_the_cli_prints_as_one_line():
    assert issubclass(ModelError, ConfigError)


SECRET = "hunter2-very-secret"


@pytest.mark.parametrize(
    "edit,line",
    [
        (
            shop(password=SECRET),
            "[services.shop] password: unknown key: secrets by reference only "
            '(expected secrets = { NAME = "file:/PATH" } in the service)',
        ),
        (
            lambda d: d["services"]["shop"]["settings"]["shop-config"].update(
                {"db-password": SECRET}
            ),
            "[services.shop.settings.shop-config] db-password: a literal secret (secrets by reference "
            'only; the value is not shown) (expected secrets = { db-password = "file:/PATH" } in '
            "[services.shop])",
        ),
        (
            lambda d: d["services"]["shop"]["settings"]["shop-config"].update(
                {"api_token": SECRET}
            ),
            "[services.shop.settings.shop-config] api_token: a literal secret (secrets by reference "
            'only; the value is not shown) (expected secrets = { api_token = "file:/PATH" } in '
            "[services.shop])",
        ),
        (
            lambda d: d["services"]["shop"]["secrets"].update({"db-password": SECRET}),
            "[services.shop.secrets] db-password: the value is not a reference (secrets by reference "
            "only; it is not shown) (expected a reference file:/ABSOLUTE/PATH, read on the host when "
            "it is applied)",
        ),
    ],
)
def test_a_literal_secret_is_refused_and_never_echoed(edit, line):
    assert error_of(edit) == line


def test_a_setting_that_names_where_a_secret_is_is_not_a_secret():
    data = copy.deepcopy(EXAMPLE)
    data["services"]["shop"]["settings"]["shop-config"]["password-file"] = "/etc/shop/db-password"
    model = parse_model(data)
    assert (
        model.services["shop"].settings["shop-config"]["password-file"] == "/etc/shop/db-password"
    )
    assert model.services["shop"].secrets == {"db-password": "file:/etc/shop/db-password"}


def test_an_echoed_value_is_clipped():
    line = error_of(shop(check="http " + "x" * 5000))
    assert line.startswith("[services.shop] check: 'xxxx")
    assert "(5000 characters) is not a URL path" in line
    assert len(line) < 300


def test_a_toml_syntax_error_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[system]\nname = \n")
    with pytest.raises(ModelError) as caught:
        load_model(str(path))
    assert str(caught.value) == f"{path}: not valid TOML: Invalid value (at line 2, column 8)"
    with pytest.raises(ModelError) as caught:
        load_model(str(tmp_path / "missing.toml"))
    assert str(caught.value) == f"{tmp_path / 'missing.toml'}: No such file or directory"


def test_the_example_is_typed():
    model = load_model(SHOP)
    assert list(model.hosts) == ["app1", "app2", "db1", "lb1", "mon1"]
    shop_service = model.services["shop"]
    assert (shop_service.role, shop_service.port, shop_service.memory) == (
        "roles/app-server.cfg",
        "auto",
        512 * 2**20,
    )
    assert shop_service.placement.tags == ("app",) and shop_service.placement.spread is True
    assert shop_service.check == ("http", None, "/health")
    assert shop_service.max_unavailable == 1 and shop_service.links == ("db",)
    assert model.services["lb"].kind == "haproxy" and model.services["lb"].backends == "shop"
    assert model.monitoring.host == "mon1" and model.port_range == (20000, 20999)
    assert check_words(shop_service, 20000) == "http 20000 /health"
    assert check_words(model.services["db"], 5432) == "tcp 5432"
    assert lock_path(SHOP) == SHOP[: -len(".toml")] + ".lock.toml"


def test_the_committed_lock_is_what_allocation_produces_from_the_committed_model():
    model = load_model(SHOP)
    with open(lock_path(SHOP), encoding="utf-8") as stream:
        committed = stream.read()
    fresh = allocate(model)
    assert fresh.text(model) == committed
    again = allocate(model, load_lock(lock_path(SHOP)))
    assert again.changes == [] and again.text(model) == committed
    assert [(i.name, i.host, i.port) for i in fresh.instances()] == [
        ("db.1", "db1", 5432),
        ("lb.1", "lb1", 80),
        ("shop.1", "app1", 20000),
        ("shop.2", "app2", 20000),
    ]


def test_the_checked_in_reference_is_current():
    with open(os.path.join(REPO, "docs", "systems-reference.md"), encoding="utf-8") as stream:
        assert stream.read() == reference_markdown(), (
            "regenerate docs/systems-reference.md from system_recipes.fleet.model.spec.reference_markdown"
        )


def test_the_reference_documents_every_key():
    text = reference_markdown()
    for key in (
        "name",
        "profiles",
        "port-range",
        "address",
        "tags",
        "memory",
        "role",
        "kind",
        "package",
        "version",
        "instances",
        "port",
        "check",
        "placement",
        "links",
        "backends",
        "max-unavailable",
        "settings",
        "secrets",
        "spread",
        "host",
    ):
        assert f"| `{key}` |" in text, key
    for table in (
        "[system]",
        "[hosts.NAME]",
        "[services.NAME]",
        "[services.NAME.placement]",
        "[services.NAME.settings.SECTION]",
        "[services.NAME.secrets]",
        "[monitoring]",
    ):
        assert f"## `{table}`" in text, table


@pytest.mark.parametrize(
    "module",
    [
        system_recipes.fleet.model.spec,
        system_recipes.fleet.model.values,
        system_recipes.fleet.model.lockfile,
        system_recipes.fleet.model.allocate,
    ],
)
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0

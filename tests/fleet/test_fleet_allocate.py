"""Allocation of instances to hosts and ports: properties over random models (hypothesis), and
the exact lines of every change and refusal, and the lock's format."""

from __future__ import annotations

import copy
import os
import shutil
import tomllib

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st
from support.paths import REPO

from system_recipes.fleet.model.allocate import Allocation, allocate, parse_lock, update
from system_recipes.fleet.model.lockfile import dumps
from system_recipes.fleet.model.spec import Model, parse_model
from system_recipes.fleet.model.tables import ModelError

SHOP = os.path.join(REPO, "profiles", "systems", "shop.toml")
HOST_NAMES = [f"h{i}" for i in range(1, 7)]
SERVICE_NAMES = ["a", "b", "c", "d", "e"]


@st.composite
def models(draw, hosts=HOST_NAMES, services=SERVICE_NAMES) -> dict:
    """Random models over a few names: tags, capacities, fixed ports shared by two services,
    automatic ports, explicit hosts and spread, so that some cannot be placed at all."""
    chosen = draw(st.lists(st.sampled_from(hosts), min_size=2, max_size=len(hosts), unique=True))
    data = {
        "system": {
            "name": "test",
            "profiles": "/opt/test/profiles",
            "port-range": draw(st.sampled_from(["20000-20999", "20000-20003"])),
        },
        "hosts": {},
        "services": {},
    }
    for name in chosen:
        data["hosts"][name] = {
            "address": f"10.0.0.{hosts.index(name) + 1}",
            "tags": draw(st.lists(st.sampled_from(["x", "y"]), unique=True)),
            "memory": draw(st.sampled_from(["1G", "2G", "8G"])),
        }
    for name in draw(st.lists(st.sampled_from(services), min_size=1, unique=True)):
        service = {
            "role": "roles/app-server.cfg",
            "instances": draw(st.integers(1, 3)),
            "memory": draw(st.sampled_from(["0", "256M", "512M", "1G"])),
            "placement": {
                "tags": draw(st.sampled_from([[], [], ["x"], ["y"]])),
                "hosts": draw(
                    st.just([]) | st.lists(st.sampled_from(chosen), unique=True, max_size=3)
                ),
                "spread": draw(st.booleans()),
            },
        }
        port = draw(st.sampled_from([None, "auto", 8080, 8081]))
        if port is not None:
            service["port"] = port
        data["services"][name] = service
    return data


def try_allocate(model: Model, lock: Allocation | None = None, allow_moves: bool = False):
    try:
        return allocate(model, lock, allow_moves)
    except ModelError as error:
        line = str(error)
        assert "\n" not in line and len(line) < 400
        assert "no host for" in line or "would" in line or "no free port" in line, line
        return None


def check_invariants(model: Model, result: Allocation) -> None:
    low, high = model.port_range
    for name, service in model.services.items():
        assert sorted(result.hosts[name]) == list(range(1, service.instances + 1))
        if service.port == "auto":
            assert low <= result.ports[name] <= high
        else:
            assert result.ports.get(name) == service.port
    automatic = [result.ports[n] for n, s in model.services.items() if s.port == "auto"]
    assert len(automatic) == len(set(automatic)), "an automatic port is unique in the system"
    for host, spec in model.hosts.items():
        here = result.instances(host=host)
        ports = [i.port for i in here if i.port is not None]
        assert len(ports) == len(set(ports)), f"a port double-booked on {host}"
        assert sum(model.services[i.service].memory for i in here) <= spec.memory, (
            f"capacity of {host} exceeded"
        )
        for instance in here:
            placement = model.services[instance.service].placement
            assert set(placement.tags) <= set(spec.tags)
            assert not placement.hosts or host in placement.hosts
            if placement.spread:
                assert [i.service for i in here].count(instance.service) == 1
    assert set(result.hosts) == set(model.services)


def assert_stable(model: Model, result: Allocation) -> None:
    """Re-running on the written lock changes nothing, byte for byte."""
    text = result.text(model)
    again = allocate(model, parse_lock(text))
    assert again.changes == [] and again.text(model) == text


@given(models())
def test_an_allocation_respects_ports_capacity_and_placement_and_is_stable(data):
    model = parse_model(data)
    result = try_allocate(model)
    if result is not None:
        check_invariants(model, result)
        assert_stable(model, result)
        assert len(result.changes) == sum(s.instances for s in model.services.values()) + len(
            result.ports
        )


@given(models(), models())
def test_from_any_earlier_lock_nothing_moves_without_allow_moves(first, second):
    """An instance still wanted keeps its host and a service keeps its port -- or the run
    is refused; with allow_moves, every invariant holds whatever the lock was."""
    earlier = try_allocate(parse_model(first))
    if earlier is None:
        return
    model = parse_model(second)
    result = try_allocate(model, earlier)
    if result is not None:
        check_invariants(model, result)
        assert_stable(model, result)
        for name, numbers in result.hosts.items():
            for number, host in numbers.items():
                assert earlier.hosts.get(name, {}).get(number, host) == host
            if name in earlier.ports:
                assert result.ports.get(name) == earlier.ports[name]
    moved = try_allocate(model, earlier, allow_moves=True)
    if moved is not None:
        check_invariants(model, moved)
        assert_stable(model, moved)


@given(models(), st.sampled_from(HOST_NAMES))
def test_removing_a_host_moves_only_its_instances(data, gone):
    model = parse_model(data)
    before = try_allocate(model)
    if before is None or gone not in data["hosts"] or len(data["hosts"]) == 1:
        return
    smaller = copy.deepcopy(data)
    del smaller["hosts"][gone]
    for service in smaller["services"].values():
        if gone in service["placement"]["hosts"]:
            service["placement"]["hosts"].remove(gone)
            if not service["placement"]["hosts"]:  # empty would mean any host: keep it narrow
                service["placement"]["hosts"] = ["h0"]
                smaller["hosts"]["h0"] = {"address": "10.0.1.1", "memory": "0"}
    model = parse_model(smaller)
    after = try_allocate(model, before, allow_moves=True)
    if after is None:
        return
    check_invariants(model, after)
    assert after.ports == before.ports
    for instance in before.instances():
        if instance.host != gone:
            assert after.hosts[instance.service][instance.number] == instance.host
    moved = {i.name for i in before.instances(host=gone)}
    assert [line for line in after.changes if "moved" in line] == [
        f"{i.name}: moved {gone} -> {after.hosts[i.service][i.number]}"
        for i in before.instances(host=gone)
    ]
    assert len(after.changes) == len(moved)
    if moved:
        with pytest.raises(ModelError, match="would move"):
            allocate(model, before)


@given(models())
def test_adding_a_host_changes_nothing(data):
    model = parse_model(data)
    before = try_allocate(model)
    if before is None:
        return
    bigger = copy.deepcopy(data)
    bigger["hosts"]["h9"] = {"address": "10.0.0.99", "tags": ["x", "y"], "memory": "8G"}
    after = allocate(parse_model(bigger), before)
    assert after.changes == [] and after.hosts == before.hosts and after.ports == before.ports


TOML_DATA = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.booleans(),
        st.text(max_size=20),
        st.dictionaries(
            st.text(min_size=1, max_size=8),
            st.one_of(st.integers(), st.text()),
            min_size=1,
            max_size=4,
        ),
    ),
    max_size=6,
)


@given(TOML_DATA)
def test_the_toml_writer_reads_back_with_tomllib(data):
    assert tomllib.loads(dumps(data, "a\ncomment")) == data


def in_lock_order(data: dict) -> dict:
    """Numbers by value, then names: the order of the lock's keys."""

    def rank(name: str) -> tuple:
        return (0, int(name), "") if name.isascii() and name.isdigit() else (1, 0, name)

    return {
        k: in_lock_order(data[k]) if isinstance(data[k], dict) else data[k]
        for k in sorted(data, key=rank)
    }


@given(TOML_DATA)
def test_the_lock_is_written_by_tomli_w(data):
    """No TOML writer of our own: the lock's text is tomli-w's, keys in the lock's order, under
    the header's comment lines (a tab in a string, for one, is tomli-w's literal tab)."""
    text = tomli_w.dumps(in_lock_order(data))
    assert dumps(data) == text
    assert (
        dumps(data, "a\ncomment") == "# a\n# comment\n" + ("\n" if text[:1] == "[" else "") + text
    )


#: a stamped lock with instance numbers past 9, as the hand-written TOML writer wrote it
OLD_LOCK = """\
# Allocation lock of the system shop (shop.toml): the host of every instance
# and the port of every service. Written by system-recipes; keep it in git beside the model.
# Change the model, not this file; a move or a port change needs --allow-moves.
digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
revision = 12

[services.db]
port = 5432

[services.db.instances]
1 = "db1"

[services.lb]
port = 80

[services.lb.instances]
1 = "lb1"

[services.shop]
port = 20000

[services.shop.instances]
1 = "app1"
2 = "app10"
3 = "app11"
4 = "app2"
5 = "app3"
6 = "app4"
7 = "app5"
8 = "app6"
9 = "app7"
10 = "app8"
11 = "app9"
"""


def test_a_lock_written_before_tomli_w_is_rewritten_byte_for_byte():
    """Locks in git from before tomli-w: read and written again, the same bytes (no diff)."""
    assert parse_lock(OLD_LOCK).text(example()) == OLD_LOCK
    with open(os.path.join(REPO, "profiles", "systems", "shop.lock.toml"), encoding="utf-8") as f:
        shipped = f.read()
    assert parse_lock(shipped).text(example()) == shipped


# -- exact lines -----------------------------------------------------------------------------
with open(SHOP, "rb") as _stream:
    EXAMPLE = tomllib.load(_stream)


def example(*edits) -> Model:
    """The example model with ``edits`` (functions of its data) applied in order."""
    data = copy.deepcopy(EXAMPLE)
    for edit in edits:
        edit(data)
    return parse_model(data, SHOP)


def shop(**keys):
    return lambda data: data["services"]["shop"].update(keys)


def drop(table: str, name: str):
    return lambda data: data[table].pop(name)


def app3(data):
    data["hosts"]["app3"] = {"address": "10.77.0.13", "tags": ["app"], "memory": "2G"}


def test_every_change_is_its_own_line():
    first = allocate(example())
    assert first.changes == [
        "db: port 5432",
        "db.1: placed on db1",
        "lb: port 80",
        "lb.1: placed on lb1",
        "shop: port auto -> 20000",
        "shop.1: placed on app1",
        "shop.2: placed on app2",
    ]
    three = allocate(example(app3, shop(instances=3)), first)
    assert three.changes == ["shop.3: placed on app3"]
    moved = allocate(example(app3, drop("hosts", "app1")), first, allow_moves=True)
    assert moved.changes == ["shop.1: moved app1 -> app3"]
    narrow = example(
        lambda d: d["system"].update({"port-range": "21000-21009"}),
        drop("services", "db"),
        shop(links=[], instances=1),
    )
    assert allocate(narrow, first, allow_moves=True).changes == [
        "db: port 5432 released",
        "db.1: released",
        "shop: port 20000 -> 21000",
        "shop.2: released",
    ]


def test_what_cannot_be_placed_is_one_line():
    model = example(
        lambda d: d["hosts"]["app1"].update(memory="1536M"),
        drop("hosts", "app2"),
        lambda d: d["services"]["shop"].pop("port"),
        drop("services", "lb"),
        shop(memory="1G", placement={"tags": ["app"]}, check="none"),
    )
    with pytest.raises(ModelError) as caught:
        allocate(model)
    assert str(caught.value) == (
        "[services.shop] instances: no host for shop.2 (expected a "
        "host with tags app and 1G of memory free)"
    )
    spread = example(drop("hosts", "app2"))
    with pytest.raises(ModelError) as caught:
        allocate(spread)
    assert str(caught.value) == (
        "[services.shop] instances: no host for shop.2 (expected a "
        "host with tags app and 512M of memory free, not running shop "
        "already)"
    )


def test_a_move_or_a_port_change_needs_allow_moves():
    first = allocate(example())
    with pytest.raises(ModelError) as caught:
        allocate(example(app3, drop("hosts", "app1")), first)
    assert str(caught.value) == (
        "[services.shop] instances: shop.1 would move app1 -> app3 "
        "(host app1 is gone from the model); moves need --allow-moves"
    )
    with pytest.raises(ModelError) as caught:
        allocate(example(app3, lambda d: d["hosts"]["app1"].update(tags=[])), first)
    assert str(caught.value) == (
        "[services.shop] instances: shop.1 would move app1 -> app3 "
        "(app1 lacks the tags app); moves need --allow-moves"
    )
    with pytest.raises(ModelError) as caught:
        allocate(example(lambda d: d["services"]["db"].update(port=5433)), first)
    assert str(caught.value) == (
        "[services.db] port: 5432 would change to 5433 (the model sets "
        "port = 5433); changing an allocated port needs --allow-moves"
    )
    with pytest.raises(ModelError) as caught:
        allocate(example(lambda d: d["system"].update({"port-range": "21000-21999"})), first)
    assert str(caught.value) == (
        "[services.shop] port: 20000 would change to 21000 (20000 is outside [system] "
        "port-range 21000-21999); changing an allocated port needs --allow-moves"
    )


def test_an_automatic_port_keeps_its_value_and_is_the_same_on_every_instance():
    lock = parse_lock('[services.shop]\nport = 20007\n[services.shop.instances]\n1 = "app2"\n')
    result = allocate(example(), lock)
    assert result.ports["shop"] == 20007
    assert result.hosts["shop"] == {1: "app2", 2: "app1"}
    assert {i.port for i in result.instances("shop")} == {20007}
    with pytest.raises(ModelError) as caught:
        allocate(
            example(
                lambda d: d["system"].update({"port-range": "20000-20000"}),
                lambda d: d["services"]["db"].update(port="auto"),
            )
        )
    assert str(caught.value) == (
        "[system] port-range: no free port for shop (expected a range "
        "with room for 2 automatic ports)"
    )


def test_the_lock_format():
    assert (
        allocate(example()).text(example())
        == """\
# Allocation lock of the system shop (shop.toml): the host of every instance
# and the port of every service. Written by system-recipes; keep it in git beside the model.
# Change the model, not this file; a move or a port change needs --allow-moves.

[services.db]
port = 5432

[services.db.instances]
1 = "db1"

[services.lb]
port = 80

[services.lb.instances]
1 = "lb1"

[services.shop]
port = 20000

[services.shop.instances]
1 = "app1"
2 = "app2"
"""
    )


@pytest.mark.parametrize(
    "text,line",
    [
        (
            "[services.shop]\nport = 'x'\n",
            "lock: [services.shop] port: the string 'x' is not an "
            "integer (expected a port number 1-65535)",
        ),
        (
            "[services.shop.instances]\n0 = 'app1'\n",
            "lock: [services.shop.instances.0]: '0' is not "
            "a valid name (expected an instance number)",
        ),
        (
            "[services.shop]\nhosts = 1\n",
            "lock: [services.shop] hosts: unknown key (expected one of instances, port)",
        ),
        (
            "[services\n",
            "lock: not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 1, column 10)",
        ),
    ],
)
def test_a_damaged_lock_is_one_line_naming_it(text, line):
    with pytest.raises(ModelError) as caught:
        parse_lock(text)
    assert str(caught.value) == line


def test_update_writes_the_lock_only_when_everything_could_be_allocated(tmp_path):
    model = tmp_path / "shop.toml"
    shutil.copy(SHOP, model)
    _, allocation = update(str(model))
    lock = tmp_path / "shop.lock.toml"
    written = lock.read_bytes()
    with open(SHOP.replace(".toml", ".lock.toml"), "rb") as stream:
        assert written == stream.read()
    assert len(allocation.changes) == 7
    assert update(str(model))[1].changes == [] and lock.read_bytes() == written
    model.write_text(model.read_text().replace("instances = 2", "instances = 3"))
    with pytest.raises(ModelError, match="no host for shop.3"):
        update(str(model))
    assert lock.read_bytes() == written
    assert sorted(os.listdir(tmp_path)) == ["shop.lock.toml", "shop.toml"]
    model.write_text(model.read_text().replace("instances = 3", "instances = 1"))
    _, allocation = update(str(model), write=False)
    assert allocation.changes == ["shop.2: released"] and lock.read_bytes() == written
    update(str(model))
    assert "shop.2" not in lock.read_text() and '2 = "app2"' not in lock.read_text()

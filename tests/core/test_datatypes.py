"""One converter per datum (issue 22): a port and an endpoint are read and written by
core/declare/datatypes.py alone, for the recipes and the system model alike."""

from __future__ import annotations

import doctest
import ipaddress
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import system_recipes
from system_recipes.core.declare import datatypes
from system_recipes.core.declare.datatypes import format_endpoint, parse_endpoint, port
from system_recipes.fleet.model.values import Port, PortRange
from system_recipes.recipes.haproxy import Endpoint

PACKAGE = os.path.dirname(os.path.abspath(system_recipes.__file__))


def test_the_port_range_is_stated_once():
    """65535 (or 65536) appears in core/declare/datatypes.py only: every other module asks it."""
    found = []
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(directory, name)
            if (
                name.endswith(".py")
                and os.path.relpath(path, PACKAGE) != "core/declare/datatypes.py"
            ):
                for number, line in enumerate(open(path, encoding="utf-8"), start=1):
                    # a port range, not a buffer size (host_step clips a diff to 64 KiB)
                    if re.search(r"\b6553[56]\b", line) and "[:65536]" not in line:
                        found.append(f"{os.path.relpath(path, PACKAGE)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("value, number", [("1", 1), ("080", 80), ("65535", 65535), (443, 443)])
def test_a_port(value, number):
    assert port(value) == number


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "0 is out of range"),
        ("65536", "65536 is out of range"),
        ("123456", "123456 is out of range"),
        (70000, "70000 is out of range"),
        ("", "'' is not a port number"),
        (" 80", "' 80' is not a port number"),
        ("+80", "'+80' is not a port number"),
        ("8_080", "'8_080' is not a port number"),
        (True, "True is not a port number"),
        ("9" * 5000, "out of range"),
    ],
)
def test_not_a_port(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        port(value)


def test_the_model_and_the_recipes_refuse_the_same_ports():
    for value in ("0", "65536", "x"):
        with pytest.raises(ValueError):
            port(value)
        with pytest.raises(ValueError):
            Endpoint(wildcard=True).parse(f"*:{value}")
    with pytest.raises(ValueError, match="70000 is out of range"):
        Port().parse(70000)
    with pytest.raises(ValueError, match="'0-80' is not a range of ports from low to high"):
        PortRange().parse("0-80")
    assert PortRange().parse("20000-20999") == (20000, 20999)
    assert Port().expected == "a port number 1-65535"


@pytest.mark.parametrize(
    "text, wildcard, parsed, written",
    [
        ("10.0.0.1:80", False, ("10.0.0.1", 80), "10.0.0.1:80"),
        ("[2001:DB8:0::1]:0443", False, ("2001:db8::1", 443), "[2001:db8::1]:443"),
        ("db.example:5432", False, ("db.example", 5432), "db.example:5432"),
        ("*:80", True, ("*", 80), "*:80"),
        (":80", True, ("", 80), ":80"),
    ],
)
def test_an_endpoint(text, wildcard, parsed, written):
    assert parse_endpoint(text, wildcard) == parsed
    assert format_endpoint(*parsed) == written
    assert Endpoint(wildcard).parse(text) == written


@pytest.mark.parametrize(
    "text, message",
    [
        ("10.0.0.1", "'10.0.0.1' has no port"),
        ("*:80", "'*' is not an address or host name"),
        ("10.0.0.1:70000", "port '70000' is not a port from 1 to 65535"),
        ("::1:80", "'::1:80': write an IPv6 address in brackets, [::1]:80"),
        ("[::g]:80", "'[::g]' is not an IPv6 address"),
        ("300.1.1.1:80", "'300.1.1.1' is not an IPv4 address"),
        ("-a:80", "'-a' is not an address or host name"),
    ],
)
def test_not_an_endpoint(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_endpoint(text)


@given(
    address=st.one_of(
        st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), st.just("db.example")
    ),
    number=st.integers(1, 65535),
)
def test_what_the_compiler_writes_the_haproxy_recipe_reads_back(address, number):
    """fleet/compile/wiring.py writes a backend with format_endpoint; the haproxy recipe reads it."""
    written = format_endpoint(address, number)
    host, read = parse_endpoint(written)
    assert read == number
    assert (
        host == address
        if address == "db.example"
        else ipaddress.ip_address(host) == ipaddress.ip_address(address)
    )
    assert Endpoint(wildcard=False).parse(written) == written


def test_the_examples_of_the_module_hold():
    assert doctest.testmod(datatypes).failed == 0

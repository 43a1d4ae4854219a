"""One converter per datum that the recipes and the system model both read or write (issue 22):
a port, and an endpoint ``ADDRESS:PORT`` (an IPv6 address in brackets). Pure functions, each
raising ValueError that names the value (clipped), in the style of supervisor's datatypes.py;
the option types of :mod:`.schema` and of the model (``fleet/model/values.py``) are built on them.

>>> port("8080"), port(443)
(8080, 443)
>>> parse_endpoint("[2001:DB8::0:1]:443")
('2001:db8::1', 443)
>>> format_endpoint("2001:db8::1", 443), format_endpoint("*", 80)
('[2001:db8::1]:443', '*:80')
"""

from __future__ import annotations

import ipaddress
import re

from system_recipes.core.declare.errors import clip, shown

LOWEST_PORT, HIGHEST_PORT = 1, 65535
PORT_EXPECTED = f"a port number {LOWEST_PORT}-{HIGHEST_PORT}"

#: a host name (each label 1-63 letters, digits or '-', not at either end; 253 at most; a
#: final dot allowed)
HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
#: what an endpoint's address may be instead of a host when it listens everywhere
WILDCARDS = ("", "*")


def port(value: int | str) -> int:
    """A TCP port, 1-65535: an integer, or its decimal digits as written (no sign, no blanks).
    ValueError: ``'x' is not a port number``, ``70000 is out of range``."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]+", value):
            raise ValueError(f"{shown(value)} is not a port number")
        if len(value) > len(str(HIGHEST_PORT)):
            raise ValueError(f"{clip(value)} is out of range")
        value = int(value)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{shown(value)} is not a port number")
    if not LOWEST_PORT <= value <= HIGHEST_PORT:
        raise ValueError(f"{clip(str(value))} is out of range")
    return value


def parse_endpoint(text: str, wildcard: bool = False) -> tuple[str, int]:
    """``ADDRESS:PORT`` -> ``(address, port)``: the address an IPv4 address, an IPv6 address in
    brackets (returned compressed, without them), a host name, or (``wildcard``) empty or
    ``*``. ValueError with the problem."""
    address, sep, digits = text.rpartition(":")
    if not sep:
        raise ValueError(f"{shown(text)} has no port")
    try:
        number = port(digits)
    except ValueError:
        raise ValueError(
            f"port {shown(digits)} is not a port from {LOWEST_PORT} to {HIGHEST_PORT}"
        ) from None
    if wildcard and address in WILDCARDS:
        return address, number
    if address.startswith("[") and address.endswith("]"):
        try:
            return ipaddress.IPv6Address(address[1:-1]).compressed, number
        except ValueError:
            raise ValueError(f"{shown(address)} is not an IPv6 address") from None
    if ":" in address:
        raise ValueError(f"{shown(text)}: write an IPv6 address in brackets, [::1]:{number}")
    if re.fullmatch(r"[0-9.]+", address):
        try:
            return str(ipaddress.IPv4Address(address)), number
        except ValueError:
            raise ValueError(f"{shown(address)} is not an IPv4 address") from None
    if not HOST_NAME.fullmatch(address):
        raise ValueError(f"{shown(address)} is not an address or host name")
    return address, number


def format_endpoint(address: str, number: int) -> str:
    """``ADDRESS:PORT`` as :func:`parse_endpoint` reads it: an IPv6 address in brackets."""
    if ":" in address:
        address = f"[{ipaddress.IPv6Address(address).compressed}]"
    return f"{address}:{port(number)}"

"""The allocation lock: a small TOML file beside the model, kept in git with it.

``tomllib`` only reads TOML; :func:`dumps` writes it with tomli-w, always the same bytes for
the same data: keys in order (numbers by value), one table per header, the header as comments
above. The writer of the lock is ``write_atomic`` (.step_basics): it replaces the file in one
step, so a reader sees the old lock or the new one, never half of one.

>>> print(dumps({"services": {"shop": {"port": 20000, "instances": {"10": "b", "2": "a"}}}}))
[services.shop]
port = 20000
<BLANKLINE>
[services.shop.instances]
2 = "a"
10 = "b"
<BLANKLINE>
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomli_w

from system_recipes.core.buildout.reading import byte_problem
from system_recipes.core.declare.schema import Line, Option
from system_recipes.fleet.model.tables import ModelError, Table
from system_recipes.fleet.model.values import NAME, NAME_EXPECTED, Int, Port, Str


def order(name: str) -> tuple:
    """Numbers by value (instance 10 after 9), then names."""
    return (0, int(name), "") if re.fullmatch(r"[0-9]+", name) else (1, 0, name)


def ordered(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the keys of every table in :func:`order` (tomli-w keeps a dict's order)."""
    return {
        name: ordered(data[name]) if isinstance(data[name], dict) else data[name]
        for name in sorted(data, key=order)
    }


def dumps(data: dict[str, Any], header: str = "") -> str:
    """``data`` as TOML text: ``header`` lines become comments at the top, and a blank line
    parts them from the first table."""
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    text = tomli_w.dumps(ordered(data))
    return comments + ("\n" if comments and text.startswith("[") else "") + text


LOCK = Table(
    "",
    keys=[
        # what `fleet apply` last stamped: an integer that grows with what is applied, and the
        # sha256 of the compiled system it stands for (absent until the first apply)
        Option("revision", Int(0)),
        Option("digest", Str(Line(r"sha256:[0-9a-f]{64}", "sha256: and 64 hex digits"))),
        Option(
            "services",
            Table(
                "services",
                free=Table(
                    "services.NAME",
                    keys=[
                        Option("port", Port()),
                        Option(
                            "instances",
                            Table(
                                "services.NAME.instances",
                                free=Str(Line(NAME, NAME_EXPECTED)),
                                free_name=Line(r"[1-9][0-9]{0,3}", "an instance number"),
                                implicit=True,
                            ),
                        ),
                    ],
                ),
                free_name=Line(NAME, NAME_EXPECTED),
                implicit=True,
            ),
        ),
    ],
)


Stamp = tuple[int, str]  # (revision, digest) of the lock; (0, "") before the first apply
Lock = tuple[dict[str, int], dict[str, dict[int, str]], Stamp]


def read_lock(path: str) -> Lock:
    """``(ports, hosts, stamp)`` of the lock in ``path``: ``{service: port}``, ``{service:
    {number: host}}``, ``(revision, digest)``; empty when there is no lock yet. A damaged lock
    is one line naming it."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
        return loads_lock(raw.decode("utf-8"), path)
    except FileNotFoundError:
        return {}, {}, (0, "")
    except OSError as error:
        raise ModelError(None, None, error.strerror or str(error), source=path) from None
    except UnicodeDecodeError as error:
        raise ModelError(None, None, byte_problem(raw, error.start), source=path) from None


def loads_lock(text: str, source: str = "lock") -> Lock:
    """:func:`read_lock` of a lock's text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ModelError(None, None, f"not valid TOML: {error}", source=source) from None
    values = LOCK.parse_table("", data, source=source)
    services = values.services
    ports = {name: entry.port for name, entry in services.items() if entry.port is not None}
    hosts = {
        name: {int(number): host for number, host in entry.instances.items()}
        for name, entry in services.items()
    }
    return ports, hosts, (values.revision or 0, values.digest or "")

"""PostgreSQL's client authentication file (pg_hba) judged offline: a parser of the format
documented for PostgreSQL 15 (``hba_problems``: types, keywords, addresses read with getaddrinfo
as the server reads them, methods and their options), its validator, and the tokens the
``postgresql-access`` recipe writes into the file.

Why a parser of our own: PostgreSQL 15 (Debian 12) reads ``pg_hba.conf`` only inside a running
server (at start, on SIGHUP, and in the ``pg_hba_file_rules`` view); ``postgres -C`` stops
before it loads the file, and no program checks one offline. tests/recipes/test_postgresql_access.py
feeds the same lines to a real server's ``pg_hba_file_rules`` and requires the same verdicts.
Separate from :mod:`.postgresql` (the cluster's configuration, its ``postgres -C`` check and its
reload) because it is a self-contained format: it needs no cluster, no program, no account.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from system_recipes.core.declare.errors import shown
from system_recipes.core.hooks import validate

# the methods of PostgreSQL 15's client authentication (auth methods, chapter 21.1), with the
# options each takes; sspi and bsd exist only on Windows and OpenBSD: postgres refuses them here
METHOD_OPTIONS: dict[str, set[str]] = {
    "trust": set(),
    "reject": set(),
    "scram-sha-256": set(),
    "md5": set(),
    "password": set(),
    "gss": {"include_realm", "map", "krb_realm"},
    "ident": {"map"},
    "peer": {"map"},
    "ldap": {
        "ldapserver",
        "ldapport",
        "ldapscheme",
        "ldaptls",
        "ldapprefix",
        "ldapsuffix",
        "ldapbasedn",
        "ldapbinddn",
        "ldapbindpasswd",
        "ldapsearchattribute",
        "ldapsearchfilter",
        "ldapurl",
    },
    "radius": {"radiusservers", "radiussecrets", "radiusidentifiers", "radiusports"},
    "cert": {"map", "clientname"},
    "pam": {"pamservice", "pam_use_hostname"},
}
NOT_ON_LINUX = {"sspi", "bsd"}
HOST_TYPES = ("host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
ADDRESS_KEYWORDS = ("all", "samehost", "samenet")
# an unquoted hba token that names one database or role (NAMEDATALEN - 1 = 63 bytes)
NAME_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}")
HOSTNAME = re.compile(
    r"\.?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]"
    r"{0,61}[A-Za-z0-9])?)*"
)
# Debian's default pg_hba.conf keeps these local (Unix socket) lines: the postgres account (and
# every local account as its own role) log in by peer authentication, so the cluster stays
# administrable (pg_ctlcluster, pg_dump, psql as postgres) whatever the host lines say
DEBIAN_LOCAL_LINES = (
    ("local", "all", "postgres", "peer"),
    ("local", "all", "all", "peer"),
    ("local", "replication", "all", "peer"),
)


# -- the hba format (PostgreSQL 15) -----------------------------------------------------------
def _tokens(line: str) -> list[tuple[str, bool]]:
    """Fields of one line as (text, quoted); ``#`` outside quotes starts a comment. A field is
    a comma-separated list: it is returned whole, its commas kept."""
    fields: list[tuple[str, bool]] = []
    current, quoted, in_quotes, started = [], False, False, False
    for char in line:
        if in_quotes:
            if char == '"':
                in_quotes = False
            else:
                current.append(char)
            continue
        if char == "#":
            break
        if char in " \t":
            if started:
                fields.append(("".join(current), quoted))
                current, quoted, started = [], False, False
            continue
        started = True
        if char == '"':
            in_quotes = quoted = True
        else:
            current.append(char)
    if in_quotes:
        raise ValueError("unterminated quoted string")
    if started:
        fields.append(("".join(current), quoted))
    return fields


def _names(field: tuple[str, bool], what: str) -> str | None:
    """An empty item of a database or role list is refused (a long name simply never
    matches: PostgreSQL does not refuse it)."""
    if any(not item for item in field[0].split(",")) and not field[1]:
        return f"empty {what} in a list"
    return None


def _numeric(text: str) -> int | None:
    """The address family of a numeric address as getaddrinfo(AI_NUMERICHOST) reads it (what
    PostgreSQL calls: it takes ``10.1`` and ``255.255.0`` as glibc does); None: not numeric,
    so PostgreSQL takes it as a host name."""
    try:
        # bytes: a str would be IDNA-encoded first, which refuses names glibc is never shown
        return socket.getaddrinfo(text.encode(), None, flags=socket.AI_NUMERICHOST)[0][0]
    except socket.gaierror as error:
        if error.errno == socket.EAI_NONAME:
            return None
        raise ValueError(str(error)) from None
    except (UnicodeError, ValueError):
        raise ValueError("not an address") from None


def _cidr_bits(text: str, family: int) -> bool:
    """pg_sockaddr_cidr_mask(): strtol() of the whole text, within the family's bits."""
    match = re.fullmatch(r"\s*[+-]?[0-9]+", text)
    if not match:
        return False
    return 0 <= int(text) <= (32 if family == socket.AF_INET else 128)


def _address(fields: list[tuple[str, bool]]) -> tuple[str | None, int]:
    """(problem, fields used) for a host line's address, as parse_hba_line() reads it: a
    keyword, a host name (anything getaddrinfo does not take as numeric), an address with a
    CIDR mask, or an address followed by a mask field."""
    text, quoted = fields[0]
    if not quoted and text in ADDRESS_KEYWORDS:
        return None, 1
    host, slash, bits = text.partition("/")
    try:
        family = _numeric(host)
    except ValueError:
        return f"invalid IP address {shown(host)}", 1
    if slash:
        if family is None:
            return "specifying both host name and CIDR mask is invalid", 1
        if not _cidr_bits(bits, family):
            return f"invalid CIDR mask in address {shown(text)}", 1
        return None, 1
    if family is None:
        return None, 1
    if len(fields) < 2:
        return "end-of-line before netmask specification", 1
    try:
        mask = _numeric(fields[1][0])
    except ValueError:
        mask = None
    if mask is None:
        return f"invalid IP mask {shown(fields[1][0])}", 2
    if mask != family:
        return "IP address and mask do not match", 2
    return None, 2


def hba_line_problem(line: str, ssl: bool = True) -> str | None:
    """Why PostgreSQL 15 would refuse one line of pg_hba.conf (None: it takes it); ``ssl``:
    whether the server has ssl = on (without it, a hostssl line is refused)."""
    try:
        fields = _tokens(line)
    except ValueError as error:
        return str(error)
    if not fields:
        return None
    kind = fields[0][0]
    if kind != "local" and kind not in HOST_TYPES:
        return f"invalid connection type {shown(kind)}"
    if kind == "hostssl" and not ssl:
        return "hostssl record cannot match because SSL is disabled"
    if len(fields) < 3:
        return (
            "end-of-line before " + ("database" if len(fields) < 2 else "role") + " specification"
        )
    problem = _names(fields[1], "database") or _names(fields[2], "role")
    if problem:
        return problem
    rest = fields[3:]
    if kind != "local":
        if not rest:
            return "end-of-line before IP address specification"
        problem, used = _address(rest)
        if problem:
            return problem
        rest = rest[used:]
    return _method_problem(kind, rest)


def _method_problem(kind: str, rest: list[tuple[str, bool]]) -> str | None:
    """The authentication method and its options (the fields after the address), as
    parse_hba_line() reads them for a line of type ``kind``."""
    if not rest:
        return "end-of-line before authentication method"
    method = rest[0][0]
    if method in NOT_ON_LINUX:
        return f"{method} authentication is not supported on this platform"
    if method not in METHOD_OPTIONS:
        return f"invalid authentication method {shown(method)}"
    if method == "peer" and kind != "local":
        return "peer authentication is only supported on local sockets"
    if method == "ident" and kind == "local":
        method = "peer"  # what PostgreSQL 15 does with ident on a local line
    if method == "cert" and kind != "hostssl":
        return "cert authentication is only supported on hostssl connections"
    options: dict[str, str] = {}
    # an option field is a list like the others: an unquoted comma starts the next option
    words = [word for text, quoted in rest[1:] for word in ([text] if quoted else text.split(","))]
    for text in words:
        name, sep, value = text.partition("=")
        if not sep:
            return f"authentication option {shown(text)} is not in name=value format"
        allowed = METHOD_OPTIONS[method] | ({"clientcert"} if kind == "hostssl" else set())
        if name not in allowed:
            return f"authentication option {shown(name)} is not valid for {method}"
        options[name] = value
    return _option_problem(method, options)


def _option_problem(method: str, options: dict[str, str]) -> str | None:
    """The rules between options that parse_hba_line() enforces after reading a line."""
    clientcert = options.get("clientcert")
    if clientcert is not None:
        if clientcert not in ("verify-ca", "verify-full"):
            return f"invalid value for clientcert: {shown(clientcert)}"
        if method == "cert" and clientcert != "verify-full":
            return "clientcert only accepts verify-full when using cert authentication"
    # ldap without ldapserver finds its server in DNS (PostgreSQL 12 on); radius' mandatory
    # options are checked only when a client authenticates: neither is refused when loading
    if method == "ldap":
        simple = {"ldapprefix", "ldapsuffix"} & set(options)
        search = {
            "ldapbasedn",
            "ldapbinddn",
            "ldapbindpasswd",
            "ldapsearchattribute",
            "ldapsearchfilter",
        } & set(options)
        if simple and search:
            return "cannot mix options for simple bind and search+bind modes"
        if not simple and "ldapbasedn" not in options and "ldapurl" not in options:
            return (
                'authentication method "ldap" requires argument "ldapbasedn", '
                '"ldapprefix", or "ldapsuffix" to be set'
            )
    return None


def hba_problems(text: str, ssl: bool = True) -> list[tuple[int, str]]:
    """(line number, problem) for every line PostgreSQL 15 would refuse. A record cannot be
    continued on the next line in 15 (a trailing backslash is part of the last field)."""
    return [
        (number, problem)
        for number, line in enumerate(text.split("\n"), start=1)
        if (problem := hba_line_problem(line, ssl))
    ]


@dataclass(frozen=True)
class HbaContext:
    """What the ``postgresql-hba`` check knows besides the file: the option that wrote each of
    its lines (an error names that option)."""

    origins: tuple[str, ...] = ()


@validate.register
class HbaValidator(validate.Validator):
    """pg_hba: no program reads it offline in PostgreSQL 15 (see the module docstring)."""

    name = "postgresql-hba"
    tools = ()

    def check(self, items, context):
        errors: dict[int, str | validate.Problem] = {}
        for index, item in enumerate(items):
            content = item.file.content.decode("utf-8", "replace")
            problems = hba_problems(content)
            if problems:
                number, message = problems[0]
                origins = item.given(HbaContext).origins
                errors[index] = validate.locate(
                    f"PostgreSQL would not load this line: {message}", content, number, origins
                )
        return errors

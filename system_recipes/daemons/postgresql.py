"""PostgreSQL: where a cluster's configuration lives, how its client authentication file
(pg_hba) is judged, how a configuration fragment is checked by ``postgres`` itself, and how a
running cluster is reloaded.

Why two checks. PostgreSQL 15 (Debian 12) reads ``pg_hba.conf`` only inside a running server
(at start, on SIGHUP, and in the ``pg_hba_file_rules`` view); ``postgres -C`` stops before it
loads the file, and no program checks one offline. So the hba file is judged by a parser of the
format documented for 15 (``hba_problems``: types, keywords, addresses read with getaddrinfo as the server reads them,
methods and their options); tests/test_postgresql_access.py feeds the same lines to a real
server's ``pg_hba_file_rules`` and requires the same verdicts. The ``conf.d`` fragment is judged
by ``postgres -C`` on a copy of the cluster's configuration with the new fragment in place: the
real parser reads every file, and the values it reports must be the fragment's (another file of
``conf.d`` or ``postgresql.auto.conf`` setting ``hba_file`` later would silently win).
"""

from __future__ import annotations

import glob
import os
import posixpath
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable

from ..core import reload, validate
from ..core.errors import shown
from ..core.layout import Layout
from ..core.settings import Settings
from .common import reload_service

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
                origins = item.check.arguments[0] if item.check.arguments else ()
                errors[index] = validate.locate(
                    f"PostgreSQL would not load this line: {message}", content, number, origins
                )
        return errors


# -- postgresql.conf and the cluster --------------------------------------------------------
def quote(value: str | int) -> str:
    """A postgresql.conf value: single-quoted, a quote doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def cluster_directory(layout: Layout, version: str, cluster: str) -> str:
    return layout.postgresql_config.format(version=version, cluster=cluster)


def clusters(settings: Settings) -> list[tuple[str, str]]:
    """(version, cluster) of every cluster configuration below the root (Debian's
    postgresql-common layout: /etc/postgresql/VERSION/CLUSTER/postgresql.conf)."""
    pattern = settings.layout.postgresql_config.format(version="*", cluster="*")
    found = []
    for path in sorted(glob.glob(settings.target(posixpath.join(pattern, "postgresql.conf")))):
        parts = path.split("/")
        found.append((parts[-3], parts[-2]))
    return found


def _run_as(path: str) -> tuple[int, int]:
    """The account postgres runs as for a check: the owner of the cluster's configuration,
    else the postgres account, else nobody (postgres refuses to run as root)."""
    try:
        st = os.stat(path)
        if st.st_uid != 0:
            return st.st_uid, st.st_gid
    except OSError:
        pass
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    return 65534, 65534


def show_settings(
    postgres: str, config: str, names: tuple[str, ...], data_directory: str | None = None
) -> dict[str, str]:
    """What ``postgres -C NAME`` reports for each name, reading ``config`` (and what it
    includes); raises ValueError with postgres' own complaint. One process per name: -C
    prints one parameter."""
    uid, gid = _run_as(config)
    values = {}
    for name in names:
        command = [postgres, f"--config-file={config}", "-C", name]
        if data_directory:
            command[2:2] = ["-c", f"data_directory={data_directory}"]
        result = validate.run_tool(command, timeout=60, user=uid, group=gid, extra_groups=[])
        if result.returncode:
            lines = [
                line
                for line in result.stderr.splitlines()
                if "FATAL" in line
                or "ERROR" in line
                or "LOG:  unrecognized" in line
                or "LOG:  syntax error" in line
                or "LOG:  invalid" in line
            ]
            raise ValueError(
                " ".join(line.partition(":  ")[2] or line for line in lines[:2])
                or f"postgres -C {name} exited {result.returncode}"
            )
        values[name] = result.stdout.strip()
    return values


@validate.register
class ConfigValidator(validate.Validator):
    """``postgres -C`` on a copy of the cluster's configuration with the fragment in place.

    Check arguments: (cluster config directory, the directory of the PostgreSQL programs,
    ((parameter, expected value), ...)). The programs are the machine's, as for every
    validator; the configuration is the one below the root."""

    name = "postgresql-conf"
    tools = ()

    def check(self, items, context):
        errors: dict[int, str] = {}
        for index, item in enumerate(items):
            directory, programs, expected = item.check.arguments
            message = self._judge(item, context, directory, programs, dict(expected))
            if message:
                errors[index] = message
        return errors

    def _judge(self, item, context, directory: str, programs: str, expected: dict) -> str | None:
        postgres = posixpath.join(programs, "postgres")
        if not os.access(postgres, os.X_OK):
            return f"cannot validate: {postgres} is not installed (the PostgreSQL server package)"
        main = context.below(posixpath.join(directory, "postgresql.conf"))
        if not os.path.isfile(main):
            return f"no PostgreSQL cluster configuration {posixpath.join(directory, 'postgresql.conf')}"
        with tempfile.TemporaryDirectory(prefix="sr-postgresql-") as temporary:
            os.chmod(temporary, 0o755)
            copy = os.path.join(temporary, "postgresql.conf")
            shutil.copyfile(main, copy)
            included = os.path.join(temporary, "conf.d")
            os.mkdir(included)
            real_conf_d = context.below(posixpath.join(directory, "conf.d"))
            for name in sorted(os.listdir(real_conf_d)) if os.path.isdir(real_conf_d) else ():
                host_path = posixpath.join(directory, "conf.d", name)
                if host_path in context.leaving or host_path == item.file.path:
                    continue
                if os.path.isfile(os.path.join(real_conf_d, name)):
                    shutil.copyfile(os.path.join(real_conf_d, name), os.path.join(included, name))
            with open(os.path.join(included, posixpath.basename(item.file.path)), "wb") as out:
                out.write(item.file.content)
            for dirpath, _dirs, files in os.walk(temporary):
                os.chmod(dirpath, 0o755)
                for name in files:
                    os.chmod(os.path.join(dirpath, name), 0o644)
            try:
                data = show_settings(postgres, copy, ("data_directory",))["data_directory"]
                found = show_settings(
                    postgres,
                    copy,
                    tuple(expected),
                    data_directory=context.below(data) if data else None,
                )
            except ValueError as error:  # name the real files, not the copies
                return "postgres refuses the configuration: " + str(error).replace(
                    temporary, directory
                )
        for name, value in expected.items():
            if found.get(name) != str(value):
                return (
                    f"postgres -C {name} gives {shown(found.get(name))}, not this file's "
                    f"{shown(str(value))}: a later file of {directory}/conf.d or "
                    "postgresql.auto.conf (ALTER SYSTEM) sets it too, or postgresql.conf "
                    "has no include_dir = 'conf.d'"
                )
        return None


# -- the reload -----------------------------------------------------------------------------
SERVICE = re.compile(r"postgresql@(?P<version>[^-]+)-(?P<cluster>.+)")


def postmaster(data_directory: str) -> tuple[int, int, str] | None:
    """(pid, port, socket directory) from a running cluster's postmaster.pid."""
    try:
        with open(os.path.join(data_directory, "postmaster.pid"), encoding="utf-8") as stream:
            lines = stream.read().split("\n")
        return int(lines[0]), int(lines[3]), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None


#: what a reloaded (or restarted) cluster is asked: the settings still waiting for a restart,
#: and the rules of its pg_hba file it refused
PENDING_RESTART = (
    "SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart"
)
HBA_ERRORS = (
    "SELECT string_agg(line_number || ': ' || error, '; ') "
    "FROM pg_hba_file_rules WHERE error IS NOT NULL"
)


def ask_cluster(programs: str, data_directory: str, where: tuple[int, int, str], sql: str) -> str:
    """One query over the cluster's Unix socket as the account that owns its data, admitted by
    the kept ``local all postgres peer`` line; raises ValueError."""
    st = os.stat(data_directory)
    name = pwd.getpwuid(st.st_uid).pw_name
    result = subprocess.run(
        [
            posixpath.join(programs, "psql"),
            "-X",
            "-At",
            "-h",
            where[2] or "/run/postgresql",
            "-p",
            str(where[1]),
            "-U",
            name,
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        user=st.st_uid,
        group=st.st_gid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    if result.returncode:
        raise ValueError((result.stderr.strip().splitlines() or ["psql failed"])[-1])
    return result.stdout.strip()


#: ``restart(service, version, cluster, programs, data directory, pending) -> problem or None``
Restarter = Callable[[str, str, str, str, str, str], "str | None"]


@reload.register("postgresql")
def reload_postgresql(
    targets: list[str], settings: Settings, restart: Restarter | None = None
) -> reload.Outcome:
    """Reload each cluster (``systemctl reload`` under systemd, else SIGHUP, as ``pg_ctl
    reload`` does), then ask it whether it took the new rules: errors in pg_hba_file_rules, or
    parameters pending a restart (``port``, ``listen_addresses``) are problems -- unless
    ``restart`` is given (``postgresql-restart``, :mod:`.postgresql_restart`): then a cluster
    with parameters pending is restarted by it."""
    outcome = reload.Outcome()
    for service in targets:
        match = SERVICE.fullmatch(service)
        version, cluster = (match["version"], match["cluster"]) if match else ("", "")
        directory = cluster_directory(settings.layout, version, cluster)
        programs = settings.layout.postgresql_programs.format(version=version)
        config = os.path.join(directory, "postgresql.conf")
        try:
            data = (
                show_settings(os.path.join(programs, "postgres"), config, ("data_directory",))[
                    "data_directory"
                ]
                or directory
            )
        except (ValueError, OSError) as error:
            outcome.skipped[service] = f"its configuration cannot be read: {error}"
            continue
        where = postmaster(data)
        pidfile = os.path.join(data, "postmaster.pid")
        before = None
        if where:
            try:
                before = ask_cluster(programs, data, where, "SELECT pg_conf_load_time()")
            except (ValueError, OSError):
                before = None
        done = reload_service("postgresql", service, pidfile, ("postgres", "postmaster"))
        outcome.add(done)
        if not done.done or where is None:
            continue
        pending, problem = _after_reload(programs, data, where, before, service, version, cluster)
        if pending and restart is not None:
            problem = restart(service, version, cluster, programs, data, pending)
        if problem:
            outcome.problems.append(problem)
    return outcome


def _after_reload(
    programs: str, data: str, where, before: str | None, service: str, version: str, cluster: str
) -> tuple[str, str | None]:
    """(the parameters pending a restart, the problem: none, a restart needed, rules refused)."""
    deadline = time.monotonic() + 10
    try:
        while before is not None and time.monotonic() < deadline:
            if ask_cluster(programs, data, where, "SELECT pg_conf_load_time()") != before:
                break
            time.sleep(0.1)
        pending = ask_cluster(programs, data, where, PENDING_RESTART)
        # hba_file itself takes effect at a restart only: until then the old file is read
        errors = "" if "hba_file" in pending else ask_cluster(programs, data, where, HBA_ERRORS)
    except (ValueError, OSError) as error:
        return (
            "",
            f"{service} was reloaded, but could not be asked whether it took the rules: {error}",
        )
    if pending:
        how = f"pg_ctlcluster {version} {cluster} restart" if version else f"restart {service}"
        return pending, f"{service} needs a restart for {pending} ({how})"
    if errors:
        return "", f"{service} refused its pg_hba file and kept the old rules: {errors}"
    return "", None

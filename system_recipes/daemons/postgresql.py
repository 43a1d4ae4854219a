"""PostgreSQL: where a cluster's configuration lives, how a configuration fragment is checked
by ``postgres`` itself, and how a running cluster is reloaded and asked whether it took the
new rules. The client authentication file (pg_hba) is judged by :mod:`.postgresql_hba`.

The ``conf.d`` fragment is judged by ``postgres -C`` on a copy of the cluster's configuration
with the new fragment in place: the real parser reads every file, and the values it reports
must be the fragment's (another file of ``conf.d`` or ``postgresql.auto.conf`` setting
``hba_file`` later would silently win).
"""

from __future__ import annotations

import glob
import os
import posixpath
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.layout import Layout
from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.daemons.common import reload_service


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


@dataclass(frozen=True)
class PostgresqlConfContext:
    """What the ``postgresql-conf`` check knows besides the fragment: the cluster's
    configuration ``directory``, the directory of the PostgreSQL ``programs`` and the
    ``expected`` value of each parameter, ``((parameter, value), ...)``."""

    directory: str
    programs: str
    expected: tuple[tuple[str, str], ...] = ()


@validate.register
class ConfigValidator(validate.Validator):
    """``postgres -C`` on a copy of the cluster's configuration with the fragment in place,
    as its :class:`PostgresqlConfContext` says. The programs are the machine's, as for every
    validator; the configuration is the one below the root."""

    name = "postgresql-conf"
    tools = ()

    def check(self, items, context):
        errors: dict[int, str] = {}
        for index, item in enumerate(items):
            given = item.given(PostgresqlConfContext)
            message = self._judge(
                item, context, given.directory, given.programs, dict(given.expected)
            )
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

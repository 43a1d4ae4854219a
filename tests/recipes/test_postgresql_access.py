"""postgresql-access against a real PostgreSQL 15 cluster created inside the sandbox; the hba
parser against the real server's pg_hba_file_rules; bad input."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
from support.markers import needs
from support.results import ok, one_error_line, snapshot

from system_recipes.daemons.postgresql_hba import hba_problems

VERSION, CLUSTER = "15", "sr"
CONFIG = f"/etc/postgresql/{VERSION}/{CLUSTER}"
BIN = f"/usr/lib/postgresql/{VERSION}/bin"

PROFILE = """
[buildout]
extends = {base}
parts = db-access

[db-access]
recipe = system_recipes:postgresql-access
cluster = %(cluster)s
listen = 127.0.0.1,::1
port = %(port)d
clients =
%(clients)s
"""

# lines PostgreSQL 15 takes, and lines it refuses: the parser must say the same of each
HBA_SAMPLES = """\
local all all peer
local all all ident
host all all 10.0.0.0/8 scram-sha-256
host shop shop 10.77.0.11/32 md5
hostssl all all ::1/128 cert
host all all 192.168.0.0 255.255.0.0 trust
host all all samenet reject
host all all .example.com password
host "my db" all all scram-sha-256
host all +admins,bob 127.0.0.1/32 scram-sha-256
local all postgres peer map=admins
host all all 10.0.0.1/32 ldap ldapserver=ldap.example.com ldapprefix=cn= ldapsuffix=,dc=x
hostssl all all 0.0.0.0/0 scram-sha-256 clientcert=verify-full
host all all 10.0.0.1/32 pam pamservice=postgresql
host all all 10.1.2.3/24 trust
hostnossl all all all trust # a comment
hots all all 10.0.0.0/8 trust
host all all 10.0.0.0/33 trust
host all all 10.0.0.1 trust
host all all 10.0.0.0/8 peer
host all all 10.0.0.0/8 sspi
host all all 10.0.0.0/8 bsd
host all all 10.0.0.0/8 foo
host all all 10.0.0.0/8 cert
host all all 10.0.0.0/8 trust foo
host all all 10.0.0.0/8 md5 map=x
host all all
host all
host "unterminated all all trust
host all all 10.0.0.0/8 scram-sha-256 clientcert=verify-ca
hostssl all all 0.0.0.0/0 cert clientcert=verify-ca
host all all 10.0.0.1/32 ldap ldapbasedn=dc=x
host all all 10.0.0.1/32 ldap ldapserver=x ldapprefix=cn= ldapbasedn=dc=x
host all all 10.0.0.1/32 radius radiusservers=x
host all all 10.0.0.1/32 ldap ldapserver=x
host all all foo.example.com/24 trust
host all all 10.0.0.0/8x trust
host all all 10.0.0.1 ::ffff:0:0 trust
host all all 10.0.0.1/32 trust map=x,include_realm=0
host all all 10.0.0.1 255.255.0 trust
local all
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self, host, port: int):
        self.host, self.port = host, port

    def psql(
        self,
        sql: str,
        address: str | None = None,
        user: str = "postgres",
        database: str = "postgres",
        password: str = "secret-pw",
    ):
        """psql over TCP from ``address`` (127.0.0.1 or ::1), else as postgres over the socket."""
        if address is None:
            command = (
                f"runuser -u postgres -- {BIN}/psql -X -At -h /run/postgresql "
                f'-p {self.port} -d {database} -c "{sql}"'
            )
        else:
            command = (
                f"PGPASSWORD={password} PGCONNECT_TIMEOUT=10 {BIN}/psql -X -At "
                f'-h {address} -p {self.port} -U {user} -d {database} -c "{sql}"'
            )
        return self.host.sandbox.run(command, timeout=60)

    def pid(self) -> int:
        return int(
            self.host.read(f"/var/lib/postgresql/{VERSION}/{CLUSTER}/postmaster.pid").split()[0]
        )


@pytest.fixture
@needs("sandbox", "daemon")
def cluster(host):
    """A new cluster ``sr`` of the machine's PostgreSQL 15, inside the sandbox (not started)."""
    port = free_port()
    host.sandbox.run(
        f"pg_createcluster {VERSION} {CLUSTER} -p {port} >/dev/null", check=True, timeout=120
    )
    yield Cluster(host, port)
    host.sandbox.run(f"pg_ctlcluster {VERSION} {CLUSTER} stop -m immediate", timeout=60)


def profile(port: int, *clients: str, cluster: str = CLUSTER) -> str:
    return PROFILE % {
        "port": port,
        "cluster": cluster,
        "clients": "\n".join("    " + c for c in clients),
    }


def test_only_the_listed_clients_connect_and_a_change_is_reloaded(cluster):
    host = cluster.host
    host.write(profile(cluster.port, "127.0.0.1/32 shop shop"))
    out = ok(host.buildout()).stdout
    assert "postgresql (postgresql@15-sr) skipped (not running" in out, out
    hba = f"{CONFIG}/pg_hba.db-access.conf"
    assert host.read(f"{CONFIG}/conf.d/db-access.conf").splitlines()[2:] == [
        "listen_addresses = '127.0.0.1,::1'",
        f"port = {cluster.port}",
        f"hba_file = '{hba}'",
    ]
    rules = [
        line.split() for line in host.read(hba).splitlines() if line and not line.startswith("#")
    ]
    assert rules == [
        ["local", "all", "postgres", "peer"],
        ["local", "all", "all", "peer"],
        ["local", "replication", "all", "peer"],
        ["host", "shop", "shop", "127.0.0.1/32", "scram-sha-256"],
    ]
    stat = host.sandbox.stat(hba)
    assert stat.st_mode & 0o777 == 0o640

    host.sandbox.run(f"pg_ctlcluster {VERSION} {CLUSTER} start", check=True, timeout=120)
    pid = cluster.pid()
    assert cluster.psql("CREATE ROLE shop LOGIN PASSWORD 'secret-pw'").returncode == 0
    assert cluster.psql("CREATE DATABASE shop OWNER shop").returncode == 0
    assert (
        cluster.psql(
            "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"
        ).stdout.strip()
        == "0"
    )
    # listed: connects; ::1 is not listed (the server listens there): refused
    assert cluster.psql("SELECT 1", "127.0.0.1", "shop", "shop").stdout.strip() == "1"
    refused = cluster.psql("SELECT 1", "::1", "shop", "shop")
    assert refused.returncode != 0 and 'no pg_hba.conf entry for host "::1"' in refused.stderr
    wrong_user = cluster.psql("SELECT 1", "127.0.0.1", "postgres", "shop")
    assert 'no pg_hba.conf entry for host "127.0.0.1", user "postgres"' in wrong_user.stderr

    # the clients change: the running server takes the new rules on reload, same postmaster
    host.write(profile(cluster.port, "::1 shop shop"))
    out = ok(host.buildout()).stdout
    assert "reloads: postgresql (postgresql@15-sr)" in out, out
    assert cluster.psql("SELECT 1", "::1", "shop", "shop").stdout.strip() == "1"
    refused = cluster.psql("SELECT 1", "127.0.0.1", "shop", "shop")
    assert 'no pg_hba.conf entry for host "127.0.0.1"' in refused.stderr, refused.stderr
    assert cluster.pid() == pid

    # the parser says what the real server says of every sample line
    _compare_parser_with_server(cluster, hba)

    # a port change is written, reloaded, and reported as needing a restart
    other = free_port()
    host.write(profile(other, "::1 shop shop"))
    result = host.buildout()
    assert result.returncode != 0
    assert (
        f"postgresql@15-sr needs a restart for port (pg_ctlcluster {VERSION} {CLUSTER} restart)"
    ) in result.stdout + result.stderr
    assert cluster.pid() == pid

    # dropping the part removes both files; hba_file, like port, changes only at a restart
    # (the running server keeps the rules it loaded): said, with the command
    host.write("[buildout]\nextends = {base}\nparts =\n")
    result = host.buildout()
    assert not host.exists(hba) and not host.exists(f"{CONFIG}/conf.d/db-access.conf")
    output = result.stdout + result.stderr
    assert result.returncode and "postgresql@15-sr needs a restart for hba_file" in output, output
    host.sandbox.run(f"pg_ctlcluster {VERSION} {CLUSTER} restart", check=True, timeout=120)
    # Debian's own pg_hba.conf is in force again: 127.0.0.1 connects with a password
    assert cluster.psql("SELECT 1", "127.0.0.1", "shop", "shop").stdout.strip() == "1"


def test_restart_on_restarts_a_running_cluster_once_when_its_port_changed(cluster):
    host = cluster.host
    restart = "restart = on\n"
    host.write(profile(cluster.port, "127.0.0.1/32 shop shop") + restart)
    ok(host.buildout())
    host.sandbox.run(f"pg_ctlcluster {VERSION} {CLUSTER} start", check=True, timeout=120)
    pid = cluster.pid()
    # the clients change: a reload is enough, nothing is restarted
    host.write(profile(cluster.port, "::1 shop shop") + restart)
    out = ok(host.buildout()).stdout
    assert "reloads: postgresql-restart (postgresql@15-sr)" in out, out
    assert "restarted" not in out and cluster.pid() == pid
    # the port changes: reloaded, then restarted once, and listening on the new port
    cluster.port = free_port()
    host.write(profile(cluster.port, "::1 shop shop") + restart)
    out = ok(host.buildout()).stdout
    assert "system-recipes: postgresql: restarted postgresql@15-sr for port" in out, out
    assert cluster.pid() != pid
    assert cluster.psql("SHOW port").stdout.strip() == str(cluster.port)
    assert cluster.psql("SELECT count(*) FROM pg_settings WHERE pending_restart").stdout == "0\n"
    # the same again: nothing written, nothing restarted
    pid = cluster.pid()
    out = ok(host.buildout()).stdout
    assert "restarted" not in out and cluster.pid() == pid


def _compare_parser_with_server(cluster, hba: str) -> None:
    """pg_hba_file_rules reads the file afresh (the loaded rules stay): write the samples in
    the recipe's file, ask, and put the file back byte for byte."""
    path = cluster.host.path(hba)
    with open(path, "rb") as stream:
        original = stream.read()
    try:
        with open(path, "w") as stream:
            stream.write(HBA_SAMPLES)
        ssl = cluster.psql("SHOW ssl").stdout.strip() == "on"
        result = cluster.psql(
            "SELECT line_number, error FROM pg_hba_file_rules "
            "WHERE error IS NOT NULL ORDER BY line_number"
        )
        assert result.returncode == 0, result.stderr
        server = {
            int(line.split("|")[0]): line.split("|", 1)[1] for line in result.stdout.splitlines()
        }
    finally:
        with open(path, "wb") as stream:
            stream.write(original)
    parser = dict(hba_problems(HBA_SAMPLES, ssl))
    lines = HBA_SAMPLES.splitlines()
    disagree = [
        (n, lines[n - 1], server.get(n), parser.get(n))
        for n in range(1, len(lines) + 1)
        if (n in server) != (n in parser)
    ]
    assert not disagree, "\n".join(map(repr, disagree))
    assert len(server) >= 15  # the refused samples are refused by both


def test_a_later_conf_d_file_that_wins_is_refused(cluster):
    host = cluster.host
    host.sandbox.run(
        f"echo \"hba_file = '{CONFIG}/pg_hba.conf'\" > {CONFIG}/conf.d/zz-local.conf", check=True
    )
    host.write(profile(cluster.port, "127.0.0.1/32 shop shop"))
    before = snapshot(host, "/etc/postgresql")
    one_error_line(host.buildout(), "[db-access]", "postgres -C hba_file gives", "a later file of")
    assert snapshot(host, "/etc/postgresql") == before


def test_postgres_itself_refuses_a_bad_fragment(cluster):
    host = cluster.host
    host.write(
        profile(cluster.port, "127.0.0.1/32 shop shop").replace(
            "listen = 127.0.0.1,::1", "listen = 127.0.0.1"
        )
    )
    ok(host.buildout())
    # a broken fragment of someone else makes postgres refuse the whole configuration
    host.sandbox.run(f"echo 'port = many' > {CONFIG}/conf.d/other.conf", check=True)
    host.write(profile(cluster.port, "127.0.0.2/32 shop shop"))
    one_error_line(
        host.buildout(),
        "[db-access]",
        "postgres refuses the configuration",
        'invalid value for parameter "port": "many"',
        f'"{CONFIG}/conf.d/other.conf" contains errors',
    )


def test_version_and_cluster_default_to_the_single_cluster(scratch):
    config = os.path.join(scratch.root, "etc/postgresql/15/main")
    os.makedirs(os.path.join(config, "conf.d"))
    shutil.copy("/etc/postgresql/15/main/postgresql.conf", config)
    scratch.write("""
        [buildout]
        extends = {base}
        parts = db-access

        [system-recipes]
        root = {root}

        [db-access]
        recipe = system_recipes:postgresql-access
        clients = 10.77.0.11 shop shop
        """)
    ok(scratch.buildout())
    with open(os.path.join(config, "pg_hba.db-access.conf")) as stream:
        assert "host    shop            shop            10.77.0.11/32" in stream.read()
    os.makedirs(os.path.join(scratch.root, "etc/postgresql/15/other"))
    shutil.copy(
        "/etc/postgresql/15/main/postgresql.conf",
        os.path.join(scratch.root, "etc/postgresql/15/other"),
    )
    scratch.write("""
        [buildout]
        extends = {base}
        parts = db-access

        [system-recipes]
        root = {root}

        [db-access]
        recipe = system_recipes:postgresql-access
        clients = 10.77.0.12 shop shop
        """)
    one_error_line(
        scratch.buildout(),
        "[db-access] cluster:",
        "several clusters: main, other",
        "cluster = one of them",
    )


@pytest.mark.parametrize(
    "options, fragments",
    [
        ("clients = 10.0.0.1/24 shop shop", ("[db-access] clients:", "has host bits set")),
        ("clients = 10.0.0.1 shop", ("[db-access] clients:", "has 2 words, not 3")),
        ("clients = nothost shop shop", ("[db-access] clients:", "is not an address or network")),
        ("clients = 10.0.0.1 shop,all shop", ("[db-access] clients:", "not a plain name")),
        ('clients = 10.0.0.1 shop "x y"', ("[db-access] clients:", "has 4 words")),
        (
            "clients =\n    10.0.0.1 shop shop\n    10.0.0.1/32 shop shop",
            ("[db-access] clients:", "given twice"),
        ),
        ("listen = 10.0.0.1;evil", ("[db-access] listen:", "is not *, an address or a host name")),
        ("listen = '*'", ("[db-access] listen:", "is not *")),
        ("port = 70000", ("[db-access] port:", "out of range")),
        ("version = 99", ("[db-access] cluster:", "no PostgreSQL cluster in /etc/postgresql/99/*")),
        ("name = ../x", ("[db-access] name:", "escape its directory")),
        ("colour = blue", ("[db-access] colour:", "unknown option")),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(host, options, fragments):
    host.write(
        """
        [buildout]
        extends = {base}
        parts = db-access

        [db-access]
        recipe = system_recipes:postgresql-access
        """
        + options.replace("\n", "\n        ")
        + "\n"
    )
    before = snapshot(host, "/etc/postgresql")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc/postgresql") == before


def test_the_hba_check_names_the_option_of_a_refused_line():
    """The parser on its own: the first refused line with its problem."""
    assert hba_problems("local all all peer\nhost all all 10.0.0.0/8 peer\n") == [
        (2, "peer authentication is only supported on local sockets")
    ]

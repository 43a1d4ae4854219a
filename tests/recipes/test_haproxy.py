"""The haproxy recipe against the real haproxy, inside the sandbox: the file it writes, bad
input, what only ``haproxy -c`` sees, and a live haproxy balancing, checking and reloaded."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

import pytest
from support.markers import needs

from system_recipes.daemons.haproxy import unit_dropin

INCLUDE = "/etc/haproxy/conf.d"
DROPIN = "/etc/systemd/system/haproxy.service.d"

PROFILE = """
[buildout]
extends = {base}
parts = lb

[lb]
recipe = system_recipes:haproxy
"""


def profile(options: str) -> str:
    return PROFILE + textwrap.dedent(options).strip("\n") + "\n"


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def one_error_line(result, *fragments) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_the_file_and_the_drop_in_are_exactly_these(host):
    host.write(
        profile("""
        bind =
            127.0.0.1:8080
            [::1]:8080
        backends =
            shop-1 10.77.0.11:20000
            shop-2 [2001:db8::0:1]:20000
        health-check = /health
        """)
    )
    ok(host.buildout())
    assert host.read(f"{INCLUDE}/lb.cfg") == (
        "# haproxy frontend and backend of [lb], written by system-recipes: edits here are "
        "overwritten.\n"
        "# haproxy reads this after /etc/haproxy/haproxy.cfg, whose last defaults section "
        "applies here.\n"
        "frontend lb\n"
        "    mode http\n"
        "    bind 127.0.0.1:8080\n"
        "    bind [::1]:8080\n"
        "    default_backend lb\n"
        "\n"
        "backend lb\n"
        "    mode http\n"
        "    balance roundrobin\n"
        "    option httpchk GET /health\n"
        "    server shop-1 10.77.0.11:20000 check\n"
        "    server shop-2 [2001:db8::1]:20000 check\n"
    )
    dropin = host.read(f"{DROPIN}/system-recipes-lb.conf")
    assert (
        "ExecStart=\nExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -f $CFGDIR -p $PIDFILE "
        "$EXTRAOPTS\n" in dropin
    ), dropin
    assert 'Environment="CFGDIR=/etc/haproxy/conf.d"' in dropin
    # the package's files stay the package's
    assert host.read("/etc/haproxy/haproxy.cfg") == open("/etc/haproxy/haproxy.cfg").read()
    assert host.read("/etc/default/haproxy") == open("/etc/default/haproxy").read()


def test_tcp_mode_logs_tcp_and_checks_nothing(host):
    host.write(
        profile("""
        name = pg
        bind = *:5432
        mode = tcp
        balance = leastconn
        backends = db-1 db1.example.org:5432
        """).replace("db1.example.org", "localhost")
    )
    ok(host.buildout())
    text = host.read(f"{INCLUDE}/pg.cfg")
    assert "frontend pg\n    mode tcp\n    option tcplog\n    bind *:5432\n" in text, text
    assert "    balance leastconn\n    server db-1 localhost:5432\n" in text, text
    assert "httpchk" not in text and "check" not in text.split("backend pg")[1]


@pytest.mark.parametrize(
    "options, fragments",
    [
        ("bind = *:8080\nbackends = a 10.0.0.1:80\ncolour = blue", ("[lb] colour:", "unknown")),
        ("backends = a 10.0.0.1:80", ("[lb] bind:", "missing required option")),
        ("bind = *:80\nbackends =", ("[lb] backends:", "no servers")),
        (
            "bind = *:8080\nbackends = a 10.0.0.1:80\nmode = udp",
            ("[lb] mode:", "'udp' is not a choice"),
        ),
        ("bind = *:70000\nbackends = a 10.0.0.1:80", ("[lb] bind:", "port '70000' is not a port")),
        ("bind = 10.0.0.1\nbackends = a 10.0.0.1:80", ("[lb] bind:", "'10.0.0.1' has no port")),
        ("bind = 300.1.1.1:80\nbackends = a 10.0.0.1:80", ("[lb] bind:", "not an IPv4 address")),
        ("bind = ::1:80\nbackends = a 10.0.0.1:80", ("[lb] bind:", "in brackets, [::1]:80")),
        (
            "bind =\n    *:80\n    *:80\nbackends = a 10.0.0.1:80",
            ("[lb] bind:", "*:80 is given twice"),
        ),
        (
            "bind = *:80\nbackends =\n    a 10.0.0.1:80\n    a 10.0.0.2:80",
            ("[lb] backends:", "server a is given twice"),
        ),
        ("bind = *:80\nbackends = a *:80", ("[lb] backends:", "'*' is not an address")),
        (
            "bind = *:80\nbackends = a 10.0.0.1:80 check",
            ("[lb] backends:", "is not NAME ADDRESS:PORT"),
        ),
        (
            "bind = *:80\nbackends = a/b 10.0.0.1:80",
            ("[lb] backends:", "'a/b' is not a haproxy name"),
        ),
        (
            "bind = *:80\nbackends = a 10.0.0.1:80\nmode = tcp\nhealth-check = /health",
            ("[lb] health-check:", "sent only in mode http", "(expected mode = http, or no"),
        ),
        (
            "bind = *:80\nbackends = a 10.0.0.1:80\nhealth-check = /x #y",
            ("[lb] health-check:", "is not valid", "inline comments"),
        ),
        ("bind = *:80\nbackends = a 10.0.0.1:80\nhealth-check = health", ("[lb] health-check:",)),
        ("name = ../etc\nbind = *:80\nbackends = a 10.0.0.1:80", ("[lb] name:", "a haproxy name")),
        ("bind = *:80\nbackends = a 10.0.0.1:80\nbalance = random", ("[lb] balance:", "one of")),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(host, options, fragments):
    host.write(PROFILE + options + "\n")
    one_error_line(host.buildout(), *fragments)
    assert not host.exists(f"{INCLUDE}/lb.cfg")


def test_a_section_name_haproxy_cannot_use_must_be_renamed(host):
    host.write(PROFILE.replace("lb", "lb@x") + "bind = *:80\nbackends = a 10.0.0.1:80\n")
    one_error_line(host.buildout(), "[lb@x] name:", "'lb@x' is not a haproxy name")


def test_haproxy_c_refuses_what_the_schema_cannot_see_naming_the_option(host):
    # another file of the directory already has a frontend of that name
    host.sandbox.run(
        f"mkdir -p {INCLUDE} && printf 'frontend lb\\n    bind 127.0.0.1:9\\n'"
        f" > {INCLUDE}/local.cfg",
        check=True,
    )
    host.write(profile("bind = 127.0.0.1:8080\nbackends = a 10.0.0.1:80"))
    # haproxy names the second definition it reads (local.cfg), and ours as the first
    one_error_line(
        host.buildout(),
        f"[lb] name: haproxy -c: [{INCLUDE}/local.cfg:1]: frontend "
        "'lb' has the same name as frontend 'lb' declared at "
        f"{INCLUDE}/lb.cfg:3",
        f"(line 3 of {INCLUDE}/lb.cfg: 'frontend lb')",
    )
    assert not host.exists(f"{INCLUDE}/lb.cfg")
    host.sandbox.run(f"rm {INCLUDE}/local.cfg", check=True)
    # a host name haproxy cannot resolve, in a server and in a bind
    host.write(
        profile("bind = 127.0.0.1:8080\nbackends =\n    a 10.0.0.1:80\n    b nowhere.invalid:80")
    )
    one_error_line(
        host.buildout(),
        "[lb] backends: haproxy -c:",
        "could not resolve address 'nowhere.invalid'",
        "(line 12 of /etc/haproxy/conf.d/lb.cfg: 'server b nowhere.invalid:80')",
    )
    host.write(
        profile("bind =\n    127.0.0.1:8080\n    nowhere.invalid:8081\nbackends = a 10.0.0.1:80")
    )
    one_error_line(
        host.buildout(), "[lb] bind: haproxy -c:", "invalid address", "'bind nowhere.invalid:8081')"
    )
    assert not host.exists(f"{INCLUDE}/lb.cfg")


def test_the_drop_in_makes_debians_unit_read_the_directory(host, tmp_path):
    """systemd reads the drop-in beside Debian's unit without a complaint, and the unit's
    check command, expanded as systemd expands it, reads the directory's files."""
    units = tmp_path / "units"
    (units / "haproxy.service.d").mkdir(parents=True)
    unit = open("/lib/systemd/system/haproxy.service").read()
    (units / "haproxy.service").write_text(unit)
    dropin = unit_dropin(INCLUDE, "lb")
    (units / "haproxy.service.d" / "system-recipes-lb.conf").write_text(dropin)
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(units / "haproxy.service")],
        capture_output=True,
        text=True,
        env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:"),
        timeout=120,
    )
    assert verify.returncode == 0 and "system-recipes-lb.conf" not in verify.stderr, verify
    environment = {}
    for line in (unit + dropin).splitlines():
        if line.startswith("Environment="):
            for word in shlex.split(line.partition("=")[2]):
                key, _, value = word.partition("=")
                environment[key] = value
    check = [
        line.partition("=")[2]
        for line in dropin.splitlines()
        if line.startswith("ExecReload=") and "-c" in line
    ][0]
    argv = []
    for word in check.split():  # "$NAME" as a word of its own is split at whitespace
        argv += environment[word[1:]].split() if word.startswith("$") else [word]
    host.sandbox.run(
        f"mkdir -p {INCLUDE} && printf 'frontend x\\n    bogus\\n' > {INCLUDE}/broken.cfg",
        check=True,
    )
    # the package's own options stay (its master socket), the directory is added
    assert argv[-6:] == ["-f", INCLUDE, "-c", "-q", "-S", "/run/haproxy-master.sock"], argv
    assert host.sandbox.run(argv).returncode == 1  # it read the broken file (-q: silent)
    host.sandbox.run(f"rm {INCLUDE}/broken.cfg", check=True)
    assert host.sandbox.run(argv).returncode == 0


# -- live ---------------------------------------------------------------------------------------
class Live:
    """Backends and a haproxy inside the sandbox; every process is killed by its pid."""

    def __init__(self, host):
        self.host, self.pids = host, []

    def backend(self, word: str) -> tuple[int, int]:
        port = free_port()
        directory = f"/run/backend-{word}"
        self.host.sandbox.run(
            f"mkdir -p {directory} && echo {word} > {directory}/index.html "
            f"&& echo ok > {directory}/health",
            check=True,
        )
        process = self.host.sandbox.popen(
            [
                "python3",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                directory,
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pids.append(process.pid)
        wait_port(port)
        return port, process.pid

    def start_haproxy(self, port: int) -> int:
        # as Red Hat's unit and the drop-in start it: a master (-W) reading the directory
        self.host.sandbox.run(
            "install -d /run/haproxy && /usr/sbin/haproxy -W -D "
            f"-f /etc/haproxy/haproxy.cfg -f {INCLUDE} -p /run/haproxy.pid",
            check=True,
        )
        wait_port(port)
        pid = self.master()
        self.pids.append(pid)
        return pid

    def master(self) -> int:
        return int(self.host.read("/run/haproxy.pid").split()[0])

    def close(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
@needs("sandbox", "daemon")
def live(host):
    env = Live(host)
    yield env
    env.close()


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
        return answer.read().decode().strip()


def server_states(host, backend: str) -> dict[str, str]:
    """``show stat`` on the stats socket Debian's haproxy.cfg declares: server -> status."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(host.path("/run/haproxy/admin.sock"))
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    states = {}
    for line in data.decode().splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == backend and fields[1] not in ("FRONTEND", "BACKEND"):
            states[fields[1]] = fields[17]
    return states


def wait_state(host, backend: str, server: str, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_states(host, backend).get(server, "").startswith(state):
            return
        time.sleep(0.2)
    raise AssertionError(f"{server}: {server_states(host, backend)}")


def test_a_real_haproxy_balances_checks_and_is_reloaded_keeping_its_master(live):
    host = live.host
    (one, _), (two, two_pid) = live.backend("one"), live.backend("two")
    front = free_port()
    config = """
        bind = 127.0.0.1:%d
        backends =
            shop-1 127.0.0.1:%d
            shop-2 127.0.0.1:%d
        health-check = /health
        """
    host.write(profile(config % (front, one, two)))
    out = ok(host.buildout()).stdout
    assert "haproxy (haproxy) skipped (not running" in out, out
    master = live.start_haproxy(front)
    answers = [get(front) for _ in range(6)]
    assert answers in (["one", "two"] * 3, ["two", "one"] * 3), answers  # roundrobin
    wait_state(host, "lb", "shop-1", "UP")
    wait_state(host, "lb", "shop-2", "UP")

    # a stopped backend is marked down by the health check and gets no more requests
    os.kill(two_pid, signal.SIGKILL)
    wait_state(host, "lb", "shop-2", "DOWN")
    assert [get(front) for _ in range(4)] == ["one"] * 4

    # another backend in its place: a graceful reload, the same master, the new set
    three, _ = live.backend("three")
    host.write(profile((config % (front, one, three)).replace("shop-2", "shop-3")))
    out = ok(host.buildout()).stdout
    assert f"sent SIGUSR2 to haproxy master (pid {master})" in out, out
    assert "reloads: haproxy (haproxy)" in out, out
    assert live.master() == master and os.path.exists(f"/proc/{master}")
    deadline = time.monotonic() + 10
    while "shop-3" not in server_states(host, "lb") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(server_states(host, "lb")) == {"shop-1", "shop-3"}
    answers = [get(front) for _ in range(6)]
    assert sorted(answers) == ["one"] * 3 + ["three"] * 3, answers

    # a no-op run reloads nothing
    out = ok(host.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out  # the fast path
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout  # a full run
    assert "reloads: none" in out and "SIGUSR2" not in out, out

    # dropping the part removes the file and reloads: nothing listens there any more
    host.write("[buildout]\nextends = {base}\nparts =\n")
    out = ok(host.buildout()).stdout
    assert f"sent SIGUSR2 to haproxy master (pid {master})" in out, out
    assert not host.exists(f"{INCLUDE}/lb.cfg")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            get(front)
        except (urllib.error.URLError, ConnectionError):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("haproxy still answers on the dropped frontend")
    assert live.master() == master


def test_a_haproxy_that_does_not_read_the_directory_is_a_problem_not_a_reload(live):
    host = live.host
    front = free_port()
    host.write(profile(f"bind = 127.0.0.1:{front}\nbackends = a 127.0.0.1:9"))
    ok(host.buildout())
    # as Debian's init script starts it without EXTRAOPTS: the main file only
    other = free_port()
    host.sandbox.run(
        f"cp /etc/haproxy/haproxy.cfg /run/main.cfg && printf 'listen x\\n    bind "
        f"127.0.0.1:{other}\\n    server a 127.0.0.1:9\\n' >> /run/main.cfg && "
        "install -d /run/haproxy && /usr/sbin/haproxy -D -f /run/main.cfg "
        "-p /run/haproxy.pid",
        check=True,
    )
    wait_port(other)
    live.pids += [int(p) for p in host.read("/run/haproxy.pid").split()]
    host.write(profile(f"bind = 127.0.0.1:{front}\nbackends = a 127.0.0.1:10"))
    result = host.buildout()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "was started without -f /etc/haproxy/conf.d" in output, output
    assert 'EXTRAOPTS="-f /etc/haproxy/conf.d"' in output, output


def test_a_haproxy_without_a_master_is_replaced_by_one_that_finishes_the_old(live):
    host = live.host
    (one, _), (two, _) = live.backend("one"), live.backend("two")
    front = free_port()
    host.write(profile(f"bind = 127.0.0.1:{front}\nbackends = a 127.0.0.1:{one}"))
    ok(host.buildout())
    # as Debian's init script starts it with EXTRAOPTS="-f /etc/haproxy/conf.d": no master
    host.sandbox.run(
        "install -d /run/haproxy && /usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg "
        f"-D -p /run/haproxy.pid -f {INCLUDE}",
        check=True,
    )
    wait_port(front)
    old = int(host.read("/run/haproxy.pid").split()[0])
    live.pids.append(old)
    assert get(front) == "one"
    host.write(profile(f"bind = 127.0.0.1:{front}\nbackends = b 127.0.0.1:{two}"))
    out = ok(host.buildout()).stdout
    assert f"started a new haproxy that finishes pid {old}" in out, out
    new = int(host.read("/run/haproxy.pid").split()[0])
    live.pids.append(new)
    assert new != old
    assert get(front) == "two"
    deadline = time.monotonic() + 10
    while (
        os.path.exists(f"/proc/{old}/cmdline")
        and open(f"/proc/{old}/stat").read().split(")")[1].split()[0] != "Z"
    ):
        assert time.monotonic() < deadline, "the old haproxy did not finish"
        time.sleep(0.1)

"""The example application: its RPM builds, installs into a sandbox, runs, and upgrades."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from support.markers import needs
from support.net import free_port, get, wait_until
from support.rpmbuild import (
    EXAMPLE_APP,
    RPM_OVERLAYS,
    build_example_rpm,
    rpm_files,
    rpm_install,
    rpm_query,
    rpm_query_file,
)
from support.sandbox import Sandbox

SHOP_FILES = [
    "/opt/shop",
    "/opt/shop/VERSION",
    "/opt/shop/bin",
    "/opt/shop/bin/shop-cleanup",
    "/opt/shop/bin/shop-server",
]
DAY = 86400


def sha256(path: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


class Server:
    """shop-server started inside a sandbox; nsenter execs it, so Popen's PID is the server's."""

    def __init__(self, box: Sandbox, config: str, port: int, errlog: str):
        self.port = port
        self.errlog = errlog
        with open(errlog, "ab") as err:
            self.process = box.popen(
                ["/opt/shop/bin/shop-server", "--config", config],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_until(self._up, what=f"shop-server on port {port}")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"shop-server exited {self.process.returncode}:\n{self.stderr()}")
        try:
            return get(self.port, "/health", timeout=0.5)[0] == 200
        except OSError:
            return False

    def stderr(self) -> str:
        with open(self.errlog, encoding="utf-8", errors="replace") as stream:
            return stream.read()

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def stop(self) -> int:
        """SIGTERM, wait; SIGKILL by PID if it does not go. Returns the exit status."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
@needs("sandbox")
def rpm_box():
    box = Sandbox(overlays=RPM_OVERLAYS)
    try:
        yield box
    finally:
        box.close()


def write_config(box: Sandbox, port: int, log_file: str = "/var/log/shop/access.log") -> str:
    text = f"[server]\nport = {port}\nhost = 127.0.0.1\nlog-file = {log_file}\n"
    box.run("mkdir -p /etc/shop /var/log/shop && cat > /etc/shop/shop.ini", input=text, check=True)
    return "/etc/shop/shop.ini"


# -- the package file ---------------------------------------------------------------------------


def test_rpm_contents(example_rpms):
    for version in ("1.0", "2.0"):
        path = example_rpms(version)
        assert os.path.basename(path) == f"shop-{version}-1.noarch.rpm"
        assert rpm_files(path) == SHOP_FILES
        info = rpm_query_file(path, "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}\n")
        assert info == f"shop {version} 1 noarch\n"
        assert rpm_query_file(path, "--scripts") == ""
        requires = rpm_query_file(path, "--requires").split("\n")
        assert all(line.startswith("rpmlib(") for line in requires if line), requires


def test_build_is_fast_and_reproducible(tmp_path):
    started = time.monotonic()
    first = build_example_rpm("3.1", "7", str(tmp_path / "a"))
    assert time.monotonic() - started < 5
    second = build_example_rpm("3.1", "7", str(tmp_path / "b"))
    assert sha256(first) == sha256(second)
    assert sorted(os.listdir(tmp_path / "a")) == ["shop-3.1-7.noarch.rpm"]  # tree cleaned up
    with pytest.raises(ValueError, match="version"):
        build_example_rpm("1.0-beta", "1", str(tmp_path / "c"))


# -- the scripts, straight from the source tree ------------------------------------------------


def test_server_check_config(tmp_path):
    server = os.path.join(EXAMPLE_APP, "shop-server")
    good = tmp_path / "good.ini"
    good.write_text("[server]\nport = 8080\nlog-file = /var/log/shop/access.log\n")
    bad = tmp_path / "bad.ini"
    bad.write_text("[server]\nport = eighty\nlog-file = /var/log/shop/access.log\n")
    result = subprocess.run(
        [sys.executable, server, "--config", str(good), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, server, "--config", str(bad), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == f"shop-server: {bad}: [server] port: not an integer: 'eighty'\n"


def test_cleanup_removes_only_old_regular_files(tmp_path):
    cleanup = os.path.join(EXAMPLE_APP, "shop-cleanup")
    spool = tmp_path / "spool"
    spool.mkdir()
    now = time.time()
    for name, age in (("old-1", 10), ("old-2", 30), ("new", 1)):
        (spool / name).write_text(name)
        os.utime(spool / name, (now - age * DAY, now - age * DAY))
    (spool / "subdir").mkdir()
    os.utime(spool / "subdir", (now - 30 * DAY, now - 30 * DAY))
    outside = tmp_path / "outside"
    outside.write_text("keep")
    os.utime(outside, (now - 30 * DAY, now - 30 * DAY))
    os.symlink(outside, spool / "link")
    os.utime(spool / "link", (now - 30 * DAY, now - 30 * DAY), follow_symlinks=False)

    dry = subprocess.run(
        [sys.executable, cleanup, "--days", "7", "--dry-run", str(spool)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {spool}/old-1\n" in dry.stdout
    assert sorted(os.listdir(spool)) == ["link", "new", "old-1", "old-2", "subdir"]

    real = subprocess.run(
        [sys.executable, cleanup, "--days", "7", str(spool)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == [
        f"removed {spool}/old-1",
        f"removed {spool}/old-2",
        f"shop-cleanup: {spool}: removed 2 file(s) older than 7 day(s), kept 1",
    ]
    assert sorted(os.listdir(spool)) == ["link", "new", "subdir"]
    assert outside.read_text() == "keep"

    missing = subprocess.run(
        [sys.executable, cleanup, str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2
    assert "not a directory" in missing.stderr


# -- installed into a sandboxed host, run, upgraded --------------------------------------------


@pytest.mark.daemon
def test_install_run_and_upgrade(example_rpms, rpm_box, tmp_path):
    box = rpm_box
    host_state = (os.path.lexists("/opt/shop"), sorted(os.listdir("/var/lib/rpm")))
    rpm_install(box, example_rpms("1.0"))
    assert box.exists("/var/lib/rpm/rpmdb.sqlite")
    assert rpm_query(box, "shop") == "1.0-1"
    assert box.read("/opt/shop/VERSION") == "1.0\n"
    assert box.stat("/opt/shop/bin/shop-server").st_mode & 0o777 == 0o755
    version = box.run(["/opt/shop/bin/shop-cleanup", "--version"], check=True)
    assert version.stdout == "shop-cleanup 1.0\n"
    assert 'VERSION = "1.0"' in box.read("/opt/shop/bin/shop-server")  # baked in, not looked up
    # The machine's own /opt and rpm database are untouched.
    assert (os.path.lexists("/opt/shop"), sorted(os.listdir("/var/lib/rpm"))) == host_state

    port = free_port()
    config = write_config(box, port)
    log = "/var/log/shop/access.log"
    server = Server(box, config, port, str(tmp_path / "server-1.err"))
    try:
        assert get(port, "/health") == (200, "OK 1.0\n")
        assert get(port, "/") == (200, "shop 1.0\n")
        assert get(port, "/nope")[0] == 404
        lines = box.read(log).splitlines()
        assert [line.split()[2:] for line in lines[-3:]] == [
            ["GET", "/health", "200"],
            ["GET", "/", "200"],
            ["GET", "/nope", "404"],
        ]

        # logrotate's "move, then SIGHUP": the next request lands in a fresh file.
        box.run(["mv", log, log + ".1"], check=True)
        server.signal(signal.SIGHUP)
        wait_until(lambda: box.exists(log), what="log reopened after SIGHUP")
        get(port, "/health")
        assert box.read(log).split()[2:] == ["GET", "/health", "200"]
        assert "/nope" in box.read(log + ".1")
    finally:
        status = server.stop()
    assert status == 0, server.stderr()
    assert "stopped" in server.stderr()
    with pytest.raises(OSError):
        get(port, "/health", timeout=1)

    rpm_install(box, example_rpms("2.0"), upgrade=True)
    assert rpm_query(box, "shop") == "2.0-1"
    assert box.read("/opt/shop/VERSION") == "2.0\n"
    server = Server(box, config, port, str(tmp_path / "server-2.err"))
    try:
        assert get(port, "/health") == (200, "OK 2.0\n")
    finally:
        status = server.stop()
    assert status == 0, server.stderr()
    assert box.processes() == []

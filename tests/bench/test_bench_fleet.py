"""Smoke test of the fleet benchmark (bench/fleet.py) on 2 test hosts, once, fleet alone: it
still builds its hosts, runs the four scenarios, prints a table and writes the CSV.

No timed assertions (the machines are noisy): only that every scenario succeeded, that a no-op
changed nothing, that the change changed every host, and that nothing is left behind.
"""

from __future__ import annotations

import csv
import glob
import os
import subprocess
import sys

import pytest
from support.paths import REPO

FLEET = os.path.join(REPO, "bench", "fleet.py")


REGISTRY = "/tmp/sr-fleet-hosts"  # support/fleet_hosts.py: suffix -> the pid that made them


def left_by(pid: int) -> list[str]:
    """The test hosts a process made and did not remove (their registry entries)."""
    found = []
    for suffix in os.listdir(REGISTRY) if os.path.isdir(REGISTRY) else []:
        with open(os.path.join(REGISTRY, suffix)) as stream:
            if stream.read().strip() == str(pid):
                found.append(suffix)
    return found


@pytest.mark.sandbox
@pytest.mark.daemon
def test_fleet_benchmark_on_two_hosts(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    process = subprocess.Popen(
        [
            sys.executable,
            FLEET,
            "--hosts",
            "2",
            "--services",
            "2",
            "--repeat",
            "1",
            "--no-peers",
            "--no-plot",
            "--bin",
            os.path.dirname(sys.executable),
            "--results",
            str(results),
            "--workdir",
            str(work),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=600)
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "fleet median s" in done.stdout
    for scenario in ("first", "noop", "plan", "change"):
        assert any(line.split()[:2] == ["2", scenario] for line in done.stdout.splitlines()), (
            scenario
        )

    [csv_path] = glob.glob(str(results / "fleet-*.csv"))
    with open(csv_path, newline="") as stream:
        rows = {row["scenario"]: row for row in csv.DictReader(stream)}
    assert sorted(rows) == ["change", "first", "noop", "plan"]
    assert all(row["tool"] == "fleet" and row["status"] == "ok" for row in rows.values()), rows
    assert all(float(row["wall_s"]) > 0 and int(row["maxrss_kb"]) > 0 for row in rows.values())
    # hosts changed: both on the first run and on the change, none on a no-op apply or plan
    assert [rows[s]["changed"] for s in ("first", "noop", "plan", "change")] == ["2", "0", "0", "2"]
    # the hosts are gone: every set of hosts the run made was removed
    assert left_by(process.pid) == []

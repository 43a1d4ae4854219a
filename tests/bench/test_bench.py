"""Smoke tests of the converge benchmark (bench/converge.py) at N=2, in both shapes: it still runs
and counts.

No timed assertions (the machines are noisy): only what a run wrote and started. The benchmark
writes below scratch roots in its work directory, never below the real /etc.
"""

from __future__ import annotations

import csv
import glob
import os
import subprocess
import sys

import pytest
from support.paths import REPO

CONVERGE = os.path.join(REPO, "bench", "converge.py")
KINDS_DIRS = ("cron.d", "logrotate.d", "supervisor/conf.d", "nagios/nrpe.d")
SCENARIOS = ("first", "noop", "change", "plan")


def run_bench(tmp_path, shape: str) -> tuple[subprocess.CompletedProcess, dict]:
    """bench/converge.py at N=2, one run per scenario, system-recipes and the floor: its output and
    its CSV rows by (tool, scenario)."""
    results, work = tmp_path / "results", tmp_path / "work"
    done = subprocess.run(
        [
            sys.executable,
            CONVERGE,
            "--n",
            "2",
            "--shape",
            shape,
            "--repeat",
            "1",
            "--no-plot",
            "--bin",
            os.path.dirname(sys.executable),
            "--results",
            str(results),
            "--workdir",
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [csv_path] = glob.glob(str(results / "converge-*.csv"))
    with open(csv_path, newline="") as stream:
        rows = {(r["tool"], r["scenario"]): r for r in csv.DictReader(stream)}
    assert {r["shape"] for r in rows.values()} == {shape}
    return done, rows


def check_counts(done: subprocess.CompletedProcess, rows: dict) -> None:
    """What every shape shares: the table, identical bytes, the files each scenario writes."""
    assert "median s" in done.stdout and "validators" in done.stdout
    for scenario in SCENARIOS:
        assert any(
            line.split()[:3] == ["system-recipes", "2", scenario]
            for line in done.stdout.splitlines()
            if line.strip()
        ), scenario
    # the floor writes what system-recipes writes, byte for byte (else bench/templates/ is stale)
    assert "every tool wrote byte-identical files" in done.stdout, done.stdout
    # issue 15's targets are printed under the table, measured or not
    assert sum(line.startswith("target ") for line in done.stdout.splitlines()) == 8
    # system-recipes converge, once it exists, is a third tool without a plan of its own
    tools = {tool for tool, _ in rows}
    assert tools - {"converge"} == {"system-recipes", "floor"}
    for tool in tools:
        scenarios = SCENARIOS if tool != "converge" else SCENARIOS[:3]
        assert all(rows[(tool, s)]["status"] == "ok" for s in scenarios)
        assert float(rows[(tool, "first")]["wall_s"]) > 0
        assert int(rows[(tool, "first")]["maxrss_kb"]) > 0
        # five files per service; a no-op writes nothing; the changed port is in three files
        assert int(rows[(tool, "first")]["files_written"]) == 10
        assert int(rows[(tool, "noop")]["files_written"]) == 0
        assert int(rows[(tool, "change")]["files_written"]) == 3
        if tool != "converge":
            assert int(rows[(tool, "plan")]["files_written"]) == 0
            assert rows[(tool, "plan")]["reported"] == "3"
    # validators: none on a no-op run, at most one process per tool on a first run
    sr = {scenario: rows[("system-recipes", scenario)] for scenario in SCENARIOS}
    assert int(sr["noop"]["validators"]) == 0
    counts = dict(item.split(":") for item in sr["first"]["validators_detail"].split())
    assert all(int(count) == 1 for count in counts.values()), counts
    if "logrotate" not in sr["first"]["stand_ins"].split():
        assert "logrotate" in counts


@pytest.mark.sandbox
def test_converge_benchmark_explicit_shape_at_n2(tmp_path):
    done, rows = run_bench(tmp_path, "explicit")
    check_counts(done, rows)
    assert "shape explicit: five level-1 sections per service" in done.stdout
    assert rows[("system-recipes", "first")]["reported"] == "10"
    # everything landed below the scratch root
    root = tmp_path / "work" / "sr-explicit-2" / "root" / "etc"
    for directory in ("bench", *KINDS_DIRS):
        assert len(os.listdir(root / directory)) == 2, directory
    assert not os.path.exists("/etc/cron.d/svc0000")


@pytest.mark.sandbox
def test_converge_benchmark_meta_shape_at_n2(tmp_path):
    """One system_recipes:service section per service: the same five files per service (in the
    service section's own places), byte-identical between system-recipes and the floor."""
    done, rows = run_bench(tmp_path, "meta")
    check_counts(done, rows)
    assert "shape meta: one system_recipes:service section per service" in done.stdout
    work = tmp_path / "work"
    sr_root, floor_root = work / "sr-meta-2" / "root", work / "floor-meta-2" / "root"
    for i in range(2):
        name = f"svc{i:04d}"
        paths = [
            f"etc/{name}/app.ini",
            f"etc/cron.d/{name}",
            f"etc/logrotate.d/{name}",
            f"etc/supervisor/conf.d/{name}.conf",
            f"etc/nagios/nrpe.d/{name}.cfg",
        ]
        for path in paths:
            assert (sr_root / path).read_bytes() == (floor_root / path).read_bytes(), path
        # the service section's deployment part made the lib and run directories; so did the floor
        for directory in (f"var/lib/{name}", f"run/{name}"):
            assert (sr_root / directory).is_dir() and (floor_root / directory).is_dir()
        # the config file is the service section's: 0640, group of the service's user
        assert (sr_root / paths[0]).stat().st_mode & 0o777 == 0o640
        assert (floor_root / paths[0]).stat().st_mode & 0o777 == 0o640
    for directory in KINDS_DIRS:
        assert len(os.listdir(sr_root / "etc" / directory)) == 2, directory
    assert not os.path.exists("/etc/svc0000")

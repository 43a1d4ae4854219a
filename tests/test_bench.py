"""Smoke test of the converge benchmark (bench/converge.py) at N=2: it still runs and counts.

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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERGE = os.path.join(REPO, "bench", "converge.py")
KINDS_DIRS = ("bench", "cron.d", "logrotate.d", "supervisor/conf.d", "nagios/nrpe.d")


@pytest.mark.sandbox
def test_converge_benchmark_at_n2(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    done = subprocess.run(
        [
            sys.executable,
            CONVERGE,
            "--n",
            "2",
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

    # the table: a header and a row per tool and scenario
    assert "median s" in done.stdout and "validators" in done.stdout
    for scenario in ("first", "noop", "change", "plan"):
        assert any(
            line.split()[:3] == ["system-recipes", "2", scenario]
            for line in done.stdout.splitlines()
            if line.strip()
        ), scenario
    # the floor writes what system-recipes writes, byte for byte (else bench/templates/ is stale)
    assert "every tool wrote byte-identical files" in done.stdout, done.stdout

    [csv_path] = glob.glob(str(results / "converge-*.csv"))
    with open(csv_path, newline="") as stream:
        rows = {(r["tool"], r["scenario"]): r for r in csv.DictReader(stream)}
    assert {tool for tool, _ in rows} == {"system-recipes", "floor"}
    for tool in ("system-recipes", "floor"):
        assert all(rows[(tool, s)]["status"] == "ok" for s in ("first", "noop", "change", "plan"))
        assert float(rows[(tool, "first")]["wall_s"]) > 0
        assert int(rows[(tool, "first")]["maxrss_kb"]) > 0
        # five files per service; a no-op writes nothing; the changed port is in three files
        assert int(rows[(tool, "first")]["files_written"]) == 10
        assert int(rows[(tool, "noop")]["files_written"]) == 0
        assert int(rows[(tool, "change")]["files_written"]) == 3
        assert int(rows[(tool, "plan")]["files_written"]) == 0
        assert rows[(tool, "plan")]["reported"] == "3"

    sr = {scenario: rows[("system-recipes", scenario)] for scenario in ("first", "noop", "plan")}
    assert sr["first"]["reported"] == "10"
    # validators: none on a no-op run, at most one process per tool on a first run
    assert int(sr["noop"]["validators"]) == 0
    counts = dict(item.split(":") for item in sr["first"]["validators_detail"].split())
    assert all(int(count) == 1 for count in counts.values()), counts
    if "logrotate" not in sr["first"]["stand_ins"].split():
        assert "logrotate" in counts

    # everything landed below the scratch root
    root = work / "sr-2" / "root" / "etc"
    for directory in KINDS_DIRS:
        assert len(os.listdir(root / directory)) == 2, directory
    assert not os.path.exists("/etc/cron.d/svc0000")

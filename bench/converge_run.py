"""Running one tool: a timed subprocess (wall time, peak RSS), what it wrote, the validator
processes it started, and the four scenarios at one N."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

from converge_work import fresh_root

#: tools whose processes are counted: system-recipes' validators run these
VALIDATOR_TOOLS = ("logrotate", "crontab", "nagios4", "systemd-analyze", "sh")
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCENARIOS = ("first", "noop", "change", "plan")


@dataclass
class Outcome:
    wall: float
    maxrss_kb: int
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


def timed(argv: list[str], env: dict, cwd: str, timeout: float) -> Outcome:
    """Run ``argv``; wall time and the child's peak RSS from ``os.wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Outcome(
            wall,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            expired.is_set(),
        )


def snapshot(root: str) -> dict[str, tuple[int, int, int]]:
    """Every regular file below ROOT/etc: (inode, mtime_ns, size). Atomic writes change the
    inode, so a rewrite with identical content still counts as written."""
    result = {}
    for dirpath, _dirnames, filenames in os.walk(os.path.join(root, "etc")):
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            result[full] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return result


def written(before: dict, after: dict) -> int:
    return sum(1 for path, state in after.items() if before.get(path) != state)


def counting_shims(directory: str) -> str:
    """A bin directory of shims that log each validator tool's start to $BENCH_VALIDATOR_LOG
    and exec the real tool; placed first on PATH."""
    os.makedirs(directory, exist_ok=True)
    for tool in VALIDATOR_TOOLS:
        real = shutil.which(tool, path=SBIN_PATH)
        if real is None:
            continue
        path = os.path.join(directory, tool)
        with open(path, "w") as stream:
            stream.write(
                f'#!/bin/sh\nprintf "%s\\n" {tool} >> "$BENCH_VALIDATOR_LOG"\nexec {real} "$@"\n'
            )
        os.chmod(path, 0o755)
    return directory


@dataclass
class Row:
    tool: str
    shape: str
    n: int
    scenario: str
    run: int
    wall: float | None = None
    maxrss_kb: int | None = None
    files: int | None = None
    reported: str = ""
    validators: int | None = None
    validators_detail: str = ""
    status: str = "ok"
    note: str = ""


class Failed(Exception):
    pass


def bench_tool(tool, n: int, repeat: int, rows: list[Row], peer: bool) -> None:
    args = tool.args

    def measure(scenario: str, run: int) -> Row:
        log = tool.env.get("BENCH_VALIDATOR_LOG")
        if log:
            open(log, "w").close()
        before = snapshot(tool.root)
        out = timed(tool.argv(scenario), tool.env, tool.work, args.timeout)
        after = snapshot(tool.root)
        row = Row(
            tool.name,
            tool.shape,
            n,
            scenario,
            run,
            wall=out.wall,
            maxrss_kb=out.maxrss_kb,
            files=written(before, after),
            reported=tool.reported(out),
        )
        if log:
            with open(log) as stream:
                counts = collections.Counter(line.strip() for line in stream if line.strip())
            row.validators = sum(counts.values())
            row.validators_detail = " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))
        if out.timed_out or not tool.ok(scenario, out.returncode):
            lines = (out.stderr.strip() or out.stdout.strip()).splitlines()
            why = "timeout" if out.timed_out else f"exit {out.returncode}"
            row.status = f"failed ({why})"
            rows.append(row)
            detail = "\n".join(lines[-15:])
            raise Failed(f"{tool.name} N={n} {scenario}: {why}\n{detail}")
        rows.append(row)
        if args.verbose:
            print(
                f"  {tool.name:14} {tool.shape:8} N={n:<5} {scenario:6} run {run}: {out.wall:8.3f} s "
                f"{out.maxrss_kb / 1024:6.1f} MB files={row.files} "
                f"validators={row.validators_detail or '-'}",
                flush=True,
            )
        return row

    def runs(scenario: str, before_each=None) -> None:
        for run in range(1, repeat + 1):
            if before_each:
                before_each(run)
            row = measure(scenario, run)
            if peer and row.wall > args.slow and run < repeat:
                rows[-1].note = f"stopped after {run} run(s): slower than {args.slow:g} s"
                break

    def first(run: int) -> None:
        tool.reset()
        fresh_root(tool.root, n)
        tool.write_inputs(n, changed=False)

    runs("first", first)
    runs("noop")
    state = {"changed": False}

    def flip(run: int) -> None:
        state["changed"] = not state["changed"]
        tool.write_inputs(n, changed=state["changed"])

    runs("change", flip)
    if state["changed"]:  # back to the converged base: before plan, and for the byte check
        tool.write_inputs(n, changed=False)
        out = timed(tool.argv("noop"), tool.env, tool.work, args.timeout)
        if not tool.ok("noop", out.returncode):
            raise Failed(f"{tool.name} N={n}: could not converge back: exit {out.returncode}")
    if "plan" not in tool.scenarios:
        return
    tool.write_inputs(n, changed=True)
    runs("plan")

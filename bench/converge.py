#!/usr/bin/env python3
"""Converge benchmark: N services, five files each, into a scratch root; prints a table.

    .venv/bin/python bench/converge.py --n 1 10 100 1000 [--peers] [--repeat 5]

Every service is an application config (system_recipes:template), a /etc/cron.d file
(system_recipes:cron), a /etc/logrotate.d file (system_recipes:logrotate), a supervisor program
(system_recipes:supervisor) and an NRPE command file (system_recipes:nrpe). Scenarios, each
timed as a subprocess of the real executable: ``first`` (empty root), ``noop`` (re-run),
``change`` (one option of one service changed: the port of svc0000, which three of its files
use), ``plan`` (``system-recipes plan`` with that change). See bench/README.md for the columns
and the targets. A recipe whose module does not exist yet, or fails on one service, is
replaced by a template part writing the same file, and the output says "STAND-IN".
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
TEMPLATES = os.path.join(BENCH, "templates")
VENVS = os.path.join(BENCH, ".venvs")
BASE_CFG = os.path.join(REPO, "profiles", "base.cfg")
SCENARIOS = ("first", "noop", "change", "plan")
KINDS = ("config", "cron", "logrotate", "supervisor", "nrpe")
#: the recipe module each kind of file needs (system_recipes/recipes/NAME.py)
RECIPE_OF = {
    "config": "template",
    "cron": "cron",
    "logrotate": "logrotate",
    "supervisor": "supervisor",
    "nrpe": "nrpe",
}
#: tools whose processes are counted: system-recipes' validators run these
VALIDATOR_TOOLS = ("logrotate", "crontab", "nagios4", "systemd-analyze", "sh")
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHANGED_PORT = 18000
#: peers: venv name, pip packages, executable inside the venv, largest N by default
#: (pinned: the versions this benchmark was last run with on Python 3.11)
PEERS = {
    "salt": ("salt", ["salt==3007.16"], "salt-call", 1000),
    "pyinfra": ("pyinfra", ["pyinfra==3.10.0"], "pyinfra", 1000),
    "ansible": ("ansible", ["ansible-core==2.19.14"], "ansible-playbook", 100),
}
PLOT_VENV = ("plot", ["matplotlib==3.11.2"], "python")
#: the kinds a template part can stand in for while their recipe is being written
STANDS_IN = ("cron", "logrotate", "supervisor")


def make_scratch_root(path: str) -> str:
    """An install root with just enough of /etc for accounts and layout detection (what
    tests/conftest.py's scratch fixture makes)."""
    os.makedirs(os.path.join(path, "etc"), exist_ok=True)
    for name in ("passwd", "group", "shadow", "gshadow", "os-release"):
        source = os.path.join("/etc", name)
        if os.path.exists(source):
            shutil.copy2(os.path.realpath(source), os.path.join(path, "etc", name))
    return path


# -- the workload ---------------------------------------------------------------------------
def service(i: int, changed: bool = False) -> dict:
    """Service number ``i``; ``changed`` moves svc0000 to another port (one option)."""
    return {
        "service": f"svc{i:04d}",
        "app_port": CHANGED_PORT if changed and i == 0 else 8000 + i,
        "minute": i % 60,
    }


def service_files(svc: dict) -> list[tuple[str, str, str, str, dict]]:
    """The five files of a service as ``(kind, template, host path, mode, variables)``: what the
    peers and the floor render (bench/templates/ mirrors what the recipes write)."""
    name = svc["service"]
    return [
        ("config", "bench-app.ini.j2", f"/etc/bench/{name}.ini", "0644", svc),
        ("cron", "bench-cron.j2", f"/etc/cron.d/{name}", "0644", svc),
        ("logrotate", "bench-logrotate.j2", f"/etc/logrotate.d/{name}", "0644", svc),
        (
            "supervisor",
            "bench-supervisor.conf.j2",
            f"/etc/supervisor/conf.d/{name}.conf",
            "0644",
            svc,
        ),
        ("nrpe", "bench-nrpe.cfg.j2", f"/etc/nagios/nrpe.d/{name}.cfg", "0644", svc),
    ]


def service_sections(svc: dict, real: dict[str, bool]) -> list[tuple[str, dict[str, str]]]:
    """The five buildout sections of one service. A kind whose recipe is missing (``real[kind]``
    false) is a template part writing the same file: a stand-in."""
    name = svc["service"]
    port = f"${{{name}-config:app-port}}"
    sections = [
        (
            f"{name}-config",
            {
                "recipe": "system_recipes:template",
                "path": f"/etc/bench/{name}.ini",
                "template": "bench-app.ini.j2",
                "service": name,
                "app-port": str(svc["app_port"]),
            },
        )
    ]
    command = f"/usr/bin/find /var/lib/{name}/tmp -type f -mtime +7 -delete"
    if real["cron"]:
        sections.append(
            (
                f"{name}-cron",
                {
                    "recipe": "system_recipes:cron",
                    "name": name,
                    "user": "www-data",
                    "entries": f"{svc['minute']} 3 * * * {command}",
                },
            )
        )
    if real["logrotate"]:
        sections.append(
            (
                f"{name}-logrotate",
                {
                    "recipe": "system_recipes:logrotate",
                    "name": name,
                    "paths": f"/var/log/{name}/*.log",
                    "frequency": "daily",
                    "rotate": "14",
                    "compress": "true",
                    "delaycompress": "true",
                    "missingok": "true",
                    "notifempty": "true",
                },
            )
        )
    if real["supervisor"]:
        sections.append(
            (
                f"{name}-supervisor",
                {
                    "recipe": "system_recipes:supervisor",
                    "name": name,
                    "command": f"/usr/bin/python3 -m http.server {port}",
                    "user": "www-data",
                    "stdout_logfile": f"/var/log/{name}/stdout.log",
                    "redirect_stderr": "true",
                },
            )
        )
    sections.append(
        (
            f"{name}-nrpe",
            {
                "recipe": "system_recipes:nrpe",
                "name": name,
                "checks": f"check_{name}_http check_http -H 127.0.0.1 -p {port} -u /health "
                "warning=2 critical=5",
            },
        )
    )
    stand_in_paths = {kind: (template, path) for kind, template, path, _, _ in service_files(svc)}
    for kind in STANDS_IN:
        if real[kind]:
            continue
        template, path = stand_in_paths[kind]
        options = {
            "recipe": "system_recipes:template",
            "path": path,
            "template": template,
            "service": name,
        }
        if kind == "cron":  # a template part refuses an option its template does not use
            options["minute"] = str(svc["minute"])
        if kind == "supervisor":
            options["app-port"] = port
        sections.insert(KINDS.index(kind), (f"{name}-{kind}", options))
    return sections


def host_cfg(n: int, root: str, real: dict[str, bool], changed: bool = False) -> str:
    parts, body = [], []
    for i in range(n):
        for section, options in service_sections(service(i, changed), real):
            parts.append(section)
            body.append(f"[{section}]")
            for key, value in options.items():
                body.append(f"{key} = {value}")
            body.append("")
    head = [
        "[buildout]",
        f"extends = {BASE_CFG}",
        "parts =",
        *(f"    {p}" for p in parts),
        "",
        "[system-recipes]",
        f"root = {root}",
        "reload = off",
        f"templates = {TEMPLATES}",
        "",
    ]
    return "\n".join(head + body)


def files_json(n: int, root: str, changed: bool = False) -> dict:
    files = [list(f) for i in range(n) for f in service_files(service(i, changed))]
    return {
        "root": root,
        "templates": TEMPLATES,
        "files": files,
        "directories": sorted({os.path.dirname(f[2]) for f in files}),
    }


def recipe_available(kind: str, python: str) -> bool:
    module = RECIPE_OF[kind]
    if not os.path.isfile(os.path.join(REPO, "system_recipes", "recipes", module + ".py")):
        return False
    result = subprocess.run(
        [python, "-c", f"import system_recipes.recipes.{module}"], capture_output=True, text=True
    )
    return result.returncode == 0


def probe_recipes(args, real: dict[str, bool]) -> dict[str, str]:
    """Converge one service with the real recipes. A recipe module that exists but fails
    (being written) is replaced by its stand-in, so the rest can still be measured: updates
    ``real`` and returns {kind: why}."""
    optional = [kind for kind in STANDS_IN if real[kind]]

    def attempt(kinds_real: dict[str, bool]) -> str:
        work = tempfile.mkdtemp(prefix="bench-probe-")
        try:
            tool = SystemRecipes(work, args, kinds_real)
            fresh_root(tool.root, 1)
            tool.write_inputs(1, changed=False)
            out = timed(tool.argv("first"), tool.env, work, args.timeout)
            if out.returncode == 0:
                return ""
            lines = [
                line
                for line in (out.stderr + out.stdout).splitlines()
                if line.startswith("Error") or line.startswith("[")
            ]
            return (lines or [f"exit {out.returncode}"])[0]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    if not optional or not attempt(real):
        return {}
    problems = {}
    for kind in optional:  # which of them fails: each alone, the others stood in
        alone = {k: (k == kind or k not in STANDS_IN) and real[k] for k in KINDS}
        problem = attempt(alone)
        if problem:
            problems[kind] = f"fails: {problem[:160]}"
    for kind in problems:
        real[kind] = False
    return problems


# -- running and measuring ------------------------------------------------------------------
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


def service_contents(root: str, n: int) -> dict[str, bytes | None]:
    """The content of every service file below ``root`` (None: missing)."""
    result: dict[str, bytes | None] = {}
    for i in range(n):
        for _kind, _template, path, _mode, _variables in service_files(service(i)):
            try:
                with open(os.path.join(root, path.lstrip("/")), "rb") as stream:
                    result[path] = stream.read()
            except FileNotFoundError:
                result[path] = None
    return result


def written(before: dict, after: dict) -> int:
    return sum(1 for path, state in after.items() if before.get(path) != state)


def fresh_root(root: str, n: int) -> None:
    """An empty install root, with what the application's package would have made: the
    NRPE plugins (the nrpe recipe checks they exist) and each service's log directory (the
    supervisor recipe checks that stdout_logfile's directory exists)."""
    shutil.rmtree(root, ignore_errors=True)
    make_scratch_root(root)
    os.makedirs(os.path.join(root, "usr/lib/nagios"))
    os.symlink("/usr/lib/nagios/plugins", os.path.join(root, "usr/lib/nagios/plugins"))
    for i in range(n):
        os.makedirs(os.path.join(root, "var/log", service(i)["service"]))


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


# -- the tools --------------------------------------------------------------------------------
class Tool:
    name = ""
    counts_validators = False
    note = ""

    def __init__(self, work: str, args):
        self.work = work
        self.args = args
        self.root = os.path.join(work, "root")
        self.env = dict(os.environ)

    def write_inputs(self, n: int, changed: bool) -> None:
        raise NotImplementedError

    def argv(self, scenario: str) -> list[str]:
        raise NotImplementedError

    def ok(self, scenario: str, returncode: int) -> bool:
        return returncode == 0 or (scenario == "plan" and returncode == 2)

    def reported(self, out: Outcome) -> str:
        return ""

    def reset(self) -> None:
        """Before a first run: forget any cache of earlier runs."""

    def _write(self, name: str, text: str) -> str:
        path = os.path.join(self.work, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as stream:
            stream.write(text)
        return path


class SystemRecipes(Tool):
    name = "system-recipes"
    counts_validators = True

    def __init__(self, work, args, real: dict[str, bool]):
        super().__init__(work, args)
        self.real = real
        self.bin = args.bin
        shims = counting_shims(os.path.join(work, "shims"))
        self.env["PATH"] = shims + os.pathsep + self.env.get("PATH", SBIN_PATH)
        self.env["BENCH_VALIDATOR_LOG"] = os.path.join(work, "validators.log")

    def write_inputs(self, n, changed):
        self.config = self._write("host.cfg", host_cfg(n, self.root, self.real, changed))

    def argv(self, scenario):
        if scenario == "plan":
            return [os.path.join(self.bin, "system-recipes"), "plan", "-c", self.config]
        return [os.path.join(self.bin, "buildout"), "-c", self.config]

    def reported(self, out):
        found = re.findall(r"(\d+) files? (?:changed|to change)", out.stdout)
        return found[-1] if found else ""


class Floor(Tool):
    name = "floor"
    note = "plain jinja2 render-compare-write loop (bench/floor.py)"

    def write_inputs(self, n, changed):
        self.spec = self._write("files.json", json.dumps(files_json(n, self.root, changed)))

    def argv(self, scenario):
        command = [self.args.python, os.path.join(BENCH, "floor.py"), self.spec]
        return command + (["--plan"] if scenario == "plan" else [])

    def reported(self, out):
        found = re.findall(r"(\d+) files? (?:changed|to change)", out.stdout)
        return found[-1] if found else ""


class Salt(Tool):
    name = "salt"
    note = "salt-call --local, file.managed (plan: test=True)"

    def __init__(self, work, args, executable):
        super().__init__(work, args)
        self.executable = executable
        states = os.path.join(work, "states")
        shutil.copytree(TEMPLATES, os.path.join(states, "templates"), dirs_exist_ok=True)
        self.cache = os.path.join(work, "var")
        self._write(
            "conf/minion",
            "\n".join(
                [
                    "file_client: local",
                    "file_roots:",
                    "  base:",
                    f"    - {states}",
                    f"root_dir: {self.cache}",
                    "id: bench",
                    "log_level_logfile: warning",
                    "",
                ]
            ),
        )
        self._write(
            "states/bench.sls",
            "\n".join(
                [
                    "{% import_json 'files.json' as data %}",
                    "{% for f in data.files %}",
                    "{{ f[2] }}:",
                    "  file.managed:",
                    "    - name: {{ data.root }}{{ f[2] }}",
                    "    - source: salt://templates/{{ f[1] }}",
                    "    - template: jinja",
                    "    - makedirs: True",
                    "    - mode: '{{ f[3] }}'",
                    "    - user: root",
                    "    - group: root",
                    "    - context: {{ f[4] | json }}",
                    "{% endfor %}",
                    "",
                ]
            ),
        )

    def reset(self):
        shutil.rmtree(self.cache, ignore_errors=True)

    def write_inputs(self, n, changed):
        self._write("states/files.json", json.dumps(files_json(n, self.root, changed)))

    def argv(self, scenario):
        command = [
            self.executable,
            "--local",
            "--config-dir",
            os.path.join(self.work, "conf"),
            "--retcode-passthrough",
            "--state-output=terse",
            "-l",
            "quiet",
            "state.apply",
            "bench",
        ]
        return command + (["test=True"] if scenario == "plan" else [])


class Pyinfra(Tool):
    name = "pyinfra"
    note = "pyinfra @local, files.template (plan: --dry)"

    def __init__(self, work, args, executable):
        super().__init__(work, args)
        self.executable = executable
        self._write(
            "deploy.py",
            "\n".join(
                [
                    "import json",
                    "import os",
                    "from pyinfra.operations import files",
                    "",
                    "with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'files.json'))"
                    " as stream:",
                    "    data = json.load(stream)",
                    "for kind, template, path, mode, variables in data['files']:",
                    "    files.template(name=path, src=os.path.join(data['templates'], template),",
                    "                   dest=data['root'] + path, mode=mode, create_remote_dir=True,",
                    "                   **variables)",
                    "",
                ]
            ),
        )

    def write_inputs(self, n, changed):
        self._write("files.json", json.dumps(files_json(n, self.root, changed)))

    def argv(self, scenario):
        command = [self.executable, "-y", "@local", os.path.join(self.work, "deploy.py")]
        return command + (["--dry"] if scenario == "plan" else [])


class Ansible(Tool):
    name = "ansible"
    note = "ansible-playbook -c local, template (plan: --check --diff)"

    def __init__(self, work, args, executable):
        super().__init__(work, args)
        self.executable = executable
        python = os.path.join(os.path.dirname(executable), "python")
        self.env.update(
            ANSIBLE_LOCALHOST_WARNING="False",
            ANSIBLE_PIPELINING="True",
            ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"),
            ANSIBLE_REMOTE_TEMP=os.path.join(work, "tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="False",
            ANSIBLE_PYTHON_INTERPRETER=python,
        )
        self.playbook = self._write(
            "playbook.yml",
            "\n".join(
                [
                    "- hosts: all",
                    "  connection: local",
                    "  gather_facts: false",
                    "  tasks:",
                    "    - name: data",
                    "      include_vars: {file: files.json, name: data}",
                    "    - name: directories",
                    "      file: {path: '{{ data.root }}{{ item }}', state: directory, mode: '0755'}",
                    "      loop: '{{ data.directories }}'",
                    "    - name: files",
                    "      template:",
                    "        src: '{{ data.templates }}/{{ item[1] }}'",
                    "        dest: '{{ data.root }}{{ item[2] }}'",
                    "        mode: '{{ item[3] }}'",
                    "      vars:",
                    "        service: '{{ item[4].service }}'",
                    "        app_port: '{{ item[4].app_port }}'",
                    "        minute: '{{ item[4].minute }}'",
                    "      loop: '{{ data.files }}'",
                    "      loop_control: {label: '{{ item[2] }}'}",
                    "",
                ]
            ),
        )

    def write_inputs(self, n, changed):
        self._write("files.json", json.dumps(files_json(n, self.root, changed)))

    def argv(self, scenario):
        command = [self.executable, "-i", "localhost,", "-c", "local", self.playbook]
        return command + (["--check", "--diff"] if scenario == "plan" else [])


# -- venvs for the peers and the plot -----------------------------------------------------------
def make_venvs_link() -> None:
    """bench/.venvs is a symlink to a directory outside the checkout: buildout hashes every
    file below an editable (develop) install's location on every run (zc.buildout
    _dir_hash), so tens of thousands of venv files inside the checkout would slow down
    every buildout run of the project, the one measured here included."""
    if os.path.isdir(VENVS):
        return
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    outside = os.path.join(cache, "system-recipes-bench", "venvs")
    os.makedirs(outside, exist_ok=True)
    if os.path.islink(VENVS):
        os.unlink(VENVS)  # dangling
    os.symlink(outside, VENVS)


def ensure_venv(name: str, packages: list[str], executable: str) -> tuple[str | None, str]:
    """bench/.venvs/NAME with ``packages``, created on demand; (path of executable, problem)."""
    directory = os.path.join(VENVS, name)
    target = os.path.join(directory, "bin", executable)
    if os.path.exists(target):
        return target, ""
    make_venvs_link()
    log = os.path.join(VENVS, name + ".log")
    print(
        f"bench: installing {' '.join(packages)} into bench/.venvs/{name} (log: {log})", flush=True
    )
    with open(log, "w") as stream:
        steps = [
            [sys.executable, "-m", "venv", "--clear", directory],
            [os.path.join(directory, "bin", "pip"), "install", "-q", *packages],
        ]
        for step in steps:
            if subprocess.run(step, stdout=stream, stderr=subprocess.STDOUT).returncode:
                return None, f"install failed (see {os.path.relpath(log, REPO)})"
    if not os.path.exists(target):
        return None, f"installed, but {executable} is missing"
    return target, ""


def installed_copy() -> str:
    """The bin directory of a venv with system-recipes *installed* (not editable), as an
    operator's host has it: buildout hashes every file of an editable install's checkout on
    every run, which is not what an operator pays. Rebuilt when the source changes."""
    import hashlib

    digest = hashlib.sha256()
    sources = ["setup.cfg", "pyproject.toml", "README.md"]
    for top in ("system_recipes", "templates"):
        for directory, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            sources += [
                os.path.relpath(os.path.join(directory, f), REPO)
                for f in sorted(files)
                if not f.endswith(".pyc")
            ]
    for name in sources:
        digest.update(name.encode())
        with open(os.path.join(REPO, name), "rb") as stream:
            digest.update(stream.read())
    name = "system-recipes-" + digest.hexdigest()[:12]
    bin_dir = os.path.join(VENVS, name, "bin")
    if os.path.exists(os.path.join(bin_dir, "buildout")):
        return bin_dir
    make_venvs_link()
    with tempfile.TemporaryDirectory(prefix="bench-src-") as copy:
        for source in sources:
            os.makedirs(os.path.dirname(os.path.join(copy, source)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, source), os.path.join(copy, source))
        target, problem = ensure_venv(name, [copy], "buildout")
    if target is None:
        raise SystemExit(f"bench: cannot install system-recipes into a bench venv: {problem}")
    return bin_dir


# -- one tool at one N -----------------------------------------------------------------------
def bench_tool(tool: Tool, n: int, repeat: int, rows: list[Row], peer: bool) -> None:
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
                f"  {tool.name:14} N={n:<5} {scenario:6} run {run}: {out.wall:8.3f} s "
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
    if state["changed"]:  # back to the converged base before plan
        tool.write_inputs(n, changed=False)
        out = timed(tool.argv("noop"), tool.env, tool.work, args.timeout)
        if not tool.ok("noop", out.returncode):
            raise Failed(f"{tool.name} N={n}: could not converge back: exit {out.returncode}")
    tool.write_inputs(n, changed=True)
    runs("plan")


# -- the table ----------------------------------------------------------------------------------
def summarize(rows: list[Row], order: list[str]) -> list[dict]:
    groups: dict[tuple, list[Row]] = collections.defaultdict(list)
    for row in rows:
        groups[(row.tool, row.n, row.scenario)].append(row)
    medians = {}
    for key, group in groups.items():
        ok = [r.wall for r in group if r.status == "ok"]
        if ok:
            medians[key] = statistics.median(ok)
    table = []
    for key in sorted(groups, key=lambda k: (k[1], SCENARIOS.index(k[2]), order.index(k[0]))):
        tool, n, scenario = key
        group = groups[key]
        ok = [r for r in group if r.status == "ok"]
        failed = [r for r in group if r.status != "ok"]
        entry = {
            "tool": tool,
            "n": n,
            "scenario": scenario,
            "runs": len(ok),
            "status": failed[0].status if failed else "ok",
            "note": "; ".join(sorted({r.note for r in group if r.note})),
        }
        if ok:
            walls = [r.wall for r in ok]
            entry.update(
                median=statistics.median(walls),
                min=min(walls),
                max=max(walls),
                rss_mb=max(r.maxrss_kb for r in ok) / 1024,
                files=max(r.files for r in ok),
                reported=ok[-1].reported,
            )
            if ok[0].validators is not None:
                worst = max(ok, key=lambda r: r.validators)
                entry.update(validators=worst.validators, validators_detail=worst.validators_detail)
            base = medians.get(("system-recipes", n, scenario))
            if tool != "system-recipes" and base:
                entry["ratio"] = entry["median"] / base
        table.append(entry)
    return table


def format_table(table: list[dict], notes: list[str]) -> str:
    header = (
        "tool",
        "N",
        "scenario",
        "runs",
        "median s",
        "min s",
        "max s",
        "peak RSS MB",
        "files",
        "reported",
        "validators",
        "x sr",
    )
    lines = []
    for e in table:
        if "median" not in e:
            lines.append(
                (
                    e["tool"],
                    str(e["n"]),
                    e["scenario"],
                    "0",
                    e["status"],
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                )
            )
            continue
        validators = "-"
        if "validators" in e:
            validators = str(e["validators"]) + (
                f" ({e['validators_detail']})" if e["validators_detail"] else ""
            )
        lines.append(
            (
                e["tool"],
                str(e["n"]),
                e["scenario"],
                str(e["runs"]),
                f"{e['median']:.3f}",
                f"{e['min']:.3f}",
                f"{e['max']:.3f}",
                f"{e['rss_mb']:.1f}",
                str(e["files"]),
                e["reported"] or "-",
                validators,
                f"{e['ratio']:.1f}" if "ratio" in e else "-",
            )
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    previous = None
    for line in lines:
        if previous is not None and line[1] != previous:
            out.append("")
        previous = line[1]
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(notes + [""] + out)


def write_csv(path: str, rows: list[Row], stand_ins: list[str]) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            [
                "tool",
                "n",
                "scenario",
                "run",
                "wall_s",
                "maxrss_kb",
                "files_written",
                "reported",
                "validators",
                "validators_detail",
                "status",
                "note",
                "stand_ins",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.tool,
                    r.n,
                    r.scenario,
                    r.run,
                    "" if r.wall is None else f"{r.wall:.6f}",
                    "" if r.maxrss_kb is None else r.maxrss_kb,
                    "" if r.files is None else r.files,
                    r.reported,
                    "" if r.validators is None else r.validators,
                    r.validators_detail,
                    r.status,
                    r.note,
                    " ".join(stand_ins),
                ]
            )


def plot(csv_path: str) -> str:
    python, problem = ensure_venv(*PLOT_VENV)
    if python is None:
        return f"no plot: matplotlib {problem}"
    png = csv_path[:-4] + ".png"
    result = subprocess.run(
        [python, os.path.join(BENCH, "plot.py"), csv_path, png], capture_output=True, text=True
    )
    if result.returncode:
        return f"no plot: {(result.stderr.strip().splitlines() or ['plot failed'])[-1]}"
    return f"plot: {os.path.relpath(png)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=[1, 10, 100],
        help="numbers of services (default: 1 10 100)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (default 5)")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also Salt, pyinfra and Ansible (installed into bench/.venvs/)",
    )
    parser.add_argument(
        "--only-peers",
        nargs="*",
        choices=sorted(PEERS),
        default=None,
        help="with --peers: only these peers",
    )
    parser.add_argument(
        "--peer-max-n",
        action="append",
        default=[],
        metavar="PEER=N",
        help="largest N for a peer (default: ansible=100, others 1000)",
    )
    parser.add_argument(
        "--slow",
        type=float,
        default=30.0,
        help="a peer run slower than this many seconds ends that scenario's repeats (default 30)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--no-floor", action="store_true", help="skip the plain-python floor")
    parser.add_argument(
        "--stand-in",
        nargs="*",
        default=[],
        choices=["cron", "logrotate", "supervisor"],
        help="use the template stand-in even though the recipe exists",
    )
    parser.add_argument(
        "--results",
        default=os.path.join(BENCH, "results"),
        help="directory for the CSV and PNG (default bench/results)",
    )
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--bin",
        default=None,
        help="directory with buildout and system-recipes (default: a bench venv "
        "with system-recipes installed from this checkout, as on a host)",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="use the project's .venv/bin (an editable install: buildout hashes "
        "the whole checkout on every run)",
    )
    parser.add_argument("--workdir", default=None, help="keep the scratch trees here")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.bin is None:
        args.bin = os.path.join(REPO, ".venv", "bin") if args.editable else installed_copy()
    args.python = os.path.join(args.bin, "python")
    for executable in ("buildout", "system-recipes", "python"):
        if not os.path.exists(os.path.join(args.bin, executable)):
            parser.error(f"{args.bin}/{executable} not found (--bin)")
    max_n = {name: spec[3] for name, spec in PEERS.items()}
    for text in args.peer_max_n:
        name, _, value = text.partition("=")
        if name not in PEERS or not value.isdigit():
            parser.error(f"--peer-max-n {text}: expected PEER=N, PEER one of {sorted(PEERS)}")
        max_n[name] = int(value)

    real = {
        kind: kind not in args.stand_in and recipe_available(kind, args.python) for kind in KINDS
    }
    why_not = {
        kind: "not used (--stand-in)" if kind in args.stand_in else "missing"
        for kind in KINDS
        if not real[kind]
    }
    why_not.update(probe_recipes(args, real))
    stand_ins = [kind for kind in KINDS if not real[kind]]
    notes = [
        f"bench/converge.py: N={' '.join(map(str, args.n))}, {args.repeat} run(s) per "
        "scenario; five files per service; times are wall seconds of the subprocess"
    ]
    for kind in KINDS:
        if real[kind]:
            notes.append(f"  {kind:10} system_recipes:{RECIPE_OF[kind]}")
        else:
            notes.append(
                f"  {kind:10} STAND-IN: system_recipes:template part writing the same "
                f"file, not validated (system_recipes/recipes/{RECIPE_OF[kind]}.py "
                f"{why_not[kind]})"
            )

    peers: dict[str, str] = {}
    peer_problems: dict[str, str] = {}
    if args.peers:
        for name in args.only_peers or sorted(PEERS):
            venv, packages, executable, _ = PEERS[name]
            path, problem = ensure_venv(venv, packages, executable)
            if path:
                peers[name] = path
            else:
                peer_problems[name] = problem
    for name, problem in peer_problems.items():
        notes.append(f"  peer {name}: NOT RUN: {problem}")

    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-converge-")
    os.makedirs(workdir, exist_ok=True)
    rows: list[Row] = []
    order = ["system-recipes", "floor", *sorted(PEERS)]
    skipped: dict[str, str] = {}
    mismatches: list[str] = []
    try:
        for n in args.n:
            print(f"bench: N={n} ...", file=sys.stderr, flush=True)
            tools: list[tuple[Tool, bool]] = []
            tools.append((SystemRecipes(os.path.join(workdir, f"sr-{n}"), args, real), False))
            if not args.no_floor:
                tools.append((Floor(os.path.join(workdir, f"floor-{n}"), args), False))
            classes = {"salt": Salt, "pyinfra": Pyinfra, "ansible": Ansible}
            for name, executable in peers.items():
                if n > max_n[name]:
                    skipped.setdefault(name, f"not run above N={max_n[name]} (--peer-max-n)")
                    continue
                if name in skipped:
                    continue
                tools.append(
                    (classes[name](os.path.join(workdir, f"{name}-{n}"), args, executable), True)
                )
            reference: dict[str, bytes | None] = {}
            for tool, peer in tools:
                try:
                    bench_tool(tool, n, args.repeat, rows, peer)
                    # every tool must have written the same bytes, or the race is not fair
                    contents = service_contents(tool.root, n)
                    if isinstance(tool, SystemRecipes):
                        reference = contents
                    else:
                        differ = [p for p, data in contents.items() if data != reference.get(p)]
                        if differ:
                            mismatches.append(
                                f"  {tool.name} N={n}: {len(differ)} of "
                                f"{len(contents)} files differ from system-recipes'"
                                f" (e.g. {differ[0]})"
                            )
                except Failed as error:
                    if not peer:
                        print(f"bench: {error}", file=sys.stderr)
                        return 1
                    print(f"bench: {error}", file=sys.stderr)
                    skipped[tool.name] = f"failed at N={n}: not run above"
                finally:
                    if not args.workdir:
                        shutil.rmtree(tool.work, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    for name, why in skipped.items():
        notes.append(f"  peer {name}: {why}")
    notes.extend(mismatches or ["  every tool wrote byte-identical files"])
    for tool in (Floor, Salt, Pyinfra, Ansible):
        if any(r.tool == tool.name for r in rows):
            notes.append(f"  {tool.name}: {tool.note}")
    table = summarize(rows, order)
    print(format_table(table, notes))
    os.makedirs(args.results, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    csv_path = os.path.join(args.results, f"converge-{stamp}.csv")
    write_csv(csv_path, rows, stand_ins)
    print(f"\nraw results: {os.path.relpath(csv_path)}")
    if not args.no_plot:
        print(plot(csv_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

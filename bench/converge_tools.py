"""The tools the benchmark races: system-recipes (buildout, and ``system-recipes converge``),
the plain-Python floor, Salt, pyinfra and Ansible. Each writes its inputs for N services of a
shape into its work directory and says how to run a scenario."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from converge_run import SBIN_PATH, SCENARIOS, Outcome, counting_shims
from converge_work import BENCH, TEMPLATES, files_json, host_cfg


class Tool:
    name = ""
    counts_validators = False
    note = ""
    scenarios = SCENARIOS

    def __init__(self, work: str, args, shape: str):
        self.work = work
        self.args = args
        self.shape = shape
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

    def __init__(self, work, args, shape, real: dict[str, bool]):
        super().__init__(work, args, shape)
        self.real = real
        self.bin = args.bin
        shims = counting_shims(os.path.join(work, "shims"))
        self.env["PATH"] = shims + os.pathsep + self.env.get("PATH", SBIN_PATH)
        self.env["BENCH_VALIDATOR_LOG"] = os.path.join(work, "validators.log")
        # whatever system-recipes caches between runs (the converge index) stays in the
        # work directory: never the real /var/cache of the machine running the benchmark
        self.cache = os.path.join(work, "cache")
        self.env["SYSTEM_RECIPES_CACHE_DIR"] = self.cache

    def reset(self):
        shutil.rmtree(self.cache, ignore_errors=True)

    def write_inputs(self, n, changed):
        self.config = self._write(
            "host.cfg", host_cfg(n, self.root, self.real, self.shape, changed)
        )

    def argv(self, scenario):
        if scenario == "plan":
            return [os.path.join(self.bin, "system-recipes"), "plan", "-c", self.config]
        return [os.path.join(self.bin, "buildout"), "-c", self.config]

    def reported(self, out):
        found = re.findall(r"(\d+) files? (?:changed|to change)", out.stdout)
        if not found and "nothing to do" in out.stdout:
            return "0"
        return found[-1] if found else ""


class Converge(SystemRecipes):
    """``system-recipes converge -c host.cfg``: decides a no-op without importing zc.buildout,
    else runs buildout (issue 15). It has no plan of its own."""

    name = "converge"
    scenarios = ("first", "noop", "change")

    def argv(self, scenario):
        return [os.path.join(self.bin, "system-recipes"), "converge", "-c", self.config]


def converge_available(bin_dir: str) -> bool:
    """``system-recipes converge --help`` works in this bin directory."""
    try:
        done = subprocess.run(
            [os.path.join(bin_dir, "system-recipes"), "converge", "--help"],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Floor(Tool):
    name = "floor"
    note = "plain jinja2 render-compare-write loop (bench/floor.py)"

    def write_inputs(self, n, changed):
        self.spec = self._write(
            "files.json", json.dumps(files_json(n, self.root, self.shape, changed))
        )

    def argv(self, scenario):
        command = [self.args.python, os.path.join(BENCH, "floor.py"), self.spec]
        return command + (["--plan"] if scenario == "plan" else [])

    def reported(self, out):
        found = re.findall(r"(\d+) files? (?:changed|to change)", out.stdout)
        return found[-1] if found else ""


class Salt(Tool):
    name = "salt"
    note = "salt-call --local, file.managed (plan: test=True)"

    def __init__(self, work, args, shape, executable):
        super().__init__(work, args, shape)
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
                    "{% for d in data.directories %}",
                    "{{ d }}:",
                    "  file.directory:",
                    "    - name: {{ data.root }}{{ d }}",
                    "    - makedirs: True",
                    "{% endfor %}",
                    "{% for f in data.files %}",
                    "{{ f[2] }}:",
                    "  file.managed:",
                    "    - name: {{ data.root }}{{ f[2] }}",
                    "    - source: salt://templates/{{ f[1] }}",
                    "    - template: jinja",
                    "    - makedirs: True",
                    "    - mode: '{{ f[3] }}'",
                    "    - user: root",
                    "    - group: {{ f[5] }}",
                    "    - context: {{ f[4] | json }}",
                    "{% endfor %}",
                    "",
                ]
            ),
        )

    def reset(self):
        shutil.rmtree(self.cache, ignore_errors=True)

    def write_inputs(self, n, changed):
        self._write("states/files.json", json.dumps(files_json(n, self.root, self.shape, changed)))

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

    def __init__(self, work, args, shape, executable):
        super().__init__(work, args, shape)
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
                    "for path in data['directories']:",
                    "    files.directory(name=path, path=data['root'] + path, present=True)",
                    "for kind, template, path, mode, variables, group in data['files']:",
                    "    files.template(name=path, src=os.path.join(data['templates'], template),",
                    "                   dest=data['root'] + path, mode=mode, group=group,",
                    "                   create_remote_dir=True, **variables)",
                    "",
                ]
            ),
        )

    def write_inputs(self, n, changed):
        self._write("files.json", json.dumps(files_json(n, self.root, self.shape, changed)))

    def argv(self, scenario):
        command = [self.executable, "-y", "@local", os.path.join(self.work, "deploy.py")]
        return command + (["--dry"] if scenario == "plan" else [])


class Ansible(Tool):
    name = "ansible"
    note = "ansible-playbook -c local, template (plan: --check --diff)"

    def __init__(self, work, args, shape, executable):
        super().__init__(work, args, shape)
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
                    "        group: '{{ item[5] }}'",
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
        self._write("files.json", json.dumps(files_json(n, self.root, self.shape, changed)))

    def argv(self, scenario):
        command = [self.executable, "-i", "localhost,", "-c", "local", self.playbook]
        return command + (["--check", "--diff"] if scenario == "plan" else [])

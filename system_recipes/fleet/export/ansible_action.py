"""The Ansible action ``fleet_host`` of an exported project (``action_plugins/fleet_host.py``).

``system-recipes fleet export ansible`` copies this file, as it is, into the project: it runs on
the Ansible controller, which need not have system-recipes installed, so it imports nothing
from it. It does for one host what ``fleet apply`` does (docs/systems.md, "fleet apply or
Ansible"): one remote call of ``[sudo -n] ENTRY fleet-host apply`` with the JSON header and the
compiled host.cfg on stdin (never as arguments), the host's own NRPE checks until they pass,
and the confirmation of a confirmed apply over a new connection. In check mode it runs
``fleet-host plan`` instead (``--diff`` under ``--diff``). ``changed`` comes from the
machine-readable lines fleet-host prints, so a no-op run reports ``ok``; a host whose step
failed fails, with fleet-host's own one line.

Arguments: ``directory`` (the host's ``host_vars/HOST``: ``header.jsonl`` and ``host.cfg``),
``entry_point``, ``sudo``, ``checks`` (names), ``check_timeout``, ``check_interval``,
``confirm_timeout`` (0: no confirmed apply), ``force``.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

NRPE_INCLUDES = ("/etc/nagios/nrpe.d", "/etc/nrpe.d")  # Debian's, Red Hat's


class ActionModule(ActionBase):
    _supports_check_mode = True  # check mode plans: fleet-host plan changes nothing
    _supports_async = False

    def run(
        self, tmp: str | None = None, task_vars: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        directory = args["directory"]
        with open(os.path.join(directory, "header.jsonl"), encoding="utf-8") as stream:
            header = stream.read().strip()
        with open(os.path.join(directory, "host.cfg"), encoding="utf-8") as stream:
            config = stream.read()
        stdin = header + "\n" + config
        plan = bool(self._task.check_mode)
        diff = bool(self._task.diff)
        arguments = ["--force"] * boolean(args.get("force") or False, strict=False)
        confirm_timeout = float(args.get("confirm_timeout") or 0)
        if plan:
            arguments += ["--diff"] * diff
        elif confirm_timeout:
            arguments += ["--confirm-timeout", f"{confirm_timeout:g}"]
        step = self.fleet_host("plan" if plan else "apply", arguments, stdin)
        events, code = step["events"], step["rc"]
        result["fleet_host"] = events
        # not "rc": Ansible fails a result whose rc is not 0, and plan's 2 means "pending"
        result["exit"] = code
        result["failed"] = False
        if code not in ((0, 2) if plan else (0,)):
            result["failed"] = True
            result["msg"] = problem(events, step["stderr"], code)
            result["stderr"] = step["stderr"][-4000:]  # the buildout's own lines
            return result
        if plan:
            result["changed"] = code == 2
            texts = [e.get("text", "") for e in events if e.get("step") == "diff"]
            if diff and texts:
                result["diff"] = [{"prepared": text.rstrip("\n")} for text in texts]
            planned: dict = next((e for e in events if e.get("step") == "plan"), {})
            pending = int(planned.get("changed", 0))
            result["msg"] = f"{counted(pending, 'file change')} pending" if code else "ok"
            return result
        done = events[-1] if events else {}
        packages: dict = next((e for e in events if e.get("step") == "packages"), {})
        changed = int(done.get("changed") or 0) + int(packages.get("changed") or 0)
        result["changed"] = changed > 0
        result["msg"] = counted(changed, "change") if changed else "ok"
        confirm = done.get("confirm")
        failure = self.checks(args, confirm)
        if failure is None and confirm:
            failure = self.confirm(json.loads(header)["model"], confirm)
        if failure:
            result["failed"] = True
            result["msg"] = failure
        return result

    def fleet_host(self, action: str, arguments: list[str], stdin: str = "") -> dict:
        """``[sudo -n] ENTRY fleet-host ACTION ...`` on the host: the one command the sudoers
        rule allows; its JSON lines parsed."""
        words = [self._task.args.get("entry_point") or "system-recipes", "fleet-host", action]
        if boolean(self._task.args.get("sudo") or False, strict=False):
            words[:0] = ["sudo", "-n"]
        command = " ".join(shlex.quote(w) for w in [*words, *arguments])
        raw = self._low_level_execute_command(
            command, sudoable=False, in_data=stdin.encode("utf-8") if stdin else None
        )
        events = []
        for line in raw.get("stdout", "").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
        return {"rc": raw.get("rc", 1), "events": events, "stderr": raw.get("stderr", "")}

    def checks(self, args: dict[str, Any], confirm: dict[str, Any] | None) -> str | None:
        """The host's own NRPE check commands, each until it exits 0 or the timeout runs out
        (read from its NRPE include directory, ``$$`` meaning ``$``, as NRPE reads them)."""
        names = list(args.get("checks") or [])
        if not names:
            return None
        listing = self._low_level_execute_command(
            " ".join(f"cat {d}/*.cfg 2>/dev/null;" for d in NRPE_INCLUDES) + " true",
            sudoable=False,
        ).get("stdout", "")
        commands = {}
        for line in listing.splitlines():
            if line.startswith("command[") and "]=" in line:
                name, _, command = line[len("command[") :].partition("]=")
                commands[name] = command.replace("$$", "$")
        later = (
            f"; not confirmed: the host rolls back by itself within {confirm['timeout']:g} s"
            if confirm
            else ""
        )
        missing = [name for name in names if name not in commands]
        if missing:
            return f"check {missing[0]} is not defined on the host (in {NRPE_INCLUDES[0]}){later}"
        timeout = float(args.get("check_timeout", 30))
        deadline = time.monotonic() + timeout
        while True:
            failing = []
            for name in names:
                run = self._low_level_execute_command(commands[name], sudoable=False)
                if run.get("rc"):
                    failing.append((name, run))
            if not failing:
                return None
            if time.monotonic() >= deadline:
                name, run = failing[0]
                output = (run.get("stdout", "").splitlines() or [""])[0]
                return (
                    f"check {name} still fails after {timeout:g} s "
                    f"(exit {run.get('rc')}: {output[:200]}){later}"
                )
            names = [name for name, _ in failing]
            time.sleep(float(args.get("check_interval", 1)))

    def confirm(self, model: str, confirm: dict) -> str | None:
        """Over a *new* connection (the control master is stopped first): a host that no
        longer lets us in cannot be confirmed, and rolls itself back."""
        self._connection.reset()
        try:
            step = self.fleet_host("confirm", [model, str(confirm["revision"])])
        except AnsibleError as error:  # the new login failed: what confirmation tests
            return (
                f"not confirmed ({str(error).strip().splitlines()[-1][:300]}); the host rolls "
                f"back by itself within {confirm['timeout']:g} s"
            )
        if step["rc"]:
            return "not confirmed: " + problem(step["events"], step["stderr"], step["rc"])
        return None


def problem(events: list, stderr: str, code: int) -> str:
    """fleet-host's own one line: its first error event, else the last line of stderr."""
    errors = [e["error"] for e in events if e.get("error")]
    if errors:
        return str(errors[0])
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"fleet-host exited {code}"


def counted(number: int, noun: str) -> str:
    """``1 change``, ``2 changes``: as fleet's own output counts (this plugin is loaded by
    Ansible from its file, so it imports nothing of system_recipes)."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"

"""systemd units (the ``runscript`` recipe's ``kind = systemd``): whether the install root has
systemd (:func:`has_systemd`, what ``kind = auto`` asks), the unit names ``After=`` and
``Wants=`` take (:class:`UnitNames`), the quoting of an ``ExecStart=`` word and an
``Environment=`` assignment (systemd unquotes and C-unescapes both and expands ``%``
specifiers in both, ``$VARS`` in ``ExecStart=`` only: :func:`systemd_word`,
:func:`systemd_assignment`), how a unit is checked, and how the manager is told.

The validator ``systemd-unit`` writes every changed unit of the run into one temporary
directory and runs ``systemd-analyze verify --man=no`` on them at once. verify exits 0 on
unknown keys and sections and on values it cannot parse (it ignores them), so every line it
prints about one of the units is an error, located at the unit's line it names and blamed on
the option that wrote it (:class:`SystemdUnitContext`); excused are a notice about
``User=nobody`` (:data:`BENIGN`) and "is not executable", which :mod:`.programs` judges below
the install root rather than on this machine. As root, verify runs in a private mount namespace
with a scratch ``/run/systemd`` (:func:`isolated`): it would otherwise stamp the running
manager's ``/run/systemd/systemd-units-load``, and a check leaves the machine as it found it.

The reload ``systemd`` runs ``systemctl daemon-reload`` once, then ``try-restart`` on the
changed units (a stopped unit stays stopped) and ``stop`` on those whose file is gone; the
restart ``systemd-restart`` (``restart = systemd UNIT``) try-restarts, less what the reload of
the same run already restarted. Both skip every unit when systemd is not the init system
(a container or a chroot: there is no manager to tell)."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.schema import Lines, OptionType
from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.daemons.common import systemd_running


def has_systemd(root: str) -> bool:
    return any(
        os.path.exists(os.path.join(root, p))
        for p in ("lib/systemd/systemd", "usr/lib/systemd/systemd")
    )


# -- validators -------------------------------------------------------------------------------
# systemd-analyze says this about a legitimate (if discouraged) User=nobody
BENIGN = ("Special user nobody configured",)


def isolated(command: list[str]) -> list[str]:
    """``systemd-analyze verify`` run as root touches /run/systemd/systemd-units-load (its
    manager's "units loaded" stamp): a validator must leave the machine as it found it, so as
    root it runs in a private mount namespace with a scratch /run/systemd."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not os.path.isdir("/run/systemd"):
        return command
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs -o mode=0755 system-recipes-verify /run/systemd && exec "$@"',
        "sh",
        *command,
    ]


@dataclass(frozen=True)
class SystemdUnitContext:
    """What the ``systemd-unit`` check knows besides the unit: the option that wrote each of
    its lines (:func:`..core.validate.trace`), so an error names that option."""

    origins: tuple[str, ...] = ()


@validate.register
class SystemdUnitValidator(validate.Validator):
    """``systemd-analyze verify --man=no`` on every changed unit at once, in a temp dir.

    It exits 0 on unknown keys, unknown sections and values it cannot parse (it ignores them),
    so every line it prints about one of our units is an error, except the ones in BENIGN."""

    name = "systemd-unit"
    tools = ("systemd-analyze",)

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str | validate.Problem]:
        errors: dict[int, str | validate.Problem] = {}
        with tempfile.TemporaryDirectory(prefix="system-recipes-units-") as directory:
            paths = []
            for item in items:
                path = os.path.join(directory, posixpath.basename(item.file.path))
                with open(path, "wb") as stream:
                    stream.write(item.file.content)
                paths.append(path)
            result = validate.run_tool(
                isolated(["systemd-analyze", "verify", "--man=no", *paths]), timeout=120
            )
            lines = (result.stdout + result.stderr).splitlines()
            excused = False
            for index, (item, path) in enumerate(zip(items, paths, strict=True)):
                unit = os.path.basename(path)
                origins = item.given(SystemdUnitContext).origins
                for line in lines:
                    text = line.strip()
                    number = None
                    if text.startswith(path + ":"):
                        number_text, _, message = text[len(path) + 1 :].partition(":")
                        number = int(number_text) if number_text.strip().isdigit() else None
                        message = message.strip() if number else text[len(path) + 1 :].strip()
                    elif text.startswith(unit + ":") or f"Unit {unit} " in text:
                        message = text
                    else:
                        continue
                    if any(benign in message for benign in BENIGN):
                        continue
                    if "is not executable" in message:
                        excused = True  # judged below the root by daemons.programs, not here
                        continue
                    errors[index] = (
                        validate.locate(
                            f"systemd-analyze: {message}", item.file.content, number, origins
                        )
                        if number
                        else f"systemd-analyze: {message}"
                    )
                    break
            if result.returncode and not errors and not excused:
                for index in range(len(items)):
                    errors[index] = (
                        f"systemd-analyze verify exited {result.returncode}: "
                        f"{lines[-1].strip() if lines else 'no output'}"
                    )
        return errors


# -- reloads ----------------------------------------------------------------------------------
def _systemctl(*arguments: str) -> list[str]:
    result = subprocess.run(["systemctl", *arguments], capture_output=True, text=True)
    if result.returncode:
        output = (result.stderr or result.stdout).strip().splitlines()
        return [
            f"systemctl {' '.join(arguments)} exited {result.returncode}"
            + (f": {output[-1]}" if output else "")
        ]
    return []


@reload.register("systemd")
def reload_systemd(targets: list[str], settings: Settings) -> reload.Outcome | list[str]:
    """daemon-reload once, then try-restart the changed units; stop units whose file is gone."""
    if not systemd_running():
        return reload.Outcome(skipped={t: "systemd is not running" for t in targets})
    problems = _systemctl("daemon-reload")
    if problems:
        return problems
    directory = settings.layout.systemd_directory
    present = [u for u in targets if os.path.isfile(settings.target(posixpath.join(directory, u)))]
    gone = [u for u in targets if u not in present]
    if present:
        problems += _systemctl("try-restart", *present)
    if gone:
        problems += _systemctl("stop", *gone)
    return problems


@reload.register("systemd-restart", covered_by="systemd")
def restart_systemd(targets: list[str], settings: Settings) -> reload.Outcome | list[str]:
    """Its configuration file or package changed: try-restart (a stopped unit stays stopped)."""
    if not systemd_running():
        return reload.Outcome(skipped={t: "systemd is not running" for t in targets})
    return _systemctl("try-restart", *targets)


UNIT_SUFFIXES = (
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
)


UNIT_NAME = r"[A-Za-z0-9:_.-]+(@[A-Za-z0-9:_.-]+)?\.(" + "|".join(UNIT_SUFFIXES) + ")"


PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


class UnitNames(OptionType):
    """Unit names separated by spaces or lines, as systemd's own After=/Wants= take them."""

    expected = "unit names such as network-online.target, separated by spaces or lines"

    def parse(self, text: str) -> list[str]:
        names: list[str] = []
        for line in Lines().parse(text):
            for word in line.split():
                if not re.fullmatch(UNIT_NAME, word):
                    raise ValueError(f"{shown(word)} is not a unit name")
                if word not in names:
                    names.append(word)
        return names


# -- quoting ----------------------------------------------------------------------------------
def systemd_word(word: str) -> str:
    """One ExecStart= word: systemd unquotes, C-unescapes, expands %specifiers and $VARS."""
    if PLAIN_WORD.fullmatch(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def systemd_assignment(key: str, value: str) -> str:
    """One Environment= word: unquoted and C-unescaped, %specifiers expanded, no $VARS."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return f'"{key}={escaped.replace("%", "%%")}"'


def specifiers(text: str) -> str:
    return text.replace("%", "%%")

"""Nagios (``nagios4`` on Debian's layout, ``nagios`` on Red Hat's): where its main configuration
is (:func:`main_config`, ``nagios.cfg`` beside the object directory), how an object file of that
directory is judged, and how a running Nagios is reloaded.

The validators ``nagios4`` and ``nagios`` (the same check, named after the layout's service and
its program) run the daemon's own ``-v`` once per main configuration and object directory, for
every changed file there. Nagios resolves the objects of all its files together (a service
names a host, a command and templates defined elsewhere), so a file is judged with the others,
not alone. The main configuration (below the install root, or this machine's when the root has
none) must read the object directory (``cfg_dir=``, or the files would never be read); a
temporary copy of it points that ``cfg_dir`` at a copy of the directory as the run leaves it
(the files below the root, less those the run removes, plus this run's contents) and its other
``cfg_file``/``cfg_dir``/``resource_file`` lines at the files below the root. The answer is the
output and the exit status: exit 0, ``Total Errors: 0`` and no ``Error:`` or ``Unable to`` line.
An error line goes to the file it names; one that names no file (a host a service refers to is
not defined) goes to the first file whose addition breaks the configuration, found by verifying
again with the files added one at a time. A problem is located at the line nagios names (``in
file 'PATH' on line N`` and its variants, or the definition of the service it names) and blamed
on the option that wrote it (:class:`NagiosContext`).

The reload ``nagios`` is ``systemctl reload`` of the active unit when systemd runs; otherwise
SIGHUP to the pid in the ``lock_file`` of nagios.cfg (Nagios's pidfile), and a Nagios that
exits within a second of it has refused the new configuration (a problem; see its log)."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.daemons.common import directive, reload_service


def main_config(layout) -> str:
    """nagios.cfg beside the object directory: /etc/nagios4/nagios.cfg on Debian."""
    return posixpath.join(posixpath.dirname(layout.nagios_objects), "nagios.cfg")


# -- the validator: nagios -v on a copy of the main configuration -----------------------------
@dataclass(frozen=True)
class NagiosContext:
    """What the ``nagios4``/``nagios`` check knows besides the object file: the ``main``
    configuration's host path, the ``objects`` directory it reads, and the option that wrote
    each line of the file (``origins``: an error names that option)."""

    main: str
    objects: str
    origins: tuple[str, ...] = ()


@validate.register
class NagiosValidator(validate.Validator):
    """``nagios4 -v`` on a temporary main config that reads the object directory to be."""

    name = "nagios4"
    tools = ("nagios4",)
    timeout = 120

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str | validate.Problem]:
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(items):
            given = item.given(NagiosContext)
            groups.setdefault((given.main, given.objects), []).append(index)
        errors: dict[int, str | validate.Problem] = {}
        for (main, objects), indexes in groups.items():
            errors.update(
                self._check_group(
                    context.root,
                    main,
                    objects,
                    set(context.leaving),
                    [(i, items[i]) for i in indexes],
                )
            )
        return errors

    def _check_group(
        self,
        root: str,
        main: str,
        objects: str,
        leaving: set[str],
        batch: list[tuple[int, validate.Item]],
    ) -> dict[int, str | validate.Problem]:
        below = os.path.join(root, main.lstrip("/"))
        from_root = os.path.isfile(below)
        real_main = below if from_root else main
        try:
            with open(real_main, encoding="utf-8", errors="replace") as stream:
                main_lines = stream.read().splitlines()
        except OSError as error:
            return {
                i: f"cannot read the Nagios main configuration {main}: {error.strerror}"
                for i, _ in batch
            }
        if not any(
            _key(line) == "cfg_dir" and _resolve(main, _value(line)) == objects
            for line in main_lines
        ):
            return {
                i: f"{main} does not read {objects} (expected cfg_dir={objects})" for i, _ in batch
            }
        with tempfile.TemporaryDirectory(prefix="system-recipes-nagios-") as tmp:
            os.chmod(tmp, 0o755)  # nagios -v reads the objects as nagios_user
            copy = os.path.join(tmp, "objects")
            files = _stage_objects(root, objects, copy, leaving, batch)
            config = os.path.join(tmp, "nagios.cfg")
            others_below = root if from_root and root != "/" else None
            _write_main(config, main, main_lines, objects, copy, others_below)

            def verify(active: set[str]) -> list[str]:
                _activate(files, active)
                return self._verify(config, tmp, files, objects, copy)

            problems = verify(set(files))
            if not problems:
                return {}
            errors = _attribute(problems, files, copy, objects, verify)
        tool = self.tools[0]
        by_index = dict(batch)
        return {
            index: _located(f"{tool} -v: ", lines, by_index[index])
            for index, lines in errors.items()
        }

    def _verify(self, config: str, tmp: str, files: dict, objects: str, copy: str) -> list[str]:
        """Error lines of ``nagios -v``, with temporary paths shown as host paths."""
        try:
            result = validate.run_tool([self.tools[0], "-v", config], timeout=self.timeout)
        except OSError as error:
            return [f"cannot run {self.tools[0]}: {error.strerror}"]
        except Exception as error:  # subprocess.TimeoutExpired
            return [f"{self.tools[0]} -v did not finish: {error}"]
        output = result.stdout + result.stderr
        errors = [
            line.strip()
            for line in output.splitlines()
            if line.strip().startswith(("Error:", "Unable to"))
        ]
        okay = (
            result.returncode == 0
            and re.search(r"^Total Errors:\s+0\s*$", output, re.M)
            and not errors
        )
        if okay:
            return []
        if not errors:
            errors = [line.strip() for line in output.splitlines() if "***>" in line] or [
                f"exited {result.returncode}"
            ]
        return [
            line.replace(copy, objects).replace(config, "nagios.cfg").replace(tmp, "")
            for line in errors
        ]


@validate.register
class NagiosRedHatValidator(NagiosValidator):
    name = "nagios"
    tools = ("nagios",)


def _resolve(main: str, value: str) -> str:
    """A path of the main configuration, relative to its directory."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(main), value))


def _stage_objects(
    root: str, objects: str, copy: str, leaving: set[str], batch: list[tuple[int, validate.Item]]
) -> dict[str, tuple[int, str]]:
    """``copy`` becomes the object directory as the run leaves it: the files below the root,
    less those the run removes or writes, plus this run's contents. Returns each of this run's
    files by its temporary path: (its index, its host path)."""
    source = os.path.join(root, objects.lstrip("/"))
    skip = {item.file.path for _, item in batch} | leaving

    def ignore(directory: str, names: list[str]) -> list[str]:
        host_dir = objects + directory[len(source) :]
        return [n for n in names if posixpath.join(host_dir, n) in skip]

    if os.path.isdir(source):
        shutil.copytree(source, copy, symlinks=True, ignore=ignore)
    else:
        os.makedirs(copy)
    files: dict[str, tuple[int, str]] = {}  # temp path -> (index, host path)
    for index, item in batch:
        relative = posixpath.relpath(item.file.path, objects)
        target = os.path.join(copy, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as copied:
            copied.write(item.file.content)
        files[target] = (index, item.file.path)
    return files


def _write_main(
    config: str,
    main: str,
    main_lines: list[str],
    objects: str,
    copy: str,
    others_below: str | None,
) -> None:
    """The temporary main configuration: its ``cfg_dir`` of the objects reads ``copy``, its
    other ``cfg_file``/``cfg_dir``/``resource_file`` lines read below ``others_below`` (the
    root the main configuration was found in; None: as they are)."""
    lines = []
    for line in main_lines:
        key = _key(line)
        if key in ("cfg_dir", "cfg_file", "resource_file"):
            path = _resolve(main, _value(line))
            if key == "cfg_dir" and path == objects:
                line = f"{key}={copy}"
            elif others_below is not None:
                line = f"{key}={os.path.join(others_below, path.lstrip('/'))}"
            else:
                line = f"{key}={path}"
        lines.append(line)
    with open(config, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")


def _activate(files: dict[str, tuple[int, str]], active: set[str]) -> None:
    """Only the ``active`` files of this run are read: nagios reads only *.cfg from a cfg_dir,
    so the others are parked as .off."""
    for path in files:
        parked = path + ".off"
        if path in active and os.path.exists(parked):
            os.rename(parked, path)
        elif path not in active and os.path.exists(path):
            os.rename(path, parked)


def _attribute(
    problems: list[str],
    files: dict[str, tuple[int, str]],
    copy: str,
    objects: str,
    verify: Callable[[set[str]], list[str]],
) -> dict[int, list[str]]:
    """Each error line to the file it names; the lines naming none to the first file whose
    addition breaks the configuration (verified again with the files added one at a time)."""
    errors: dict[int, list[str]] = {}
    unattributed = []
    for line in problems:
        owners = [files[path] for path in files if _mentions(line, path, copy, objects)]
        if owners:
            for index, _ in owners:
                errors.setdefault(index, []).append(line)
        else:
            unattributed.append(line)
    if not unattributed:
        return errors
    order = list(files)
    if len(order) == 1:
        errors.setdefault(files[order[0]][0], []).extend(unattributed)
        return errors
    for count in range(1, len(order) + 1):  # the first file whose addition breaks it
        found = verify(set(order[:count]))
        if found:
            culprit = files[order[count - 1]][0]
            errors.setdefault(culprit, []).extend(
                line for line in found if line not in errors.get(culprit, [])
            )
            return errors
    for index, _ in files.values():
        errors.setdefault(index, []).extend(unattributed)
    return errors


def _key(line: str) -> str:
    return line.strip().partition("=")[0].strip() if "=" in line else ""


def _value(line: str) -> str:
    return line.strip().partition("=")[2].strip()


def _mentions(line: str, temp_path: str, copy: str, objects: str) -> bool:
    host_path = objects + temp_path[len(copy) :]
    return re.search(re.escape(host_path) + r"(?![\w.-])", line) is not None


def _located(prefix: str, lines: list[str], item: validate.Item) -> str | validate.Problem:
    """nagios -v's lines about a file, located at the first line of it they name (nagios says
    ``in file 'PATH' on line N``, ``(config file 'PATH', starting on line N)`` or
    ``(PATH:N)``); that location is then said once, by the error itself."""
    where = re.compile(
        r"\s*(?:\(config file '|in file '|\()"
        + re.escape(item.file.path)
        + r"(?:', starting on line |' on line |:)(\d+)\)?"
    )
    number = None
    specific, located = [], []  # "Invalid directive 'x'" says more than "Could not add ..."
    for line in lines:
        match = where.search(line)
        if match:
            number = number or int(match.group(1))
            located.append((line[: match.start()] + line[match.end() :]).rstrip(" ."))
        else:
            specific.append(line)
    message = prefix + _summary(specific + located, limit=1)
    origins = item.given(NagiosContext).origins
    if number is None:
        # "... specified in service 'SSH' for host 'shop1' not defined": that definition
        named = re.search(r"service '([^']*)' for host '([^']*)'", lines[0])
        number = named and _service_line(item.file.content, *named.groups())
    if number is None:
        return message
    return validate.locate(message, item.file.content, number, origins)


def _service_line(content: bytes, description: str, host: str) -> int | None:
    """The line starting the definition of the service ``description`` on ``host``."""
    start: int | None = None
    fields: dict[str, str] = {}
    for number, line in enumerate(content.decode("utf-8", "replace").split("\n"), start=1):
        words = line.split(None, 1)
        if line.split() == ["define", "service", "{"]:
            start, fields = number, {}
        elif words and words[0] == "}" and start is not None:
            if fields.get("service_description") == description and fields.get("host_name") == host:
                return start
            start = None
        elif start is not None and len(words) == 2:
            fields[words[0]] = words[1].strip()
    return None


def _summary(lines: list[str], limit: int = 3) -> str:
    unique = list(dict.fromkeys(line.removeprefix("Error: ") for line in lines))
    text = "; ".join(unique[:limit])
    if len(unique) > limit:
        text += f" (and {len(unique) - limit} more)"
    return text


# -- the reload -----------------------------------------------------------------------------
@reload.register("nagios")
def reload_nagios(targets: list[str], settings: Settings) -> reload.Outcome:
    config = settings.target(main_config(settings.layout))
    pidfile = (
        directive(config, "lock_file")
        or f"/run/{settings.layout.nagios_service}/{settings.layout.nagios_service}.pid"
    )
    outcome = reload.Outcome()
    for service in targets:
        outcome.add(reload_service("nagios", service, pidfile, ("nagios4", "nagios")))
    return outcome

"""logrotate: which files of its include directory it skips (:data:`TABOO_EXTENSIONS`, its
config.c ``defTabooExts``, asked by :func:`ignored_by_logrotate`: a file named ``app.bak`` or
``app.disabled`` would never be read, so the recipe refuses such a name), how a path with
blanks is written (:func:`quote`), and how a file of its configuration is judged.

The validator ``logrotate`` runs one ``logrotate -d`` (debug: it reads the configuration and
rotates nothing) for every changed file of the run, on copies in a temporary directory of mode
0755, files 0644 (logrotate refuses a file others could have written), with a state file of its
own there. Each copy is the file as rendered for the check (:class:`LogrotateContext`): the
recipe names ``root`` instead of the host's accounts of ``create``, ``su`` and
``createolddir`` and leaves ``olddir`` out, which logrotate would judge against the machine
running the build, not the host being configured. logrotate exits 0 on unknown directives, so
its output counts, not its exit status: each ``error:`` line printed while it reads the
configuration (:func:`config_errors`; what comes after "Handling N logs" is about logs that do
not exist yet, not about the configuration) fails the file it names, located at the first line
it numbers and blamed on the option that wrote it (:func:`explain`); a file logrotate does not
say it read fails too. No reload is registered: logrotate is run by cron or a systemd timer and
reads its configuration each time."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass

from system_recipes.core.hooks import validate

# logrotate 3.21 config.c defTabooExts: files of an include directory whose names match
# "*" + one of these are skipped ("Ignoring NAME, because of PATTERN pattern match").
TABOO_EXTENSIONS = (
    ",v",
    ".bak",
    ".cfsaved",
    ".disabled",
    ".dpkg-bak",
    ".dpkg-del",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-old",
    ".dpkg-tmp",
    ".rhn-cfg-tmp-*",
    ".rpmnew",
    ".rpmorig",
    ".rpmsave",
    ".swp",
    ".ucf-dist",
    ".ucf-new",
    ".ucf-old",
    "~",
)


def ignored_by_logrotate(name: str) -> str | None:
    """The taboo pattern that makes logrotate skip ``name`` in its include directory."""
    for extension in TABOO_EXTENSIONS:
        if fnmatch.fnmatchcase(name, "*" + extension):
            return extension
    return None


def quote(path: str) -> str:
    return f'"{path}"' if any(c.isspace() for c in path) else path


# -- the validator: one logrotate -d for every changed file -------------------------------
@dataclass(frozen=True)
class LogrotateContext:
    """What the ``logrotate`` check judges: ``checked``, the file as rendered for the check
    (what logrotate -d reads instead of the file itself), and ``origins``, the option that
    wrote each of its lines (an error names that option)."""

    checked: bytes
    origins: tuple[str, ...] = ()


@validate.register
class LogrotateValidator(validate.Validator):
    """``logrotate -d`` on copies of the changed files; its output, not its exit code, counts."""

    name = "logrotate"
    tools = ("logrotate",)
    timeout = 120

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str | validate.Problem]:
        with tempfile.TemporaryDirectory(prefix="system-recipes-logrotate-") as tmp:
            os.chmod(tmp, 0o755)  # logrotate refuses files others could have written
            files: dict[str, int] = {}
            for index, item in enumerate(items):
                path = os.path.join(tmp, f"{index}-{posixpath.basename(item.file.path)}")
                with open(path, "wb") as stream:
                    stream.write(item.given(LogrotateContext).checked)
                os.chmod(path, 0o644)
                files[path] = index
            command = [self.tools[0], "-d", "-s", os.path.join(tmp, "state"), *files]
            try:
                result = validate.run_tool(command, timeout=self.timeout)
            except OSError as error:
                return {i: f"cannot run logrotate: {error.strerror}" for i in files.values()}
            except Exception as error:  # subprocess.TimeoutExpired
                return {i: f"logrotate -d did not finish: {error}" for i in files.values()}
            read, problems = config_errors(result.stdout + result.stderr, list(files))
        errors: dict[int, str | validate.Problem] = {}
        for path, index in files.items():
            lines = problems.get(path, [])
            if lines:
                errors[index] = explain(lines, path, items[index])
            elif path not in read:
                errors[index] = (
                    f"logrotate -d did not read it (exit {result.returncode}): "
                    + summary((result.stdout + result.stderr).splitlines()[-1:])
                )
        return errors


def config_errors(output: str, paths: list[str]) -> tuple[set[str], dict[str, list[str]]]:
    """The files logrotate read, and the ``error:`` lines it printed while reading each.

    Errors after the configuration is read ("Handling N logs") are about the logs on this
    machine (one that does not exist yet), not about the configuration.
    """
    read: set[str] = set()
    problems: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("reading config file "):
            current = line.removeprefix("reading config file ").strip()
            read.add(current)
            continue
        if line.startswith(("Reading state from file", "Handling ")):
            break
        if not line.startswith("error:"):
            continue
        named = [p for p in paths if re.search(re.escape(p) + r":\d", line)]
        owner = named[0] if named else current
        if owner is not None:
            problems.setdefault(owner, []).append(line.removeprefix("error:").strip())
    return read, problems


def explain(lines: list[str], path: str, item: validate.Item) -> str | validate.Problem:
    """logrotate's ``TMP/0-app:5 unknown option`` lines -> one problem, located at the first
    numbered line and blamed on the option that wrote it."""
    messages, number = [], None
    for line in lines:
        match = re.match(re.escape(path) + r":(\d+)\s*(.*)", line)
        if not match:
            messages.append(line.replace(path, "this file"))
            continue
        messages.append(match.group(2))
        number = number or int(match.group(1))
    message = "logrotate -d: " + summary(messages, limit=1)
    if number is None:
        return message
    origins = item.given(LogrotateContext).origins
    return validate.locate(message, item.file.content, number, origins)


def summary(lines: list[str], limit: int = 3) -> str:
    # "found error in PATTERN, skipping" only repeats that the block was dropped
    useful = [ln for ln in lines if not ln.startswith("found error in")] or lines
    unique = list(dict.fromkeys(useful))
    text = "; ".join(unique[:limit])
    if len(unique) > limit:
        text += f" (and {len(unique) - limit} more)"
    return text

"""``system_recipes:cron``: a cron table in ``/etc/cron.d`` (the layout's cron directory).

Writes ``/etc/cron.d/NAME`` (``name`` defaults to the section name), mode 0644, owned by root.
cron ignores files in that directory whose names hold anything but letters, digits, ``_`` and
``-`` (Debian's run-parts rule: ``app.cron`` or ``app@1`` would never run), so such names are
refused. Entries come either from ``entries``, one per line (a schedule of five fields or an
``@reboot``/``@daily``-style special, then the command), or from ``schedule`` and ``command``
for a single entry. Every entry runs as ``user`` (the user column of a cron.d file), which must
exist below the root or be created by a deployment part of the same run. ``environment`` lines
(``KEY=value``: ``MAILTO``, ``PATH``, ``SHELL``...) come before the entries; an empty value is
written ``KEY=""`` (cron refuses ``KEY=`` alone). ``$$`` in the profile means ``$``.

``%`` in a command: cron turns an unescaped ``%`` into a newline and feeds the rest of the
line to the command's standard input. Here a ``%`` always means a literal percent sign (as
in ``date +%F``): it is written ``\\%``, which cron turns back into ``%`` (proven against a
running cron in the tests). A ``\\`` directly before a ``%`` is refused: cron cannot pass
that pair through (written ``\\\\%``, the command would end at the ``%``); put such a
command in a script. cron reads at most 998 bytes of a command as written (each ``%`` counts
twice): a longer one is refused, naming ``command`` (or ``entries``), since cron would refuse
it too (``crontab -n``: "command too long") and skip the entry. To feed a command input, use the shell (``printf 'x\\n' | cmd``).

Each schedule is checked by python-crontab, which builds the entry, and the file is then
judged by cron itself: one ``crontab -n`` (the dry run of Debian's crontab; it reports the
first error only) per buildout run checks the environment lines and schedules of every
changed cron file at once, without the user column, which user crontabs do not have; the
error names the section, the option and the entry. python-crontab must then read back
exactly the entries, users and commands that were written, because it silently drops lines
it cannot parse (among them an ``@special`` entry whose command holds a ``#`` without a blank
before it: write such a schedule as five fields). The schedule is written as given, not as
python-crontab would re-render it (it rewrites ``0 0 */2 * SUN-SAT`` to ``0 0 */2 * *``,
which runs half as often). No reload is needed: cron notices the new modification time of
``/etc/cron.d`` and re-reads it at the start of the next minute.

Example::

    [app-cron]
    recipe = system_recipes:cron
    comment = the shop's housekeeping
    environment =
        MAILTO = ops@example.com
        PATH = /usr/local/bin:/usr/bin:/bin
    entries =
        */5 * * * * /opt/shop/bin/shop-queue --flush
        @daily /opt/shop/bin/shop-cleanup --before "$$(date +%F -d '-30 days')"
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import tempfile
import unicodedata
from dataclasses import dataclass

from crontab import CronTab

from ..core import validate
from ..core.errors import ConfigError, shown
from ..core.model import Check, FileSpec, PartSpec
from ..core.recipe import Recipe
from ..core.schema import (
    Account,
    Assignments,
    Line,
    Lines,
    Name,
    Option,
    Schema,
    Values,
    force_option,
    section_name,
)

# run-parts(8) --lsbsysinit is what Debian's cron applies to /etc/cron.d names
CRON_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+")
ENTRY_SYNTAX = "a schedule of five fields or an @special, then the command"
# cron.h: MAX_ENVSTR; cron reads at most 999 bytes of an environment line, dropping the rest
MAX_ENVIRONMENT_LINE = 999
# cron.h: MAX_COMMAND (1000) holds the command as written (``%`` escaped) with its newline and
# final NUL: Debian's cron refuses a longer command ("command too long": crontab -n says so and
# the daemon skips the entry); 998 bytes pass, 999 do not (measured with crontab -n)
MAX_COMMAND = 998


class CronName(Name):
    expected = "a name of letters, digits, '_' and '-' (cron ignores other names in cron.d)"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not CRON_FILE_NAME.fullmatch(value):
            raise ValueError(f"{shown(value)} would be ignored by cron (no dots or other characters "
                             "outside letters, digits, '_' and '-')")
        return value


SCHEMA = Schema([
    Option("name", CronName(), default=section_name,
           help="the file name in the cron directory (letters, digits, '_' and '-' only)"),
    Option("entries", Lines(), default=None,
           help="one entry per line: a schedule (five fields, or @reboot, @hourly, @daily, "
                "@weekly, @monthly, @yearly) then the command; instead of schedule + command"),
    Option("schedule", Line(), default=None,
           help="the schedule of a single entry (five fields or an @special), with command"),
    Option("command", Line(), default=None,
           help="the command of a single entry, with schedule; % is a literal percent sign"),
    Option("user", Account(), default="root",
           help="the user every entry runs as; must exist or be created by a deployment part"),
    Option("environment", Assignments(), default=None,
           help="lines of KEY=value written before the entries (MAILTO, PATH, SHELL...)"),
    Option("comment", Line(), default="", help="a comment line at the top of the file"),
    force_option(),
])


@dataclass(frozen=True)
class Entry:
    option: str  # where it was written: entries or schedule
    schedule: str  # as given, fields joined by single spaces
    command: str  # what cron hands to the shell

    def line(self, user: str) -> str:
        """The cron.d line: schedule, user column, command with ``%`` escaped for cron."""
        return f"{self.schedule} {user} {escape_percent(self.command)}"


def escape_percent(command: str) -> str:
    return command.replace("%", "\\%")


def unprintable(text: str) -> str | None:
    """A control or line-separator character, which would split or garble a cron line."""
    for char in text:
        if char != "\t" and unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return repr(char)
    return None


def split_entry(text: str) -> tuple[str, str]:
    """``entries`` line -> (schedule, command)."""
    if text.startswith("@"):
        words = text.split(None, 1)
    else:
        words = text.split(None, 5)
        words = [" ".join(words[:5]), *words[5:]] if len(words) >= 5 else []
    if len(words) < 2 or not words[1].strip():
        raise ValueError(f"{shown(text)} has no command")
    return words[0], words[1].strip()


COMMAND_LENGTH = (f"a command of at most {MAX_COMMAND} bytes, each % counted twice; put a "
                  "longer one in a script")


class CommandError(ValueError):
    """A problem of an entry's command (not of its schedule): with ``schedule`` + ``command``
    it is blamed on ``command``. A second argument says what was expected instead."""


def make_entry(option: str, schedule: str, command: str, user: str) -> Entry:
    """Check one entry with python-crontab (it builds the item); raises ValueError."""
    schedule = " ".join(schedule.split())
    for text, error in ((schedule, ValueError), (command, CommandError)):
        bad = unprintable(text)
        if bad:
            raise error(f"{shown(text)} contains the control character {bad}")
    if "\\%" in command:
        raise CommandError(f"{shown(command)}: a '\\' directly before '%' cannot reach the "
                           "command through cron (put the command in a script)")
    length = len(escape_percent(command).encode())
    if length > MAX_COMMAND:
        raise CommandError(f"{shown(command)} is {length} bytes, cron reads at most "
                           f"{MAX_COMMAND}", COMMAND_LENGTH)
    item = CronTab(user=False).new(command=command, user=user)
    try:
        item.setall(schedule)
    except (ValueError, KeyError) as error:
        raise ValueError(f"schedule {shown(schedule)}: {error.args[0] if error.args else error}") \
            from None
    if not item.is_valid():
        raise ValueError(f"schedule {shown(schedule)} is not valid")
    return Entry(option, schedule, command)


class Recipe(Recipe):
    """A cron table in the cron directory."""

    schema = SCHEMA
    recipe_name = "cron"

    def build(self, spec: PartSpec, values: Values) -> None:
        try:
            name = CronName().parse(values.name)  # the default (section name) is checked too
        except ValueError as error:
            raise ConfigError(self.name, "name", str(error), CronName.expected) from None
        entries = self._entries(values)
        environment = self._environment(values.environment or {})
        comment = values.comment
        if unprintable(comment):
            raise ConfigError(self.name, "comment", f"contains the control character "
                              f"{unprintable(comment)}", "a single line of text")
        lines = [entry.line(values.user) for entry in entries]
        content = self.render("cron.j2", {"section": self.name, "comment": comment,
                                          "environment": environment, "entries": lines})
        expected = tuple([("environment", line, "", "", "") for line in environment] + [
            (entry.option, line, entry.schedule, values.user, entry.command)
            for entry, line in zip(entries, lines, strict=True)])
        spec.force = values.force
        spec.needs_accounts.append(("user", values.user, None))
        spec.files.append(FileSpec(
            path=posixpath.join(self.layout.cron_directory, name), content=content, mode=0o644,
            checks=[Check("cron", expected)]))

    def _entries(self, values: Values) -> list[Entry]:
        single = values.schedule is not None or values.command is not None
        if values.entries is not None and single:
            option = "schedule" if values.schedule is not None else "command"
            raise ConfigError(self.name, option, "given together with entries",
                              "either entries or schedule + command")
        if single:
            for option in ("schedule", "command"):
                if not values.get(option):
                    raise ConfigError(self.name, option, "missing (schedule and command go "
                                      "together)", "both schedule and command")
            pairs = [("schedule", values.schedule, values.command)]
        elif values.entries:
            pairs = []
            for text in values.entries:
                try:
                    pairs.append(("entries", *split_entry(text)))
                except ValueError as error:
                    raise ConfigError(self.name, "entries", str(error), ENTRY_SYNTAX) from None
        else:
            raise ConfigError(self.name, "entries", "no entries",
                              "entries, or schedule + command")
        result = []
        for option, schedule, command in pairs:
            try:
                result.append(make_entry(option, schedule, command, values.user))
            except CommandError as error:
                blamed = "command" if single else option
                raise ConfigError(self.name, blamed, error.args[0],
                                  error.args[1] if len(error.args) > 1 else ENTRY_SYNTAX) from None
            except ValueError as error:
                raise ConfigError(self.name, option, str(error), ENTRY_SYNTAX) from None
        return result

    def _environment(self, environment: dict[str, str]) -> list[str]:
        lines = []
        for key, value in environment.items():
            if unprintable(value):
                raise ConfigError(self.name, "environment", f"{key}: contains the control "
                                  f"character {unprintable(value)}", "lines of KEY=value")
            line = f"{key}={value}" if value else f'{key}=""'
            if len(line.encode()) > MAX_ENVIRONMENT_LINE:
                raise ConfigError(self.name, "environment", f"{key}: the line is "
                                  f"{len(line.encode())} bytes, cron reads at most "
                                  f"{MAX_ENVIRONMENT_LINE}", "a shorter value")
            lines.append(line)
        return lines


# -- the validator ------------------------------------------------------------------------------
def read_entries(text: str) -> list:
    """The entries python-crontab reads from a cron.d file; it drops (and logs) bad lines."""
    logger = logging.getLogger("crontab")
    disabled, logger.disabled = logger.disabled, True
    try:
        return [job for job in CronTab(tab=text, user=False)
                if job.is_valid() and job.is_enabled()]
    finally:
        logger.disabled = disabled


CRONTAB_ERROR = re.compile(r'^"[^"]*":(\d+): (.*)$')


SPOOL = "/var/spool/cron/crontabs"


def dry_run_command(path: str) -> list[str]:
    """``crontab -n PATH``. The dry run still writes (and removes) a temp file in cron's spool
    directory, which wakes the daemon: as root it runs in a private mount namespace with a
    throw-away spool, so checking (and ``plan``) changes nothing on the machine."""
    if os.geteuid() == 0 and os.path.isdir(SPOOL) and validate.which("unshare"):
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                'mount -t tmpfs -o mode=1730 system-recipes "$1" && exec crontab -n "$2"',
                "sh", SPOOL, path]
    return ["crontab", "-n", path]


@validate.register
class CronValidator(validate.Validator):
    """cron's own dry run (``crontab -n``) on every changed file at once, then python-crontab's
    reading of each file compared with what was written."""

    name = "cron"
    tools = ("crontab",)

    def check(self, items: list[validate.Item], context: validate.ValidationContext) -> dict[int, str]:
        errors: dict[int, str] = {}
        owners: list[tuple[int, tuple]] = []  # one per entry of the temp crontab
        for index, item in enumerate(items):
            problem = self._read_back(item)
            if problem:
                errors[index] = problem
                continue
            owners += [(index, line) for line in item.check.arguments]
        if owners:
            for index, message in self._crontab_n(owners).items():
                errors.setdefault(index, message)
        return errors

    @staticmethod
    def _read_back(item: validate.Item) -> str | None:
        """The file name, the final newline, the lines in order, and python-crontab's view."""
        name = posixpath.basename(item.file.path)
        if not CRON_FILE_NAME.fullmatch(name):
            return f"cron ignores a file named {shown(name)} in its directory"
        text = item.file.content.decode("utf-8", "replace")
        if not text.endswith("\n"):
            return "the file does not end with a newline (cron would drop the last line)"
        written = [line for line in text.split("\n")
                   if line.strip() and not line.lstrip().startswith("#")]
        expected = [line[1] for line in item.check.arguments]
        if written != expected:
            return ("the template did not write the environment lines and entries exactly "
                    "once, in order (cron.j2 must render every one of them)")
        entries = [line for line in item.check.arguments if line[0] != "environment"]
        parsed = read_entries(text)
        if len(parsed) != len(entries):
            for option, line, schedule, _, command in entries:
                if len(read_entries(line)) != 1:
                    hint = (" (it reads a '#' in the command of an @special entry as a comment: "
                            "write the schedule as five fields)"
                            if schedule.startswith("@") and "#" in command else "")
                    return f"{option}: {shown(line)}: python-crontab cannot read it back{hint}"
            return (f"python-crontab read {len(parsed)} of the {len(entries)} entries written "
                    "(it drops lines it cannot parse)")
        for job, (option, line, _, user, command) in zip(parsed, entries, strict=True):
            if job.user != user:
                return f"{option}: {shown(line)}: read back with user {shown(job.user)}, not {shown(user)}"
            # python-crontab splits ' # ...' off as a comment (and takes a comment line just
            # above an entry as its "pre-comment"): compare without blanks
            inline = job.comment if job.comment and not job.pre_comment else ""
            read = job.command + (f"#{inline}" if inline else "")
            if "".join(read.split()) != "".join(command.split()):
                return f"{option}: {shown(line)}: read back as the command {shown(read)}"
        return None

    @staticmethod
    def _crontab_n(owners: list[tuple[int, tuple]]) -> dict[int, str]:
        """One ``crontab -n`` for every line of the batch. crontab reports the line *before*
        an error in a schedule and the line itself for a command that is too long, so each
        line follows a marker comment and both numbers map back to it."""
        body = []
        for number, (_, line) in enumerate(owners):
            option, text = line[0], line[1]
            if option != "environment":
                _, _, schedule, _, command = line
                text = f"{schedule} {escape_percent(command)}"  # no user column in a crontab
            body += [f"# {number}", text]
        with tempfile.NamedTemporaryFile("w", prefix="system-recipes-cron-", suffix=".tab",
                                         encoding="utf-8") as stream:
            stream.write("\n".join(body) + "\n")
            stream.flush()
            result = validate.run_tool(dry_run_command(stream.name))
        output = (result.stdout + result.stderr).strip()
        if result.returncode == 0 and "successfully checked" in output:
            return {}
        for text in output.splitlines():
            match = CRONTAB_ERROR.match(text.strip())
            if match:
                number = max(int(match.group(1)) - 1, 0) // 2
                if number < len(owners):
                    index, line = owners[number]
                    option = line[0]
                    if option == "schedule" and "command" in match.group(2):
                        option = "command"  # schedule + command: the command is too long
                    return {index: f"{option}: {shown(line[1])}: crontab -n: {match.group(2)}"}
        summary = output.splitlines()[0] if output else f"exit status {result.returncode}"
        return {index: f"crontab -n refused the cron files of this run: {summary}"
                for index in {index for index, _ in owners}}


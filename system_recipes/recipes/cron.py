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

import posixpath
import unicodedata
from dataclasses import dataclass

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
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
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec
from system_recipes.daemons.cron import (
    CRON_FILE_NAME,
    MAX_COMMAND,
    MAX_ENVIRONMENT_LINE,
    CronContext,
    CronLine,
    escape_percent,
    schedule_problem,
)

ENTRY_SYNTAX = "a schedule of five fields or an @special, then the command"


class CronName(Name):
    expected = "a name of letters, digits, '_' and '-' (cron ignores other names in cron.d)"

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if not CRON_FILE_NAME.fullmatch(value):
            raise ValueError(
                f"{shown(value)} would be ignored by cron (no dots or other characters "
                "outside letters, digits, '_' and '-')"
            )
        return value


SCHEMA = Schema(
    [
        Option(
            "name",
            CronName(),
            default=section_name,
            help="the file name in the cron directory (letters, digits, '_' and '-' only)",
        ),
        Option(
            "entries",
            Lines(),
            default=None,
            help="one entry per line: a schedule (five fields, or @reboot, @hourly, @daily, "
            "@weekly, @monthly, @yearly) then the command; instead of schedule + command",
        ),
        Option(
            "schedule",
            Line(),
            default=None,
            help="the schedule of a single entry (five fields or an @special), with command",
        ),
        Option(
            "command",
            Line(),
            default=None,
            help="the command of a single entry, with schedule; % is a literal percent sign",
        ),
        Option(
            "user",
            Account(),
            default="root",
            help="the user every entry runs as; must exist or be created by a deployment part",
        ),
        Option(
            "environment",
            Assignments(),
            default=None,
            help="lines of KEY=value written before the entries (MAILTO, PATH, SHELL...)",
        ),
        Option("comment", Line(), default="", help="a comment line at the top of the file"),
        force_option(),
    ]
)


@dataclass(frozen=True)
class Entry:
    option: str  # where it was written: entries or schedule
    schedule: str  # as given, fields joined by single spaces
    command: str  # what cron hands to the shell

    def line(self, user: str) -> str:
        """The cron.d line: schedule, user column, command with ``%`` escaped for cron."""
        return f"{self.schedule} {user} {escape_percent(self.command)}"


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


COMMAND_LENGTH = (
    f"a command of at most {MAX_COMMAND} bytes, each % counted twice; put a longer one in a script"
)


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
        raise CommandError(
            f"{shown(command)}: a '\\' directly before '%' cannot reach the "
            "command through cron (put the command in a script)"
        )
    length = len(escape_percent(command).encode())
    if length > MAX_COMMAND:
        raise CommandError(
            f"{shown(command)} is {length} bytes, cron reads at most {MAX_COMMAND}", COMMAND_LENGTH
        )
    if not user:
        raise ValueError("User is required for system crontabs.")  # python-crontab's words
    problem = schedule_problem(schedule, command)  # python-crontab's, once per schedule
    if problem:
        raise ValueError(problem)
    return Entry(option, schedule, command)


class Recipe(BaseRecipe):
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
            raise ConfigError(
                self.name,
                "comment",
                f"contains the control character {unprintable(comment)}",
                "a single line of text",
            )
        lines = [entry.line(values.user) for entry in entries]
        content = self.render(
            "cron.j2",
            {
                "section": self.name,
                "comment": comment,
                "environment": environment,
                "entries": lines,
            },
        )
        expected = CronContext(
            tuple(
                [CronLine("environment", line) for line in environment]
                + [
                    CronLine(
                        entry.option,
                        line,
                        schedule=entry.schedule,
                        user=values.user,
                        command=entry.command,
                    )
                    for entry, line in zip(entries, lines, strict=True)
                ]
            )
        )
        spec.force = values.force
        spec.needs_accounts.append(("user", values.user, None))
        spec.files.append(
            FileSpec(
                path=posixpath.join(self.layout.cron_directory, name),
                content=content,
                mode=0o644,
                checks=[Check("cron", expected)],
            )
        )

    def _entries(self, values: Values) -> list[Entry]:
        single = values.schedule is not None or values.command is not None
        if values.entries is not None and single:
            option = "schedule" if values.schedule is not None else "command"
            raise ConfigError(
                self.name,
                option,
                "given together with entries",
                "either entries or schedule + command",
            )
        if single:
            for option in ("schedule", "command"):
                if not values.get(option):
                    raise ConfigError(
                        self.name,
                        option,
                        "missing (schedule and command go together)",
                        "both schedule and command",
                    )
            pairs = [("schedule", values.schedule, values.command)]
        elif values.entries:
            pairs = []
            for text in values.entries:
                try:
                    pairs.append(("entries", *split_entry(text)))
                except ValueError as error:
                    raise ConfigError(self.name, "entries", str(error), ENTRY_SYNTAX) from None
        else:
            raise ConfigError(self.name, "entries", "no entries", "entries, or schedule + command")
        result = []
        for option, schedule, command in pairs:
            try:
                result.append(make_entry(option, schedule, command, values.user))
            except CommandError as error:
                blamed = "command" if single else option
                raise ConfigError(
                    self.name,
                    blamed,
                    error.args[0],
                    error.args[1] if len(error.args) > 1 else ENTRY_SYNTAX,
                ) from None
            except ValueError as error:
                raise ConfigError(self.name, option, str(error), ENTRY_SYNTAX) from None
        return result

    def _environment(self, environment: dict[str, str]) -> list[str]:
        lines = []
        for key, value in environment.items():
            if unprintable(value):
                raise ConfigError(
                    self.name,
                    "environment",
                    f"{key}: contains the control character {unprintable(value)}",
                    "lines of KEY=value",
                )
            line = f"{key}={value}" if value else f'{key}=""'
            if len(line.encode()) > MAX_ENVIRONMENT_LINE:
                raise ConfigError(
                    self.name,
                    "environment",
                    f"{key}: the line is "
                    f"{len(line.encode())} bytes, cron reads at most "
                    f"{MAX_ENVIRONMENT_LINE}",
                    "a shorter value",
                )
            lines.append(line)
        return lines

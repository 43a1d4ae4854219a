"""cron: what Debian's cron takes in a file of ``/etc/cron.d``, and how such a file is judged.

The facts: cron.h's limits (:data:`MAX_ENVIRONMENT_LINE`, 999 bytes of an environment line;
:data:`MAX_COMMAND`, 998 bytes of a command as written, measured with ``crontab -n``), the names
run-parts accepts in the directory (:data:`CRON_FILE_NAME`: cron ignores any other file), the
escape that keeps a ``%`` of a command from becoming a newline (:func:`escape_percent`), and
python-crontab's reading of a schedule and of a file's entries (:func:`schedule_problem`,
:func:`read_entries`: cached by content, as schedules repeat, and imported only when a cron
file is read).

The validator ``cron`` judges each changed file twice. It reads the file back: its name, its
final newline (cron drops a last line without one), exactly the lines the recipe meant to write,
in order (:class:`CronContext`), and python-crontab's reading of their entries, users and
commands, because python-crontab silently drops a line it cannot parse. Then cron itself judges
the environment lines and schedules of every changed file of the run in one ``crontab -n`` (the
dry run of Debian's crontab; it reports the first error only): the lines go without their user
column, which a user crontab does not have, each after a marker comment, so that the line
crontab names maps back to the file and the option that wrote it. As root the dry run gets a
private, throw-away spool (:func:`dry_run_command`): it writes a temporary file into cron's
spool, which would wake the daemon, and a check (or ``plan``) changes nothing on the machine.
No reload is registered: cron notices the new modification time of ``/etc/cron.d`` and reads
it again at the next minute."""

from __future__ import annotations

import logging
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass

from system_recipes.core.declare.errors import shown
from system_recipes.core.hooks import validate

# cron.h: MAX_ENVSTR; cron reads at most 999 bytes of an environment line, dropping the rest
MAX_ENVIRONMENT_LINE = 999


# cron.h: MAX_COMMAND (1000) holds the command as written (``%`` escaped) with its newline and
# final NUL: Debian's cron refuses a longer command ("command too long": crontab -n says so and
# the daemon skips the entry); 998 bytes pass, 999 do not (measured with crontab -n)
MAX_COMMAND = 998


# -- the validator ------------------------------------------------------------------------------
#: python-crontab's readings, by content (a run reads every changed cron file, and every
#: schedule of every cron part, whose texts repeat: ``0 3 * * *``)
READINGS = validate.ContentCache()


def read_entries(text: str) -> list:
    """The entries python-crontab reads from a cron.d file; it drops (and logs) bad lines.
    Shared between callers with the same text: read, never change them."""
    return READINGS.get(lambda: _read_entries(text), "entries", text)


def _read_entries(text: str) -> list:
    from crontab import CronTab  # imported when a cron file is read: a no-op run reads none

    logger = logging.getLogger("crontab")
    disabled, logger.disabled = logger.disabled, True
    try:
        return [job for job in CronTab(tab=text, user=False) if job.is_valid() and job.is_enabled()]
    finally:
        logger.disabled = disabled


def schedule_problem(schedule: str, command: str) -> str | None:
    """Why python-crontab cannot build an entry of ``schedule`` (five fields or ``@special``),
    or None. Of the command only whether there is one matters (without, the entry is not
    valid), so entries of one schedule share the answer."""
    some = "true" if command else ""
    return READINGS.get(lambda: _schedule_problem(schedule, some), "schedule", schedule, some)


def _schedule_problem(schedule: str, command: str) -> str | None:
    from crontab import CronTab

    item = CronTab(user=False).new(command=command, user="root")
    try:
        item.setall(schedule)
    except (ValueError, KeyError) as error:
        return f"schedule {shown(schedule)}: {error.args[0] if error.args else error}"
    if not item.is_valid():
        return f"schedule {shown(schedule)} is not valid"
    return None


CRONTAB_ERROR = re.compile(r'^"[^"]*":(\d+): (.*)$')


SPOOL = "/var/spool/cron/crontabs"


def dry_run_command(path: str) -> list[str]:
    """``crontab -n PATH``. The dry run still writes (and removes) a temp file in cron's spool
    directory, which wakes the daemon: as root it runs in a private mount namespace with a
    throw-away spool, so checking (and ``plan``) changes nothing on the machine."""
    if os.geteuid() == 0 and os.path.isdir(SPOOL) and validate.which("unshare"):
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            'mount -t tmpfs -o mode=1730 system-recipes "$1" && exec crontab -n "$2"',
            "sh",
            SPOOL,
            path,
        ]
    return ["crontab", "-n", path]


@dataclass(frozen=True)
class CronLine:
    """One line a cron file must hold: an environment line (``option`` is ``environment``, the
    rest empty) or an entry, with the option that wrote it, its schedule, user and command."""

    option: str
    line: str
    schedule: str = ""
    user: str = ""
    command: str = ""

    @property
    def environment(self) -> bool:
        return self.option == "environment"


@dataclass(frozen=True)
class CronContext:
    """What the ``cron`` check knows besides the file: the lines it must hold, in order."""

    lines: tuple[CronLine, ...] = ()


@validate.register
class CronValidator(validate.Validator):
    """cron's own dry run (``crontab -n``) on every changed file at once, then python-crontab's
    reading of each file compared with what was written."""

    name = "cron"
    tools = ("crontab",)

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str]:
        errors: dict[int, str] = {}
        owners: list[tuple[int, CronLine]] = []  # one per entry of the temp crontab
        for index, item in enumerate(items):
            problem = self._read_back(item)
            if problem:
                errors[index] = problem
                continue
            owners += [(index, line) for line in item.given(CronContext).lines]
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
        written = [
            line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")
        ]
        lines = item.given(CronContext).lines
        if written != [line.line for line in lines]:
            return (
                "the template did not write the environment lines and entries exactly "
                "once, in order (cron.j2 must render every one of them)"
            )
        entries = [line for line in lines if not line.environment]
        parsed = read_entries(text)
        if len(parsed) != len(entries):
            for entry in entries:
                if len(read_entries(entry.line)) != 1:
                    hint = (
                        " (it reads a '#' in the command of an @special entry as a comment: "
                        "write the schedule as five fields)"
                        if entry.schedule.startswith("@") and "#" in entry.command
                        else ""
                    )
                    return (
                        f"{entry.option}: {shown(entry.line)}: python-crontab cannot read it "
                        f"back{hint}"
                    )
            return (
                f"python-crontab read {len(parsed)} of the {len(entries)} entries written "
                "(it drops lines it cannot parse)"
            )
        for job, entry in zip(parsed, entries, strict=True):
            if job.user != entry.user:
                return (
                    f"{entry.option}: {shown(entry.line)}: read back with user "
                    f"{shown(job.user)}, not {shown(entry.user)}"
                )
            # python-crontab splits ' # ...' off as a comment (and takes a comment line just
            # above an entry as its "pre-comment"): compare without blanks
            inline = job.comment if job.comment and not job.pre_comment else ""
            read = job.command + (f"#{inline}" if inline else "")
            if "".join(read.split()) != "".join(entry.command.split()):
                return (
                    f"{entry.option}: {shown(entry.line)}: read back as the command {shown(read)}"
                )
        return None

    @staticmethod
    def _crontab_n(owners: list[tuple[int, CronLine]]) -> dict[int, str]:
        """One ``crontab -n`` for every line of the batch. crontab reports the line *before*
        an error in a schedule and the line itself for a command that is too long, so each
        line follows a marker comment and both numbers map back to it."""
        body = []
        for number, (_, line) in enumerate(owners):
            text = line.line
            if not line.environment:  # no user column in a crontab
                text = f"{line.schedule} {escape_percent(line.command)}"
            body += [f"# {number}", text]
        with tempfile.NamedTemporaryFile(
            "w", prefix="system-recipes-cron-", suffix=".tab", encoding="utf-8"
        ) as stream:
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
                    option = line.option
                    if option == "schedule" and "command" in match.group(2):
                        option = "command"  # schedule + command: the command is too long
                    return {index: f"{option}: {shown(line.line)}: crontab -n: {match.group(2)}"}
        summary = output.splitlines()[0] if output else f"exit status {result.returncode}"
        return {
            index: f"crontab -n refused the cron files of this run: {summary}"
            for index in {index for index, _ in owners}
        }


# run-parts(8) --lsbsysinit is what Debian's cron applies to /etc/cron.d names
CRON_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def escape_percent(command: str) -> str:
    return command.replace("%", "\\%")

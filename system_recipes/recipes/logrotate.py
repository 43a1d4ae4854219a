"""``system_recipes:logrotate``: one logrotate block in the layout's ``logrotate.d``.

Writes ``/etc/logrotate.d/NAME`` (``name`` defaults to the section name; mode 0644, root:root)
with one block for the globs of ``paths``. Every option is written only when it is set, so
what is not set comes from the global settings of ``/etc/logrotate.conf``; a boolean set to
false writes logrotate's negation (``nocompress``, ``ifempty``, ...), which overrides a global
one. ``extra`` passes any other directive through (``compresscmd``, ``mail``, ``shred``,
``createolddir``, ``weekly 1`` ...), one per line, still checked by logrotate. Scripts
(``postrotate`` and friends) are written between their keyword and ``endscript`` and run by
``/bin/sh``; a script line starting with ``endscript`` would end the script early, so it is
refused.

Options logrotate would read and then ignore are refused: ``frequency`` with ``size`` (size
alone decides then), ``dateformat`` without ``dateext = true``, ``delaycompress`` without
``compress = true``, ``create`` with ``copytruncate = true`` (the log stays in place).

logrotate reads every file of its include directory except names ending in one of its taboo
extensions (``.bak``, ``.rpmsave``, ``.dpkg-old``, ``~`` ...): such a name is refused, since
the file would be silently ignored.

The file is checked with the real ``logrotate -d`` (one process for every changed file of a
run). logrotate exits 0 on unknown directives, so its output is judged: any ``error:`` line
while it reads the configuration fails the run, naming the section, the line and the option
that wrote it. What logrotate would check against the machine running the build rather than
the host being configured is checked here instead: the accounts of ``create``, ``su`` and
``createolddir`` must exist below the install root (or be created by a deployment part of the
same run), and the validated copy names ``root`` in their place; ``olddir`` is left out of
the validated copy, because logrotate only checks that it and the logs' directories exist
now, and the application may not have created them yet. Errors about the logs themselves
(a log that does not exist yet) are not configuration errors and are ignored.

Nothing is reloaded: logrotate is run by cron or a systemd timer and reads its configuration
afresh each time (``hourly`` needs logrotate itself run hourly: Debian runs it daily).

Example::

    [shop]
    recipe = system_recipes:deployment

    [shop-logs]
    recipe = system_recipes:logrotate
    paths =
        ${shop:log-directory}/*.log
        "${shop:log-directory}/access log.txt"
    frequency = daily
    rotate = 14
    compress = true
    delaycompress = true
    missingok = true
    notifempty = true
    create = 0640 ${shop:user} adm
    su = ${shop:user} ${shop:group}
    sharedscripts = true
    postrotate =
        pkill -HUP -u ${shop:user} -x shop-server || true
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.rules import refused_with, requires
from system_recipes.core.declare.schema import (
    Bool,
    Choice,
    Integer,
    Lines,
    Option,
    Schema,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec
from system_recipes.core.hooks import validate
from system_recipes.daemons.logrotate import LogrotateContext, quote
from system_recipes.recipes.logrotate_options import (
    AccountPair,
    Create,
    DateFormat,
    FileName,
    LogPath,
    OldDir,
    Ownership,
    Script,
    Size,
    parse_ownership,
)

SCRIPTS = ("firstaction", "prerotate", "postrotate", "lastaction", "preremove")
# boolean options: what true and what false write
SWITCHES = {
    "compress": "nocompress",
    "delaycompress": "nodelaycompress",
    "missingok": "nomissingok",
    "notifempty": "ifempty",
    "copytruncate": "nocopytruncate",
    "dateext": "nodateext",
    "sharedscripts": "nosharedscripts",
}
# in ``extra``: directives with an option of their own (checked there), and ones that would
# take the file out of what was validated
NOT_IN_EXTRA = {
    "su": "use the su option",
    "create": "use the create option",
    "olddir": "use the olddir option",
    "include": "include is not allowed",
    **{s: f"use the {s} option" for s in SCRIPTS},
}


def _bool_help(name: str) -> str:
    return (
        f"true writes `{name}`, false writes `{SWITCHES[name]}`; unset: the global "
        "setting of logrotate.conf"
    )


SCHEMA = Schema(
    [
        Option(
            "name",
            FileName(),
            default=section_name,
            help="the file name in the logrotate include directory",
        ),
        Option(
            "paths",
            Lines(LogPath()),
            required=True,
            help="the logs: absolute paths or globs, one per line (written in quotes when they "
            "hold spaces)",
        ),
        Option(
            "frequency",
            Choice("hourly", "daily", "weekly", "monthly", "yearly"),
            help="rotate this often (hourly needs logrotate itself run hourly)",
        ),
        Option(
            "rotate",
            Integer(minimum=-1, maximum=100000),
            help="rotated copies to keep (0: none, -1: never remove)",
        ),
        Option(
            "size", Size(), help="rotate when the log is larger than this, whatever the frequency"
        ),
        Option("minsize", Size(), help="rotate at the frequency, but only logs larger than this"),
        Option("maxsize", Size(), help="rotate logs larger than this even before the frequency"),
        Option(
            "maxage",
            Integer(minimum=0, maximum=100000),
            help="remove rotated logs older than this many days",
        ),
        *[
            Option(name, Bool(), help=_bool_help(name))
            for name in ("compress", "delaycompress", "missingok", "notifempty", "copytruncate")
        ],
        Option(
            "create",
            Create(),
            help="create the new log: MODE [OWNER [GROUP]]; the accounts must exist below the "
            "root (or be created by a deployment part); true: `create`, false: `nocreate`",
        ),
        Option(
            "su",
            AccountPair(),
            help="rotate as USER GROUP (needed when the log directory is writable by others "
            "than root); the accounts must exist below the root",
        ),
        Option(
            "olddir",
            OldDir(),
            help="move rotated logs to this directory (it must exist when "
            "logrotate runs, or add `createolddir` to extra)",
        ),
        Option("dateext", Bool(), help=_bool_help("dateext")),
        Option("dateformat", DateFormat(), help="suffix format with dateext, e.g. -%Y%m%d"),
        Option("sharedscripts", Bool(), help=_bool_help("sharedscripts")),
        *[
            Option(name, Script(), help=f"shell script written between `{name}` and `endscript`")
            for name in SCRIPTS
        ],
        Option(
            "extra",
            Lines(),
            help="other logrotate directives, one per line, written inside the block and "
            "checked by logrotate (not su, create, olddir, include or scripts: they have "
            "options)",
        ),
        force_option(),
    ],
    rules=[
        refused_with(
            "frequency",
            when="size",
            problem="has no effect with size (logrotate then rotates by size alone)",
            expected="size alone, or frequency with minsize or maxsize",
        ),
        requires(
            "dateformat",
            "dateext",
            problem="has no effect without dateext",
            expected="dateext = true with it",
        ),
        requires(
            "delaycompress",
            "compress",
            problem="has no effect without compress",
            expected="compress = true with it",
        ),
        refused_with(
            "create",
            when=("copytruncate", True),
            problem="has no effect with copytruncate = true (the log stays in place)",
            expected="create or copytruncate, not both",
        ),
    ],
)


@dataclass(frozen=True)
class Directive:
    option: str
    text: str  # as written
    checked: str  # as validated: no host-dependent accounts or directories

    @classmethod
    def same(cls, option: str, text: str) -> Directive:
        return cls(option, text, text)


class Recipe(BaseRecipe):
    """One logrotate block in the include directory."""

    schema = SCHEMA
    recipe_name = "logrotate"

    def build(self, spec: PartSpec, values: Values) -> None:
        if not values.paths:
            raise ConfigError(self.name, "paths", "no paths", LogPath.expected)
        if len(set(values.paths)) != len(values.paths):
            twice = next(p for p in values.paths if values.paths.count(p) > 1)
            raise ConfigError(self.name, "paths", f"{twice} is given twice", "each path once")
        directives = self.directives(spec, values)
        scripts = [(name, values[name]) for name in SCRIPTS if values[name]]
        content = self._render(values, directives, scripts, checked=False)
        checked = self._render(values, directives, scripts, checked=True)
        origins = self._origins(checked, values, directives, scripts)
        path = posixpath.join(self.layout.logrotate_directory, values.name)
        spec.force = values.force
        spec.files.append(
            FileSpec(
                path=path,
                content=content,
                mode=0o644,
                checks=[Check("logrotate", LogrotateContext(checked, origins))],
            )
        )

    def directives(self, spec: PartSpec, values: Values) -> list[Directive]:
        result: list[Directive] = []
        if values.frequency:
            result.append(Directive.same("frequency", values.frequency))
        for name in ("rotate", "size", "minsize", "maxsize", "maxage"):
            if values[name] is not None:
                result.append(Directive.same(name, f"{name} {values[name]}"))
        for name in ("missingok", "notifempty", "compress", "delaycompress", "copytruncate"):
            if values[name] is not None:
                result.append(Directive.same(name, name if values[name] else SWITCHES[name]))
        create = values.create
        if isinstance(create, bool):
            result.append(Directive.same("create", "create" if create else "nocreate"))
        elif create is not None:
            self._needs(spec, "create", create)
            result.append(
                Directive(
                    "create",
                    " ".join(["create", *create.words()]),
                    " ".join(["create", *create.words(substitute=True)]),
                )
            )
        if values.su:
            user, group = values.su
            spec.needs_accounts.append(("su", user, group))
            result.append(Directive("su", f"su {user} {group}", "su root root"))
        if values.olddir:
            # logrotate -d only checks that olddir and the logs' directories exist *now*
            result.append(
                Directive(
                    "olddir", f"olddir {values.olddir}", "# olddir: checked when logrotate runs"
                )
            )
        if values.dateext is not None:
            result.append(Directive.same("dateext", "dateext" if values.dateext else "nodateext"))
        if values.dateformat:
            result.append(Directive.same("dateformat", f"dateformat {values.dateformat}"))
        if values.sharedscripts is not None:
            result.append(
                Directive.same(
                    "sharedscripts", "sharedscripts" if values.sharedscripts else "nosharedscripts"
                )
            )
        for line in values.extra or ():
            result.append(self._extra(spec, line))
        return result

    def _extra(self, spec: PartSpec, line: str) -> Directive:
        if "{" in line or "}" in line:
            raise ConfigError(
                self.name,
                "extra",
                f"{shown(line)} holds a brace, which would open or close a block",
                "directives of this block only",
            )
        keyword, *words = line.split()
        if keyword.startswith("endscript"):
            raise ConfigError(
                self.name, "extra", f"{shown(line)} ends a script", "directives of this block only"
            )
        if keyword in NOT_IN_EXTRA:
            raise ConfigError(
                self.name,
                "extra",
                f"{keyword}: {NOT_IN_EXTRA[keyword]}",
                "other logrotate directives",
            )
        if keyword == "createolddir" and words:
            try:
                ownership = parse_ownership(words)
            except ValueError as error:
                raise ConfigError(
                    self.name,
                    "extra",
                    f"createolddir: {error}",
                    "createolddir MODE [OWNER [GROUP]]",
                ) from None
            self._needs(spec, "extra", ownership)
            return Directive(
                "extra", line, " ".join(["createolddir", *ownership.words(substitute=True)])
            )
        return Directive.same("extra", line)

    @staticmethod
    def _needs(spec: PartSpec, option: str, ownership: Ownership) -> None:
        if ownership.owner:
            # checked below the root, and against the accounts this run creates
            spec.needs_accounts.append((option, ownership.owner, ownership.group))

    def _render(
        self, values: Values, directives: list[Directive], scripts: list, *, checked: bool
    ) -> bytes:
        return self.render(
            "logrotate.j2",
            {
                "section": self.name,
                # one line: logrotate miscounts the lines of a list of paths over several lines
                "paths": [quote(p) for p in values.paths],
                "directives": [d.checked if checked else d.text for d in directives],
                "scripts": [
                    (name, [("        " + line) if line else "" for line in lines])
                    for name, lines in scripts
                ],
            },
        )

    @staticmethod
    def _origins(
        content: bytes, values: Values, directives: list[Directive], scripts: list
    ) -> tuple:
        """The option that wrote each line of the (validated) file."""
        claims = [("paths", " ".join(quote(p) for p in values.paths) + " {")]
        claims += [(d.option, d.checked) for d in directives]
        for name, lines in scripts:
            claims += [(name, name), *[(name, line) for line in lines], (name, "endscript")]
        return validate.trace(content, claims)

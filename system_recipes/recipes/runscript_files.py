"""The files ``system_recipes:runscript`` writes for each kind, from values its recipe has
already checked (the command split and found, the stop signal, no control character): the
systemd unit with the link that enables it, and the options that wrote each of its lines
(:func:`unit_claims`: a complaint of systemd-analyze names the option), or the LSB init script
with its rc links.

Separate from :mod:`.runscript` (the recipe's documentation, options and the checks shared by
both kinds) because each kind is its own output format with its own refusals.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import Values
from system_recipes.core.declare.specs import Check, FileSpec, LinkSpec, PartSpec, Reload
from system_recipes.core.hooks import validate
from system_recipes.daemons.programs import ProgramContext
from system_recipes.daemons.systemd import (
    SystemdUnitContext,
    specifiers,
    systemd_assignment,
    systemd_word,
)
from system_recipes.daemons.sysv import FACILITIES, pidfile

START_LEVELS, STOP_LEVELS = ("2", "3", "4", "5"), ("0", "1", "6")


# -- systemd ---------------------------------------------------------------------------------
def systemd_unit(
    recipe: BaseRecipe, spec: PartSpec, values: Values, argv: list[str], signal_name: str
) -> None:
    """``kind = systemd``: the unit and the link that enables it."""
    for line in values.extra:
        key, sep, _ = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()):
            raise ConfigError(
                recipe.name,
                "extra",
                f"{shown(line)} is not a Key=value setting",
                "Key=value lines of the [Service] section",
            )
    directory = recipe.layout.systemd_directory
    unit = f"{values.name}.service"
    path = posixpath.join(directory, unit)
    context = {
        "section": recipe.name,
        "description": specifiers(values.description),
        "after": " ".join(values.after),
        "wants": " ".join(values.wants),
        "type": values.type,
        "exec_start": " ".join(systemd_word(w) for w in argv),
        "user": values.user if values.user != "root" else None,
        "group": values.group,
        "working_directory": specifiers(values.working_directory or ""),
        "environment": [systemd_assignment(k, v) for k, v in values.environment.items()],
        "restart": values.restart,
        "kill_signal": "SIG" + signal_name,
        "extra": values.extra,
    }
    content = recipe.render("runscript-systemd.service.j2", context)
    service = Reload("systemd", unit)
    origins = validate.trace(content, unit_claims(context))
    spec.files.append(
        FileSpec(
            path=path,
            content=content,
            mode=0o644,
            # the program first: its absence is the one error line
            checks=[
                Check("program", ProgramContext(argv[0], "command")),
                Check("systemd-unit", SystemdUnitContext(origins)),
            ],
            reloads=[service],
        )
    )
    if values.enable:
        spec.links.append(
            LinkSpec(posixpath.join(directory, "multi-user.target.wants", unit), path)
        )
    spec.removal_reloads.append(service)


# -- sysv ------------------------------------------------------------------------------------
def sysv_script(
    recipe: BaseRecipe, spec: PartSpec, values: Values, argv: list[str], signal_name: str
) -> None:
    """``kind = sysv``: the LSB init script and its rc links; refuses what a script cannot say."""
    for option, wrong in (
        ("type", values.type not in ("simple", "exec")),
        ("extra", bool(values.extra)),
    ):
        if wrong:
            raise ConfigError(
                recipe.name,
                option,
                "is systemd-only, but kind is sysv",
                "kind = systemd, or no "
                + option
                + (" other than simple or exec" if option == "type" else ""),
            )
    if "restart" in recipe.options and values.restart != "no":
        # an init script starts the command once: nothing would ever restart it
        raise ConfigError(
            recipe.name,
            "restart",
            f"restart = {values.restart} has no effect "
            "with kind = sysv: an init script never restarts the service",
            "kind = systemd, restart = no, or supervisor for a service that must be restarted",
        )
    program = argv[0]
    if values.environment:
        argv = ["/usr/bin/env", *(f"{k}={v}" for k, v in values.environment.items()), *argv]
    dependencies = []
    for option in ("after", "wants"):
        for unit in values[option]:
            base, _, suffix = unit.rpartition(".")
            item = FACILITIES.get(unit, base if suffix == "service" else None)
            if item is None:  # an init script has nothing to say it with
                raise ConfigError(
                    recipe.name,
                    option,
                    f"{unit} has no effect with kind = "
                    "sysv (LSB headers name only services and facilities)",
                    "services (NAME.service) or " + ", ".join(FACILITIES),
                )
            if item not in dependencies:
                dependencies.append(item)
    script = posixpath.join(recipe.layout.init_directory, values.name)
    content = recipe.render(
        "runscript-sysv.sh.j2",
        {
            "section": recipe.name,
            "name": values.name,
            "description": values.description,
            "should_start": " ".join(dependencies),
            "q": shlex.quote,
            "pidfile": pidfile(values.name),
            "user": values.user,
            "group": values.group or "",
            "working_directory": values.working_directory or "/",
            "stop_signal": signal_name,
            "argv": shlex.join(argv),
        },
    )
    spec.files.append(
        FileSpec(
            path=script,
            content=content,
            mode=0o755,
            checks=[
                Check("program", ProgramContext(program, "command")),
                Check("init-script-sh"),
            ],
            reloads=[Reload("sysv", values.name)],
        )
    )
    if values.enable:
        rc = recipe.layout.rc_directory
        for levels, letter in ((START_LEVELS, "S"), (STOP_LEVELS, "K")):
            for level in levels:
                directory = posixpath.join(rc, f"rc{level}.d")
                spec.links.append(
                    LinkSpec(
                        posixpath.join(directory, f"{letter}20{values.name}"),
                        posixpath.relpath(script, directory),
                    )
                )
    spec.removal_reloads.append(Reload("sysv", values.name))


def unit_claims(context: dict) -> list[tuple[str, str]]:
    """The unit's lines and the options that wrote them, in the template's order."""
    claims = [("description", f"Description={context['description']}")]
    for option, key, value in (
        ("after", "After", context["after"]),
        ("wants", "Wants", context["wants"]),
        ("type", "Type", context["type"]),
        ("command", "ExecStart", context["exec_start"]),
        ("user", "User", context["user"]),
        ("group", "Group", context["group"]),
        ("working-directory", "WorkingDirectory", context["working_directory"]),
    ):
        if value:
            claims.append((option, f"{key}={value}"))
    claims += [("environment", f"Environment={a}") for a in context["environment"]]
    claims += [
        ("restart", f"Restart={context['restart']}"),
        ("stop-signal", f"KillSignal={context['kill_signal']}"),
    ]
    return claims + [("extra", line) for line in context["extra"]]

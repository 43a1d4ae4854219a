"""``system_recipes:deployment``: one application's accounts and standard directories.

Creates the user and group as system accounts when they are missing (never removes them),
and ``/etc/NAME``, ``/var/log/NAME``, ``/var/lib/NAME``, ``/run/NAME`` with owners and modes.
Other sections reference the results: ``${app:log-directory}``, ``${app:user}``. On
uninstall the directories are removed only when empty.

Example::

    [app]
    recipe = system_recipes:deployment
    user = shop
"""

from __future__ import annotations

from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Account,
    Bool,
    Mode,
    Name,
    Option,
    Schema,
    Values,
    section_name,
)
from system_recipes.core.declare.specs import AccountSpec, DirSpec, PartSpec


def derived(pattern: str):
    def default(values: Values) -> str:
        return pattern.format(
            name=values["name"], user=values.get("user"), lib=values.get("lib-directory")
        )

    default.__doc__ = (
        pattern.replace("{name}", "NAME")
        .replace("{user}", "USER")
        .replace("{lib}", "the lib-directory")
    )
    return default


SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the application's name: it names the directories",
        ),
        Option(
            "user",
            Account(),
            default=derived("{name}"),
            help="the account the application runs as; created as a system user when missing",
        ),
        Option(
            "group",
            Account(),
            default=derived("{user}"),
            help="the application's group; created as a system group when missing",
        ),
        Option(
            "create-accounts",
            Bool(),
            default=True,
            help="create missing user and group (false: they must exist)",
        ),
        Option(
            "etc-directory",
            AbsolutePath(),
            default=derived("/etc/{name}"),
            help="configuration directory, owned by root and the group",
        ),
        Option(
            "log-directory",
            AbsolutePath(),
            default=derived("/var/log/{name}"),
            help="log directory, owned by the user",
        ),
        Option(
            "lib-directory",
            AbsolutePath(),
            default=derived("/var/lib/{name}"),
            help="state directory, owned by the user",
        ),
        Option(
            "run-directory",
            AbsolutePath(),
            default=derived("/run/{name}"),
            help="runtime directory (pid files, sockets), owned by the user",
        ),
        Option("home", AbsolutePath(), default=derived("{lib}"), help="the user's home directory"),
        Option("shell", AbsolutePath(), default="/usr/sbin/nologin", help="the user's shell"),
        Option("etc-mode", Mode(), default=0o750, help="mode of etc-directory"),
        Option("log-mode", Mode(), default=0o750, help="mode of log-directory"),
        Option("lib-mode", Mode(), default=0o750, help="mode of lib-directory"),
        Option("run-mode", Mode(), default=0o755, help="mode of run-directory"),
    ]
)


class Recipe(BaseRecipe):
    """One application's accounts and directories."""

    schema = SCHEMA
    recipe_name = "deployment"
    exposed = (
        "name",
        "user",
        "group",
        "etc-directory",
        "log-directory",
        "lib-directory",
        "run-directory",
    )

    def build(self, spec: PartSpec, values: Values) -> None:
        if values.create_accounts:
            spec.accounts.append(AccountSpec(values.user, values.group, values.home, values.shell))
        user, group = values.user, values.group
        spec.directories += [
            DirSpec(values.etc_directory, "root", group, values.etc_mode),
            DirSpec(values.log_directory, user, group, values.log_mode),
            DirSpec(values.lib_directory, user, group, values.lib_mode),
            DirSpec(values.run_directory, user, group, values.run_mode),
        ]

"""The ``[system-recipes]`` section: settings every recipe reads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.layout import LAYOUTS, Layout, detect_layout
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Choice,
    Directory,
    Integer,
    Line,
    Lines,
    Option,
    Schema,
)

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes a Buildout for what it is
    from zc.buildout.buildout import Buildout

SECTION = "system-recipes"

SCHEMA = Schema(
    [
        Option(
            "root",
            Directory(),
            default="/",
            help="install root: every path is written below it, so a profile can be rendered "
            "into a scratch tree",
        ),
        Option(
            "layout",
            Choice("auto", "debian", "redhat"),
            default="auto",
            help="where standard files go; auto reads etc/os-release below the root",
        ),
        Option(
            "state-directory",
            AbsolutePath(),
            default="/var/lib/system-recipes",
            help="manifest, journal, lock and backups (below the root)",
        ),
        Option(
            "validate",
            Choice("required", "warn", "off"),
            default="required",
            help="a validator that is not installed is an error (required), a warning (warn), "
            "or validation is skipped (off)",
        ),
        Option(
            "reload",
            Choice("on", "off"),
            default="on",
            help="reload the daemons whose configuration changed, once, at the end of a run",
        ),
        Option(
            "templates",
            Lines(),
            default=["templates"],
            help="the profile's own template directories, one per line, searched in order before "
            "the packaged templates; relative ones are relative to the buildout directory",
        ),
        Option(
            "instance",
            Line(pattern=r"[A-Za-z0-9_.-]+", expected="a name"),
            default="host",
            help="names this buildout's share of the state directory, so several host "
            "configurations (one per application) can manage one machine side by side",
        ),
        Option(
            "fast-path",
            Choice("on", "off"),
            default="on",
            help="on: a run that finds nothing changed since the last clean run (the "
            "configuration, the code, the templates, every managed path, ...) says so without "
            "building its parts; off: every run builds, renders and checks every part",
        ),
        Option(
            "lock-timeout",
            Integer(minimum=0),
            default=300,
            help="seconds to wait for another run holding the lock before giving up",
        ),
    ]
)


@dataclass(frozen=True)
class Settings:
    root: str
    layout: Layout
    state_directory: str  # as seen on the host
    validate: str
    reload: str
    templates: tuple[str, ...]
    lock_timeout: int
    instance: str
    buildout_directory: str
    fast_path: str = "on"

    def target(self, host_path: str) -> str:
        """The real path of a host path below the install root."""
        return os.path.join(self.root, host_path.lstrip("/")) if self.root != "/" else host_path

    @property
    def state_path(self) -> str:
        return self.target(self.state_directory)

    @property
    def live(self) -> bool:
        """True when writing the machine's own root: only then are daemons reloaded."""
        return self.root == "/"


def settings_from_buildout(buildout: Buildout) -> Settings:
    raw = dict(buildout[SECTION]) if SECTION in buildout else {}
    directory = buildout["buildout"]["directory"]
    values = SCHEMA.parse(SECTION, raw)
    root = values.root
    if not os.path.isdir(root):
        raise ConfigError(SECTION, "root", f"{root} is not a directory", "an existing directory")
    layout_name = values.layout
    if layout_name == "auto":
        layout_name = detect_layout(root) or "debian"
    templates = tuple(os.path.normpath(os.path.join(directory, t)) for t in values.templates)
    return Settings(
        root=root,
        layout=LAYOUTS[layout_name],
        state_directory=values.state_directory,
        validate=values.validate,
        reload=values.reload,
        templates=templates,
        lock_timeout=values.lock_timeout,
        instance=values.instance,
        buildout_directory=directory,
        fast_path=values.fast_path,
    )

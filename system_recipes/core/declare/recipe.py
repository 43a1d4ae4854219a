"""The glue between buildout and the core: every recipe is a subclass of :class:`Recipe`.

A subclass declares ``schema`` and implements :meth:`Recipe.build`, which fills a
:class:`PartSpec` from typed values. Everything else -- checking options, staging, the
manifest, validation, reloads -- is done once, here and in :mod:`run`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import zc.buildout

from system_recipes.core.buildout import api as buildout_api
from system_recipes.core.declare import render
from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.schema import Schema, Values, unescape
from system_recipes.core.declare.specs import GENERATED_FROM, PartSpec
from system_recipes.core.plan import run

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes these for what they are
    from zc.buildout.buildout import Buildout, Options


def blamed(buildout: Buildout, error: ConfigError) -> ConfigError:
    """An error in a generated section names the section and option the user wrote (``[shop]
    check``, not ``[shop-nrpe] checks``); the generated place stays in the message. Every
    problem the error carries (``plan --all``) is blamed the same way."""
    first = _blamed_one(buildout, error)
    first.problems = [
        _blamed_one(buildout, p) if p is not error else first
        for p in getattr(error, "problems", [error])
    ]
    return first


def _blamed_one(buildout: Buildout, error: ConfigError) -> ConfigError:
    table = getattr(buildout, GENERATED_FROM, {})
    origin = table.get((error.section, error.option)) or (
        table.get((error.section, None)) if error.option is None else None
    )
    if origin is None:
        return error
    meta, option = origin
    where = f"[{error.section}] {error.option}" if error.option else f"[{error.section}]"
    blamed = ConfigError(
        meta, option, f"{error.problem} (in the generated {where})", error.expected
    )
    blamed.generated = (error.section, error.option)
    return blamed


class Recipe:
    schema: Schema = Schema([])
    recipe_name = ""
    #: options written back for other sections to reference (``${app:log-directory}``)
    exposed: tuple[str, ...] = ()

    def __init__(self, buildout: Buildout, name: str, options: Options) -> None:
        self.buildout, self.name, self.options = buildout, name, options
        active = run.current(buildout)
        if active is None:
            raise zc.buildout.UserError(
                f"[{name}] recipe system_recipes:{self.recipe_name} needs the system-recipes "
                "extension: add 'extensions = system-recipes' to [buildout] "
                "(profiles/base.cfg does)"
            )
        self.run = active
        self.settings = active.settings
        self.layout = self.settings.layout
        try:
            self.values: Values = self.schema.parse(name, options, ignore=set(self.exposed))
            for key in self.exposed:
                value = self.values.get(key)
                options[key] = _option_text(value)
            self.spec = PartSpec(name=name, recipe=self.recipe_name)
            self.build(self.spec, self.values)
        except ConfigError as error:
            raise blamed(buildout, error) from None
        active.declare(self.spec)

    def build(self, spec: PartSpec, values: Values) -> None:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------
    def render(
        self, template: str, context: dict, option: str = "template", inline: bool = False
    ) -> bytes:
        template, search = self.locate(template, option, inline)
        try:
            text = render.render(template, context, search, inline=inline)
        except render.RenderError as error:
            raise ConfigError(self.name, *error.blame(option)) from None
        return text.encode("utf-8")

    def locate(
        self, template: str, option: str = "template", inline: bool = False
    ) -> tuple[str, tuple[str, ...]]:
        """The name to ask jinja2 for, and where it searches (a path is its own directory)."""
        search = self.search_path(option)
        if not inline and ("/" in template):
            base = self.profile_directory(option) or self.settings.buildout_directory
            full = os.path.join(base, template)
            search = (os.path.dirname(full),) + search
            template = os.path.basename(full)
        return template, search

    def profile_directory(self, option: str) -> str | None:
        """The directory of the configuration file that set ``option`` (buildout 6 has no
        ``_profile_base_location_``): a role finds the templates that ship beside it."""
        source = buildout_api.source_of(self.buildout, self.name, option)
        if not source or not os.path.isfile(source):
            return None
        return os.path.dirname(os.path.abspath(source))

    def search_path(self, option: str = "template") -> tuple[str, ...]:
        """templates/ beside (and above) the file that set ``option``, the profile's template
        directories, then the packaged templates."""
        near: tuple[str, ...] = ()
        directory = self.profile_directory(option)
        if directory:
            near = (
                os.path.join(directory, "templates"),
                os.path.join(os.path.dirname(directory), "templates"),
            )
        return near + tuple(self.settings.templates) + (render.packaged_templates(),)

    def earlier_files(self, path: str) -> tuple[str, ...]:
        """This part's files from earlier runs other than ``path`` (its ``name`` changed): this
        run removes them, so a validator must not count them as another file's."""
        return tuple(sorted(p for p in self.run.manifest().files(self.name) if p != path))

    def sections(self) -> SectionsView:
        return SectionsView(self.buildout)

    # -- buildout's interface --------------------------------------------------------------
    def install(self) -> tuple[str, ...]:
        self.run.stage(self.name)
        return ()  # system-recipes keeps its own books; buildout must not delete anything

    update = install


def uninstall(name: str, options: Options) -> None:
    """``zc.buildout.uninstall`` entry point: stage the removal of a dropped part's files."""
    active = run.current()
    if active is None:
        raise zc.buildout.UserError(
            f"[{name}] cannot uninstall without the system-recipes extension"
        )
    active.stage_removal(name)


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


class SectionsView:
    """``{{ sections.app.port }}``: other sections' options in templates (``$$`` -> ``$``)."""

    def __init__(self, buildout: Buildout) -> None:
        self._buildout = buildout

    def __getitem__(self, name: str) -> dict:
        try:
            section = self._buildout[name]
        except KeyError:
            raise KeyError(name) from None
        values = {}
        for key in list(section.keys()):
            if key.startswith("_"):
                continue
            values[key] = unescape(section[key])
            values.setdefault(key.replace("-", "_"), values[key])
        return values

    def __getattr__(self, name: str) -> dict:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            try:
                return self[name.replace("_", "-")]
            except KeyError:
                raise AttributeError(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._buildout

"""``system_recipes:template``: any text file from a jinja2 template or inline text.

Template variables: this section's options (``log-directory`` is also ``log_directory``),
``sections`` for other sections (``{{ sections.app.port }}``) and ``settings`` (``root``,
``layout``). Undefined variables are errors, and so is an option the template never uses: a
misspelled ``secrte = true`` would otherwise become a template variable and leave the file
un-secret (``[app-config] secrte: not used by the template (did you mean 'secret'?)``).
``secret = true`` makes the file 0600 by default and keeps its content out of every log and
diff (and ``system-recipes explain`` masks its template variables). A variable named like a
secret (``password``, ``db-pass``, ``api-token``, ``client-secret``, ``private-key``...) on a
part without it is refused, as the system model refuses such a setting, unless its value is a
reference ``file:/PATH`` (where the secret is) or empty: ``[app-config] password: looks like a
secret (expected secret = true on the part, or a reference file:/PATH)``.

Example::

    [app-config]
    recipe = system_recipes:template
    path = ${app:etc-directory}/app.ini
    template = app.ini.j2
    owner = root
    group = ${app:group}
    mode = 0640
    port = 8080
"""

from __future__ import annotations

from system_recipes.core.declare import render
from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.rules import ExactlyOneOf
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Account,
    Bool,
    Line,
    Mode,
    Option,
    Schema,
    Text,
    Values,
    did_you_mean,
    force_option,
)
from system_recipes.core.declare.secret_names import is_reference, looks_secret
from system_recipes.core.declare.specs import FileSpec, PartSpec, Reload
from system_recipes.core.hooks import reload


def _group_default(values: Values) -> str:
    """the owner"""
    return values["owner"]


def _mode_default(values: Values) -> int:
    """0600 when secret, else 0644"""
    return 0o600 if values["secret"] else 0o644


SCHEMA = Schema(
    [
        Option("path", AbsolutePath(), required=True, help="the file to write (below the root)"),
        Option(
            "template",
            Line(),
            default="",
            help="a jinja2 template: a name found in the template directories, or a path "
            "relative to the buildout directory",
        ),
        Option(
            "text", Text(), default="", help="inline jinja2 template text (instead of template)"
        ),
        Option("owner", Account(), default="root", help="the file's owner"),
        Option("group", Account(), default=_group_default, help="the file's group"),
        Option(
            "secret",
            Bool(),
            default=False,
            help="never show the content (logs, diffs, plan); mode 0600 unless set",
        ),
        Option("mode", Mode(), default=_mode_default, help="the file's mode"),
        force_option(),
        reload.restart_option(),
        Option(
            "on-change",
            Line(),
            default="",
            help="a shell command run once, after the commit, when the file changed",
        ),
    ],
    extra=True,
    extra_help="Any other option is a template variable.",
    rules=[ExactlyOneOf(("template", "text"))],
)


class Recipe(BaseRecipe):
    """A text file from a template."""

    schema = SCHEMA
    recipe_name = "template"

    def build(self, spec: PartSpec, values: Values) -> None:
        if values.text:
            self.check_variables_used(values, values.text, "text", inline=True)
        else:
            self.check_variables_used(values, values.template, "template")
        self.check_no_secret_in_clear(values)
        context = {key: value for key, value in values.items()}
        context.update({key.replace("-", "_"): value for key, value in values.items()})
        context.update(
            sections=self.sections(), settings=self.settings, layout=self.settings.layout
        )
        if values.text:
            # buildout strips a value's last newline; a text file wants one
            text = values.text if values.text.endswith("\n") else values.text + "\n"
            content = self.render(text, context, option="text", inline=True)
        else:
            content = self.render(values.template, context)
        spec.force = values.force
        spec.files.append(
            FileSpec(
                path=values.path,
                content=content,
                owner=values.owner,
                group=values.group,
                mode=values.mode,
                secret=values.secret,
                reloads=([Reload("command", values.on_change)] if values.on_change else [])
                + values.restart,
            )
        )

    def check_no_secret_in_clear(self, values: Values) -> None:
        """A variable named like a secret (``password``, ``api-token``: the rule the system
        model applies to its settings) on a part that is not ``secret = true`` would show in
        clear in every diff: refused unless its value says where the secret is
        (``file:/PATH``) or is empty. Checked after the unused options, so that a misspelled
        ``secrte = true`` is named as such."""
        if values.secret:
            return
        for key in values:
            if key in SCHEMA.options or not looks_secret(key):
                continue
            value = values[key]
            if isinstance(value, str) and (not value.strip() or is_reference(value)):
                continue
            raise ConfigError(
                self.name,
                key,
                "looks like a secret",
                "secret = true on the part, or a reference file:/PATH",
            )

    def check_variables_used(
        self, values: Values, template: str, option: str, inline: bool = False
    ) -> None:
        """Every option that is not the recipe's own is a template variable: one the template
        never reads is a mistake (most often a misspelled recipe option)."""
        extras = sorted(key for key in values if key not in SCHEMA.options)
        if not extras:
            return
        name, search = self.locate(template, option, inline)
        try:
            names = render.names_used(name, search, inline=inline)
        except render.RenderError as error:
            raise ConfigError(self.name, *error.blame(option)) from None
        own = [
            reads
            for section, reads in names.section_options.items()
            if section in (self.name, "*") or section.replace("_", "-") == self.name
        ]
        if not names.complete or any(reads is None for reads in own):
            return  # an include by a computed name, or this section read whole: cannot tell
        used = set(names.variables).union(*(reads for reads in own if reads is not None))
        for key in extras:
            if key in used or key.replace("-", "_") in used:
                continue
            variables = sorted(
                v for v in names.variables if v not in ("sections", "settings", "layout")
            )
            guess = did_you_mean(key, list(SCHEMA.options) + variables)
            if guess:
                raise ConfigError(
                    self.name, key, f"not used by the template (did you mean {guess!r}?)"
                )
            shown = "inline text" if inline else name
            raise ConfigError(
                self.name,
                key,
                "not used by the template",
                f"an option of the recipe or a variable {shown} uses"
                + (f": {', '.join(variables)[:100]}" if variables else ""),
            )

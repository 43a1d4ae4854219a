"""jinja2 rendering: undefined variables are errors, the final newline is kept.

Templates are looked up in the profile's own ``templates/`` directory first, then in the
packaged templates (the top-level ``templates/`` of the source tree, installed as
``system_recipes.templates``).
"""

from __future__ import annotations

import functools
import os

import jinja2


def packaged_templates() -> str:
    """``system_recipes/templates`` in an installed copy, ``templates/`` in a checkout."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = os.path.join(package, "templates")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(package), "templates")


@functools.lru_cache(maxsize=16)
def environment(search_path: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([p for p in search_path if os.path.isdir(p)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class RenderError(Exception):
    pass


def render(name_or_text: str, context: dict, search_path: tuple[str, ...], inline: bool = False) -> str:
    """Render a template by name (searched in ``search_path``) or an inline text."""
    env = environment(search_path)
    try:
        template = env.from_string(name_or_text) if inline else env.get_template(name_or_text)
        return template.render(**context)
    except jinja2.TemplateNotFound as error:
        where = ", ".join(p for p in search_path if os.path.isdir(p))
        raise RenderError(f"template {error.name!r} not found in {where}") from None
    except jinja2.UndefinedError as error:
        raise RenderError(f"{error.message} {_where(error)}".strip()) from None
    except jinja2.TemplateSyntaxError as error:
        raise RenderError(f"template syntax error: {error.message} "
                          f"({error.name or 'inline'} line {error.lineno})") from None


def _where(error: Exception) -> str:
    tb = error.__traceback__
    lineno = None
    name = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith((".j2", ".jinja", ".tmpl")) or \
                tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
            name = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    if lineno is None:
        return ""
    return f"({os.path.basename(name) if name != '<template>' else 'inline'} line {lineno})"

"""jinja2 rendering: undefined variables are errors, the final newline is kept.

Templates are looked up in the profile's own ``templates/`` directory first, then in the
packaged templates (the top-level ``templates/`` of the source tree, installed as
``system_recipes.templates``).

Every failure -- a missing template, a syntax error, an undefined name, or any exception the
template raises while it renders (``range('4')``, a filter given the wrong type, ``1 / 0``) --
is a :class:`RenderError` of one line naming the template file and line.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import jinja2
import jinja2.meta
import jinja2.nodes

import system_recipes
from system_recipes.core.fastpath import record as fastpath

#: an exception message echoed in an error is cut to this many characters
MESSAGE_LIMIT = 200


def packaged_templates() -> str:
    """``system_recipes/templates`` in an installed copy, ``templates/`` in a checkout."""
    package = os.path.dirname(os.path.abspath(system_recipes.__file__))
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
    def blame(self, option: str) -> tuple[str, str]:
        """What an error line names (the option that gave the template) and its problem."""
        return option, str(self)


class TemplateSyntaxError(RenderError):
    """A template that does not parse: jinja2's message, the file and the line."""

    def __init__(self, message: str, template: str, line: int):
        self.message, self.template, self.line = message, template, line
        super().__init__(f"template syntax error: {message} ({template} line {line})")

    def blame(self, option: str) -> tuple[str, str]:
        """``template demo.ini.j2 line 3`` / ``text line 2``, then jinja2's message."""
        where = "" if self.template == "inline" else f" {self.template}"
        return f"{option}{where} line {self.line}", self.message


def _syntax_error(error: jinja2.TemplateSyntaxError) -> TemplateSyntaxError:
    return TemplateSyntaxError(_message(error), _name(error.name or error.filename), error.lineno)


def render(
    name_or_text: str, context: dict, search_path: tuple[str, ...], inline: bool = False
) -> str:
    """Render a template by name (searched in ``search_path``) or an inline text."""
    if not inline:
        # a template added to a directory searched first shadows the one found: the fast path
        # watches the directories (jinja's loader looks with stat, which no audit hook sees)
        for directory in search_path:
            fastpath.note_path(directory)
    env = environment(search_path)
    try:
        template = env.from_string(name_or_text) if inline else env.get_template(name_or_text)
        return template.render(**context)
    except jinja2.TemplateNotFound as error:
        raise _not_found(error, search_path) from None
    except UnicodeDecodeError as error:
        raise _undecodable(name_or_text, error) from None
    except jinja2.UndefinedError as error:
        raise RenderError(f"{_message(error)} {_where(error)}".strip()) from None
    except jinja2.TemplateSyntaxError as error:
        raise _syntax_error(error) from None
    except Exception as error:  # noqa: BLE001 -- whatever a template raises is the template's
        raise RenderError(
            f"{type(error).__name__}: {_message(error)} {_where(error)}".strip()
        ) from None


def _not_found(error: jinja2.TemplateNotFound, search_path: tuple[str, ...]) -> RenderError:
    where = ", ".join(dict.fromkeys(p for p in search_path if os.path.isdir(p)))
    return RenderError(f"template {error.name!r} not found in {where}")


def _undecodable(name: str, error: UnicodeDecodeError) -> RenderError:
    """jinja2 decodes a template file whole, so the error's offset is the file's."""
    line = error.object[: error.start].count(b"\n") + 1
    return RenderError(
        f"template {name!r}: byte {error.start} (line {line}) is not "
        f"{error.encoding}: {error.object[error.start : error.start + 1]!r} "
        f"(expected a {error.encoding} text file)"
    )


def _message(error: Exception) -> str:
    """The first line of an exception's text, cut: an error echoes at most this much of a value."""
    text = (getattr(error, "message", None) or str(error) or "").strip()
    text = text.splitlines()[0] if text else "(no message)"
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


def _name(filename: str | None) -> str:
    if not filename or filename == "<template>":
        return "inline"
    return os.path.basename(filename)


def _where(error: Exception) -> str:
    """``(app.ini.j2 line 3)``: the innermost template frame of the traceback. jinja2 rewrites
    a render's traceback so that template frames carry the template's file name and line, and
    marks them with ``__jinja_exception__`` in their globals."""
    tb = error.__traceback__
    found = None
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return ""
    return f"({_name(found[0])} line {found[1]})"


# -- which variables a template uses -------------------------------------------------------------
@dataclass(frozen=True)
class Names:
    """The variables a template (with everything it includes, imports or extends) reads, and
    the options it reads of sections through ``sections`` (``sections.app.port``: ``app`` ->
    ``{'port'}``; ``None`` when it reads a section whole or by a computed name)."""

    variables: frozenset[str]
    section_options: dict[str, frozenset[str] | None]
    #: False when an include or import names its template by an expression: not followed
    complete: bool


def names_used(name_or_text: str, search_path: tuple[str, ...], inline: bool = False) -> Names:
    """What ``name_or_text`` (and the templates it pulls in) reads; raises RenderError."""
    env = environment(search_path)
    loader = env.loader
    assert loader is not None  # environment() always gives one
    variables: set[str] = set()
    sections: dict[str, set[str] | None] = {}
    complete = True
    pending: list[tuple[str, bool]] = [(name_or_text, inline)]
    seen: set[str] = set()
    while pending:
        name, is_text = pending.pop()
        if not is_text:
            if name in seen:
                continue
            seen.add(name)
        try:
            source = name if is_text else loader.get_source(env, name)[0]
        except jinja2.TemplateNotFound as error:
            raise _not_found(error, search_path) from None
        except UnicodeDecodeError as error:
            raise _undecodable(name, error) from None
        # a template that does not parse is reported as such (its file and line) before
        # anything is said of the variables it uses
        used, reads, referenced = _parse(env, source, None if is_text else name)
        variables |= used
        for section, options in reads.items():
            if section in sections and sections[section] is None or options is None:
                sections[section] = None
            else:
                sections[section] = (sections.get(section) or set()) | options
        for other in referenced:
            if other is None:
                complete = False
            else:
                pending.append((other, False))
    return Names(
        frozenset(variables),
        {k: (frozenset(v) if v is not None else None) for k, v in sections.items()},
        complete,
    )


@functools.lru_cache(maxsize=256)
def _parse(
    env: jinja2.Environment, source: str, name: str | None
) -> tuple[frozenset[str], dict[str, set[str] | None], tuple[str | None, ...]]:
    """What a template reads; raises TemplateSyntaxError (not cached: it is raised again)."""
    try:
        tree = env.parse(source, name)
    except jinja2.TemplateSyntaxError as error:
        raise _syntax_error(error) from None
    return (
        frozenset(jinja2.meta.find_undeclared_variables(tree)),
        _section_reads(tree),
        tuple(jinja2.meta.find_referenced_templates(tree)),
    )


def _constant(node: jinja2.nodes.Node | None) -> str | None:
    if isinstance(node, jinja2.nodes.Getattr):
        return node.attr
    if (
        isinstance(node, jinja2.nodes.Getitem)
        and isinstance(node.arg, jinja2.nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _section_reads(tree: jinja2.nodes.Template) -> dict[str, set[str] | None]:
    """``sections.app.port`` and ``sections['app']['port']`` -> ``{'app': {'port'}}``; a
    section used any other way (``sections.app.items()``, ``sections[name]``) -> ``None``."""
    parents: dict[int, jinja2.nodes.Node] = {}
    for node in tree.find_all(jinja2.nodes.Node):
        for child in node.iter_child_nodes():
            parents[id(child)] = node
    reads: dict[str, set[str] | None] = {}
    for name in tree.find_all(jinja2.nodes.Name):
        if name.name != "sections" or name.ctx != "load":
            continue
        outer = parents.get(id(name))
        section = _constant(outer) if getattr(outer, "node", None) is name else None
        if section is None:
            reads["*"] = None  # ``sections`` by a computed name: any section, any option
            continue
        inner = parents.get(id(outer))
        option = _constant(inner) if getattr(inner, "node", None) is outer else None
        if option is None or option in ("items", "keys", "values", "get"):
            reads[section] = None
        else:
            known = reads.setdefault(section, set())
            if known is not None:  # None: the section is read whole already
                known.add(option)
    return reads

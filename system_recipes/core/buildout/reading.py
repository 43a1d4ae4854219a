"""A configuration file that cannot be read, in one line: ``host.cfg line 6: '[web-config' is not
a section header (expected [NAME])``.

buildout reads every configuration file (``extends`` included) before any extension loads, and
ends a syntax error, an undecodable byte or a missing file in a traceback. ``plan`` and
``explain`` load through :func:`.loading.loaded` and ``converge`` runs buildout through
:func:`.buildout_api.run_main`: both turn what buildout raised into :class:`ConfigFileError`
with the words below. Plain ``buildout`` cannot (README, "Mistakes in host.cfg").
"""

from __future__ import annotations

import ast
import os

from zc.buildout.configparser import MissingSectionHeaderError, ParsingError

from system_recipes.core.declare.errors import NamedError, shown

#: what raising while buildout reads its configuration files means a file's problem
READING_ERRORS = (ParsingError, UnicodeDecodeError, OSError)


class ConfigFileError(NamedError):
    """A configuration file that cannot be read: the line names the file (and its line)."""


def display(path: str) -> str:
    """``path`` as the operator would type it: relative below the working directory."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def line_problem(line: str) -> str:
    """Why the configuration parser refused ``line`` (a line that is neither a comment, a
    section header, an option nor the continuation of one)."""
    text = line.rstrip("\r\n")
    if text[:1].isspace():
        return (
            f"{shown(text)} is indented with no option before it "
            "(expected an option's continuation, or no indentation)"
        )
    if text.lstrip().startswith("["):
        return f"{shown(text)} is not a section header (expected [NAME])"
    return f"{shown(text)} is not an option (expected NAME = VALUE)"


def syntax_problem(error: ParsingError) -> str:
    """``host.cfg line 16: '[web-config' is not a section header (expected [NAME])``; the
    first bad line, and how many more the file has."""
    name = display(error.filename)
    if isinstance(error, MissingSectionHeaderError):
        problem = line_problem(error.line)
        if not error.line.lstrip().startswith("["):
            problem = (
                f"{shown(error.line.rstrip())} comes before any section "
                "(expected a [NAME] header first)"
            )
        return f"{name} line {error.lineno}: {problem}"
    lineno, quoted = error.errors[0]
    line = _unquoted(quoted)
    more = len(error.errors) - 1
    tail = f"; {more} more line{'s' if more != 1 else ''} like it" if more else ""
    return f"{name} line {lineno}: {line_problem(line)}{tail}"


def _unquoted(quoted: str) -> str:
    """The line buildout's parser kept as its repr."""
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return quoted
    return value if isinstance(value, str) else quoted


def byte_problem(data: bytes, start: int, encoding: str = "utf-8") -> str:
    """``byte 55 (line 3) is not utf-8: b'\\xe9' (expected a utf-8 text file)``: the first byte
    of ``data`` (at ``start``) that does not decode."""
    line = data.count(b"\n", 0, start) + 1
    return (
        f"byte {start} (line {line}) is not {encoding}: {data[start : start + 1]!r} "
        f"(expected a {encoding} text file)"
    )


def undecodable(error: UnicodeDecodeError, filename: str) -> str:
    """``host.cfg: byte 55 (line 3) is not utf-8 ...``: the offset is found again in the file
    (buildout's offset counts from the start of a read buffer, not always of the file)."""
    try:
        with open(filename, "rb") as stream:
            data = stream.read()
        data.decode(error.encoding)
    except UnicodeDecodeError as again:
        return f"{display(filename)}: {byte_problem(data, again.start, error.encoding)}"
    except OSError:
        pass
    return (
        f"{display(filename)}: not {error.encoding} ({error.reason}) "
        f"(expected a {error.encoding} text file)"
    )


def check_readable(config: str) -> None:
    """Open the main configuration file as buildout will, to say plainly why it cannot (buildout
    says only ``Couldn't open``, or raises IsADirectoryError)."""
    try:
        with open(config, "rb"):
            pass
    except OSError as error:
        raise ConfigFileError(reading_problem(error, None, config)) from None


def reading_problem(error: BaseException, being_read: str | None, config: str) -> str:
    """One line for ``error``, one of :data:`READING_ERRORS`, raised while buildout read
    ``config`` and what it extends (``being_read``: the file it was reading, when known)."""
    if isinstance(error, ParsingError):
        return syntax_problem(error)
    if isinstance(error, UnicodeDecodeError):
        return undecodable(error, being_read or config)
    assert isinstance(error, OSError)
    filename = error.filename if error.filename is not None else being_read or config
    reason = error.strerror or str(error)
    return f"{display(os.fsdecode(filename))}: {reason} (expected a readable configuration file)"

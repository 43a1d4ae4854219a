"""Errors that reach an operator as one line, without a traceback."""

import zc.buildout

#: how much of a value an error may echo: a 1 MB value must not become a 1 MB error line
SHOWN = 100
#: the most of a problem text an error keeps (it holds at most a few echoed values)
PROBLEM = 200


def clip(text: str, limit: int = SHOWN) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def shown(value: object, limit: int = SHOWN) -> str:
    """A value as an error echoes it: its ``repr``, clipped (``'aaaa…' (1048576 characters)``).

    >>> shown("a" * 1000)[-24:]
    "aaaa…' (1000 characters)"
    """
    if not isinstance(value, str):
        return clip(repr(value), limit)
    budget, count = limit, 0
    for char in value:  # count what the repr shows: an escaped character takes several
        cost = len(repr(char)) - 2
        if cost > budget:
            break
        budget, count = budget - cost, count + 1
    if count == len(value):
        return repr(value)
    head = repr(value[:count])
    return f"{head[:-1]}…{head[-1]} ({len(value)} characters)"


class NamedError(zc.buildout.UserError):
    """An error whose line names its own place (the section and option, the file and line):
    buildout prints it without its ``While:`` context, which names the part being installed --
    often another part than the one whose option failed (parts are constructed lazily)."""

    def __str__(self) -> str:
        return self.args[0]


class ConfigError(NamedError):
    """A mistake in a profile: names the section and option and says what was expected.

    The problem text is clipped as a last resort: a converter that echoed a whole value
    (instead of :func:`shown`) still gives a line of a few hundred characters at most."""

    def __init__(self, section: str, option: str | None, problem: str, expected: str | None = None):
        section, option = clip(section, SHOWN), clip(option, SHOWN) if option else option
        problem = clip(problem, PROBLEM)
        self.section, self.option, self.problem, self.expected = section, option, problem, expected
        where = f"[{section}] {option}" if option else f"[{section}]"
        text = f"{where}: {problem}"
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)

    def __str__(self) -> str:
        return self.args[0]


class RunError(NamedError):
    """A failure while applying a run (after validation); the run has been rolled back."""

"""Errors that reach an operator as one line, without a traceback."""

import zc.buildout


class ConfigError(zc.buildout.UserError):
    """A mistake in a profile: names the section and option and says what was expected."""

    def __init__(self, section: str, option: str | None, problem: str, expected: str | None = None):
        self.section, self.option, self.problem, self.expected = section, option, problem, expected
        where = f"[{section}] {option}" if option else f"[{section}]"
        text = f"{where}: {problem}"
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)

    def __str__(self) -> str:
        return self.args[0]


class RunError(zc.buildout.UserError):
    """A failure while applying a run (after validation); the run has been rolled back."""

    def __str__(self) -> str:
        return self.args[0]

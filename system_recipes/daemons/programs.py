"""The program a run script or a supervisor program starts: it must be installed below the root,
as a regular executable file. Judged with the other checks of the run (against the install
root and its planned state), not while a recipe builds its files."""

from __future__ import annotations

import os
from dataclasses import dataclass

from system_recipes.core.declare.errors import clip
from system_recipes.core.hooks import validate


@dataclass(frozen=True)
class ProgramContext:
    """What the ``program`` check judges: ``program`` (its path on the host), the ``option``
    that named it (a problem names that option) and a ``label`` said before the path (such as
    ``"check_app: plugin "``, the NRPE check that runs it)."""

    program: str
    option: str
    label: str = ""


@validate.register
class ProgramValidator(validate.Validator):
    """``Check("program", ProgramContext(PROGRAM, OPTION))``: PROGRAM exists below the root and
    is executable; a problem names OPTION, the option that named the program."""

    name = "program"
    tools = ()

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str | validate.Problem]:
        errors: dict[int, str | validate.Problem] = {}
        below = "" if context.root == "/" else f" below {context.root}"
        for index, item in enumerate(items):
            given = item.given(ProgramContext)
            option, label = given.option, given.label
            real = context.below(given.program)
            program = clip(given.program)  # the path as echoed: a 1 MB path is not a 1 MB error
            if not os.path.isfile(real):
                errors[index] = validate.Problem(
                    f"{label}{program} does not exist{below}", option=option
                )
            elif not os.stat(real).st_mode & 0o111:
                errors[index] = validate.Problem(
                    f"{label}{program} is not executable", option=option
                )
        return errors

"""What the host step and its confirmation both use: the step's one-line error and the model name
check (a module of their own, so neither imports the other)."""

from __future__ import annotations

import re
from typing import Any

from system_recipes.fleet.protocol import Step


class StepError(Exception):
    """One line; ``step`` names where it happened (the JSON line it is said in)."""

    def __init__(self, step: Step, message: str, result: str = "error") -> None:
        self.step, self.result = step, result
        super().__init__(message)


def check_name(model: Any) -> str:
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        raise StepError(
            Step.INPUT,
            f"model: {str(model)[:40]!r} (expected a model name: a "
            "lowercase letter, then letters, digits or '-')",
        )
    return model


MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")

"""What the host step and its confirmation both use: the step's one-line error, the model name
check, reading a kept file and its digest (a module of their own, so neither imports the other)."""

from __future__ import annotations

import hashlib
import re
from typing import Any


class StepError(Exception):
    """One line; ``step`` names where it happened."""

    def __init__(self, step: str, message: str, result: str = "error"):
        self.step, self.result = step, result
        super().__init__(message)


def check_name(model: Any) -> str:
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        raise StepError(
            "input",
            f"model: {str(model)[:40]!r} (expected a model name: a "
            "lowercase letter, then letters, digits or '-')",
        )
    return model


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")

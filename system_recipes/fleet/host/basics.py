"""What the host step and its confirmation both use: the step's one-line error, the model name
check, reading a kept file and its digest (a module of their own, so neither imports the other)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
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


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


def write_atomic(path: str, text: str) -> None:
    """``path`` holds ``text``, or (on any failure) what it held before."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

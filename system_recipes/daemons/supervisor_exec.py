"""Whether the kernel would start a supervisor program: supervisord splits its command like a
shell and execs it with the program's environment and its SUPERVISOR_* variables, and execve()
refuses (E2BIG) a string over MAX_ARG_STRLEN or all of them over ARG_MAX.

Separate from :mod:`.supervisor` (supervisor's parser, validator and reload) because it asks
the kernel's limits, not supervisor: arithmetic on the words and the environment, checked
against a real supervisord in tests.
"""

from __future__ import annotations

import os
import shlex

from system_recipes.core.declare.errors import ConfigError, shown

# include/uapi/linux/binfmts.h: one argument or environment string, with its NUL
MAX_ARG_STRLEN = 32 * 4096


# fs/exec.c bprm_stack_limits(): at most 3/4 of _STK_LIM (8 MiB), else a quarter of the stack
# rlimit, which is what sysconf(_SC_ARG_MAX) reports
STACK_SHARE = 8 * 1024 * 1024 // 4 * 3


def exec_limit() -> int:
    """The bytes of strings and pointers execve() accepts (argv, environment, file name)."""
    try:
        arg_max = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        arg_max = MAX_ARG_STRLEN
    return min(max(arg_max, MAX_ARG_STRLEN), STACK_SHARE)


def exec_size(section: str, program: str, group: str, values: dict) -> None:
    """Refuse a program the kernel would never start: supervisord splits the command like a
    shell (shlex) and execs it with its own environment plus the program's ``environment`` and
    its SUPERVISOR_* variables. A string over MAX_ARG_STRLEN, or all of them over the
    ARG_MAX of this machine, makes every start fail with E2BIG (checked against a real
    supervisord in tests). supervisord's own environment comes on top and is not counted."""
    try:
        words = shlex.split(values["command"])
    except ValueError:
        return  # supervisor's own parser says what is wrong with it
    for index, word in enumerate(words):
        size = len(word.encode()) + 1
        if size > MAX_ARG_STRLEN:
            raise ConfigError(
                section,
                "command",
                f"word {index + 1} ({shown(word[:20])}...) is "
                f"{size - 1} bytes, the kernel passes at most "
                f"{MAX_ARG_STRLEN - 1} (MAX_ARG_STRLEN): the program could "
                "never start",
                "words under 128 KiB; pass more in a file",
            )
    environment = {
        "SUPERVISOR_ENABLED": "1",
        "SUPERVISOR_PROCESS_NAME": program,
        "SUPERVISOR_GROUP_NAME": group,
        "SUPERVISOR_SERVER_URL": values.get("serverurl") or "unix:///run/supervisor.sock",
    }
    own = values.get("environment") or {}
    for key, value in own.items():
        size = len(f"{key}={value}".encode()) + 1
        if size > MAX_ARG_STRLEN:
            raise ConfigError(
                section,
                "environment",
                f"{key} is {size - 1} bytes with its "
                f"name, the kernel passes at most {MAX_ARG_STRLEN - 1} "
                "(MAX_ARG_STRLEN): the program could never start",
                "values under 128 KiB; pass more in a file",
            )
    limit = exec_limit()
    # the file name is copied too; each string has a NUL and a pointer on the new stack
    command = (
        sum(len(w.encode()) + 1 + 8 for w in words) + len(words[0].encode()) + 1 if words else 0
    )
    supervisor_part = sum(len(f"{k}={v}".encode()) + 1 + 8 for k, v in environment.items())
    if command + supervisor_part > limit:
        raise ConfigError(
            section,
            "command",
            f"its {len(words)} words are {command} bytes "
            f"for execve(), the kernel takes at most {limit} (ARG_MAX, with "
            "the environment): the program could never start",
            "a shorter command; pass more in a file",
        )
    total = (
        command + supervisor_part + sum(len(f"{k}={v}".encode()) + 1 + 8 for k, v in own.items())
    )
    if total > limit:
        raise ConfigError(
            section,
            "environment",
            f"the command and environment are {total} "
            f"bytes for execve(), the kernel takes at most {limit} (ARG_MAX): "
            "the program could never start",
            "a shorter environment; pass more in a file",
        )

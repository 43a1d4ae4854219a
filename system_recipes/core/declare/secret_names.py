"""Which option names hold a secret when their value is written literally: one rule for every
floor. The system model (level 4) refuses such a setting unless it is a reference (``secrets``);
a template part (level 1) refuses one unless the part is ``secret = true`` or the value is a
reference (``file:/PATH``, where the secret is), so that a diff never shows one in clear.

>>> [looks_secret(key) for key in ("db-password", "api_token", "PASSWD", "pass", "db_pass")]
[True, True, True, True, True]
>>> [looks_secret(key) for key in ("password-file", "token-length", "passing", "bypass")]
[False, False, False, False]
"""

from __future__ import annotations

import re

#: key names that hold a secret when their value is written literally (``db-password``,
#: ``api_token``); ``pass`` only as a word of its own (``db-pass``, not ``passing``)
SECRET_WORDS = re.compile(
    r"pass(word|wd|phrase)|(^|[-_.])pass($|[-_.])|secret|token|private[-_]?key|api[-_]?key|"
    r"credential",
    re.IGNORECASE,
)
#: ... but ``password-file`` names where one is, which is fine
NOT_A_SECRET = re.compile(r"[-_](file|path|dir|directory|command|length)$", re.IGNORECASE)
#: a value that says where a secret is, not what it is (the form of the model's ``secrets``)
REFERENCE = re.compile(r"file:/\S*")


def looks_secret(key: str) -> bool:
    return bool(SECRET_WORDS.search(key)) and not NOT_A_SECRET.search(key)


def is_reference(value: str) -> bool:
    """``file:/etc/web/db-password``: where the secret is read, not the secret."""
    return REFERENCE.fullmatch(value.strip()) is not None

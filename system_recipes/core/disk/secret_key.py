"""The host's own key for what it records about secrets.

A bare sha256 of a short password in a manifest or a state file can be guessed offline by
anyone who reads that file; an HMAC with a random key that never leaves the host cannot. The
key is made once per state directory (32 random bytes, root-only, written atomically) and read
from there on every later run; whoever can read it can already read the secrets themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from system_recipes.core.disk import fsops

KEY_NAME = "secret.key"
KEY_BYTES = 32


def key_path(state_directory: str) -> str:
    """Where the key lives, as a host path (below the install root)."""
    return os.path.join(state_directory, KEY_NAME)


def host_key(root: str, state_directory: str, create: bool = True) -> bytes | None:
    """The host's key: read, or made and written when it does not exist yet (``create``).
    None when it does not exist and ``create`` is false (a plan writes nothing)."""
    path = key_path(state_directory)
    state = fsops.inspect(root, path)
    if state is not None and state.kind != "file":
        raise fsops.UnsafePath(0, f"{path} is not a regular file; refusing to use it as the key")
    if state is not None:
        if len(state.content) != KEY_BYTES:
            # not a key this module wrote: replacing it would change every keyed hash, and
            # overwrite a file the tool did not create
            raise fsops.UnsafePath(0, f"{path} is not a key of {KEY_BYTES} bytes; refusing it")
        return state.content
    if not create:
        return None
    key = secrets.token_bytes(KEY_BYTES)
    fsops.write_file(root, path, key, 0o600, 0, 0)
    return key


def keyed_hash(key: bytes, data: bytes) -> str:
    """What the books record of a secret's content: ``hmac-sha256:HEX``."""
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


def derived_bytes(key: bytes, purpose: str, size: int = 16) -> bytes:
    """Stable bytes for one purpose (a SCRAM salt for one role): the same on every run of
    this host, different on every other host and for every other purpose."""
    return hmac.new(key, b"derive:" + purpose.encode(), hashlib.sha256).digest()[:size]

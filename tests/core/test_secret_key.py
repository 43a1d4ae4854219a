"""The host's key for what is recorded about secrets (core/disk/secret_key.py): made once,
root-only, read back on every later run; a keyed hash differs from host to host."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from system_recipes.core.disk import fsops, secret_key


def test_the_key_is_made_once_root_only_and_read_back(tmp_path):
    root = str(tmp_path)
    assert secret_key.host_key(root, "/var/lib/sr", create=False) is None
    assert not os.path.exists(tmp_path / "var/lib/sr/secret.key")  # asking made nothing
    key = secret_key.host_key(root, "/var/lib/sr")
    path = tmp_path / "var/lib/sr/secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == key
    assert len(key) == 32 and secret_key.host_key(root, "/var/lib/sr") == key


def test_a_keyed_hash_is_not_the_bare_sha256_and_differs_per_host(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = secret_key.host_key(str(tmp_path / "a"), "/s")
    two = secret_key.host_key(str(tmp_path / "b"), "/s")
    password = b"hunter2"
    assert secret_key.keyed_hash(one, password) != secret_key.keyed_hash(two, password)
    assert hashlib.sha256(password).hexdigest() not in secret_key.keyed_hash(one, password)
    assert secret_key.keyed_hash(one, password) == secret_key.keyed_hash(one, password)
    assert secret_key.derived_bytes(one, "scram:shop") != secret_key.derived_bytes(one, "scram:x")


def test_a_symlink_planted_as_the_key_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "elsewhere").write_bytes(b"k" * 32)
    (tmp_path / "s/secret.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(fsops.UnsafePath, match="not a regular file"):
        secret_key.host_key(str(tmp_path), "/s")


def test_a_file_that_is_no_key_is_refused_not_replaced(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s/secret.key").write_bytes(b"short")
    with pytest.raises(fsops.UnsafePath, match="not a key of 32 bytes"):
        secret_key.host_key(str(tmp_path), "/s")
    assert (tmp_path / "s/secret.key").read_bytes() == b"short"

"""Symlinks in the core: planned, applied atomically, journaled, recorded, removed with the part.

These drive the core in-process on PartSpecs, in a scratch install root; the runscript tests
show the same through a real buildout in the sandbox.
"""

from __future__ import annotations

import json
import os

import pytest
from support.declare import fake_run
from support.host import make_scratch_root

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.declare.specs import FileSpec, LinkSpec, PartSpec
from system_recipes.core.disk import fsops
from system_recipes.core.plan import run

WANTS = "/etc/demo/wants/web.service"
UNIT = "/etc/demo/web.service"


@pytest.fixture
def root(tmp_path):
    return make_scratch_root(str(tmp_path / "root"))


def apply(root: str, *specs: PartSpec, instance: str = "host") -> run.Run:
    """One run that converges ``specs`` (and removes every manifest part not among them)."""
    _, active = fake_run(root, " ".join(s.name for s in specs), mode="apply", instance=instance)
    active.acquire()
    try:
        for spec in specs:
            active.declare(spec)
            active.stage(spec.name)
        active.validate_declared()
        active.commit()
    finally:
        active.release()
    return active


def part(
    target: str = UNIT, name: str = "web", force: bool = False, link_path: str = WANTS
) -> PartSpec:
    return PartSpec(
        name=name,
        recipe="test",
        force=force,
        files=[FileSpec(UNIT, b"[Unit]\n")],
        links=[LinkSpec(link_path, target)],
    )


def at(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def manifest(root: str) -> dict:
    with open(at(root, "/var/lib/system-recipes/manifest.json")) as stream:
        return json.load(stream)["instances"]["host"]


@pytest.mark.sandbox
def test_create_unchanged_retarget_remove(root, capsys):
    apply(root, part())
    assert os.readlink(at(root, WANTS)) == UNIT
    out = capsys.readouterr().out
    assert f"link {WANTS} -> {UNIT}" in out and "2 files changed" in out
    assert manifest(root)["web"]["links"] == {WANTS: {"target": UNIT}}

    inode = os.lstat(at(root, WANTS)).st_ino
    active = apply(root, part())
    assert active.last_plan.parts == {"web": "unchanged"}
    assert os.lstat(at(root, WANTS)).st_ino == inode

    apply(root, part(target="../web.service"))
    assert os.readlink(at(root, WANTS)) == "../web.service"
    assert f"relink {WANTS} -> ../web.service (was -> {UNIT})" in capsys.readouterr().out
    assert manifest(root)["web"]["links"][WANTS] == {"target": "../web.service"}
    assert not [n for n in os.listdir(at(root, "/etc/demo/wants")) if "sr-tmp" in n]

    # the part keeps its file but drops the link
    apply(root, PartSpec(name="web", recipe="test", files=[FileSpec(UNIT, b"[Unit]\n")]))
    assert not os.path.lexists(at(root, WANTS)) and os.path.isfile(at(root, UNIT))
    assert "unlink " + WANTS in capsys.readouterr().out
    assert "links" not in manifest(root)["web"]

    # a dropped part takes its link and its file with it
    apply(root, part())
    apply(root)
    assert not os.path.lexists(at(root, WANTS)) and not os.path.exists(at(root, UNIT))
    with open(at(root, "/var/lib/system-recipes/manifest.json")) as stream:
        assert json.load(stream)["instances"] == {}


@pytest.mark.sandbox
def test_link_to_a_missing_target_is_fine_and_never_followed(root, tmp_path):
    outside = tmp_path / "outside"
    apply(root, part(target=str(outside)))
    assert os.readlink(at(root, WANTS)) == str(outside)
    assert not outside.exists()  # nothing was written through the link


@pytest.mark.sandbox
def test_refuses_a_regular_file_and_a_foreign_link_unless_forced(root):
    os.makedirs(at(root, "/etc/demo/wants"))
    with open(at(root, WANTS), "w") as stream:
        stream.write("precious\n")
    with pytest.raises(ConfigError, match=r"\[web\] path: .* is not a symlink; refusing"):
        apply(root, part())
    assert open(at(root, WANTS)).read() == "precious\n"
    assert not os.path.exists(at(root, UNIT))  # nothing of the run happened

    os.unlink(at(root, WANTS))
    os.symlink("/somewhere/else", at(root, WANTS))
    with pytest.raises(ConfigError, match="was not made by system-recipes"):
        apply(root, part())
    assert os.readlink(at(root, WANTS)) == "/somewhere/else"

    apply(root, part(force=True))
    assert os.readlink(at(root, WANTS)) == UNIT

    # an identical link already there is adopted, as identical files are
    os.unlink(at(root, WANTS))
    os.symlink("/elsewhere", at(root, WANTS))
    with pytest.raises(ConfigError, match="was changed since system-recipes made it"):
        apply(root, part())
    os.unlink(at(root, WANTS))
    os.symlink(UNIT, at(root, WANTS))
    apply(root, part())
    assert manifest(root)["web"]["links"] == {WANTS: {"target": UNIT}}


@pytest.mark.sandbox
def test_forced_over_a_file_keeps_a_backup(root, capsys):
    os.makedirs(at(root, "/etc/demo/wants"))
    with open(at(root, WANTS), "w") as stream:
        stream.write("precious\n")
    apply(root, part(force=True))
    assert os.readlink(at(root, WANTS)) == UNIT
    out = capsys.readouterr().out
    assert "forced over a file" in out and "backup in /var/lib/system-recipes/backups/" in out


@pytest.mark.sandbox
def test_a_link_owned_by_another_part_is_a_conflict(root):
    apply(root, part())
    other = PartSpec(name="other", recipe="test", links=[LinkSpec(WANTS, "/x")])
    with pytest.raises(
        ConfigError,
        match=r"\[other\] path: .* belongs to \[web\] of "
        "instance host",
    ):
        apply(root, other, instance="second")
    assert os.readlink(at(root, WANTS)) == UNIT
    with pytest.raises(ConfigError, match="also written by"):
        apply(
            root,
            PartSpec(name="a", recipe="t", links=[LinkSpec(WANTS, "/x")]),
            PartSpec(name="b", recipe="t", links=[LinkSpec(WANTS, "/y")]),
        )
    # handed over when the owner leaves in the same run
    apply(root, PartSpec(name="other", recipe="test", links=[LinkSpec(WANTS, "/x")]))
    assert os.readlink(at(root, WANTS)) == "/x"
    assert list(manifest(root)) == ["other"]


def test_symlinked_parent_is_refused(root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.makedirs(at(root, "/etc/demo"))
    os.symlink(str(elsewhere), at(root, "/etc/demo/wants"))
    with pytest.raises(ConfigError, match="symlink"):
        apply(root, part())
    assert list(elsewhere.iterdir()) == []


@pytest.mark.sandbox
def test_a_link_changed_by_hand_is_left_when_the_part_goes(root, capsys):
    apply(root, part())
    os.unlink(at(root, WANTS))
    os.symlink("/mine", at(root, WANTS))
    apply(root)
    assert os.readlink(at(root, WANTS)) == "/mine"
    assert "changed since made; left in place" in capsys.readouterr().out


@pytest.mark.sandbox
def test_failure_later_in_the_run_rolls_links_back(root, monkeypatch):
    """A link created, another retargeted, then a write fails: both are as they were."""
    apply(root, part(name="web", link_path="/etc/demo/wants/old.service"))
    before = os.readlink(at(root, "/etc/demo/wants/old.service"))
    failing = PartSpec(name="zz", recipe="test", files=[FileSpec("/etc/demo/zz.conf", b"x")])
    write_file = fsops.write_file

    def full_disk(root_, host_path, *args, **kwargs):
        if host_path == "/etc/demo/zz.conf":
            raise OSError(28, "No space left on device", host_path)
        return write_file(root_, host_path, *args, **kwargs)

    monkeypatch.setattr(fsops, "write_file", full_disk)
    web = part(name="web", target="/new", link_path="/etc/demo/wants/old.service")
    web.links.append(LinkSpec("/etc/demo/wants/new.service", "/new"))
    with pytest.raises(RunError, match="rolled back"):
        apply(root, web, failing)
    assert os.readlink(at(root, "/etc/demo/wants/old.service")) == before
    assert not os.path.lexists(at(root, "/etc/demo/wants/new.service"))
    assert manifest(root)["web"]["links"] == {"/etc/demo/wants/old.service": {"target": UNIT}}
    assert not os.path.exists(at(root, "/var/lib/system-recipes/journal"))


def test_undo_restores_a_file_a_forced_link_replaced(root, monkeypatch):
    os.makedirs(at(root, "/etc/demo/wants"))
    with open(at(root, WANTS), "w") as stream:
        stream.write("precious\n")
    os.chmod(at(root, WANTS), 0o600)
    monkeypatch.setattr(fsops, "write_file", _fail_on("/etc/demo/zz.conf", fsops.write_file))
    with pytest.raises(RunError, match="rolled back"):
        apply(
            root,
            part(force=True),
            PartSpec(name="zz", recipe="test", files=[FileSpec("/etc/demo/zz.conf", b"x")]),
        )
    assert not os.path.islink(at(root, WANTS))
    assert open(at(root, WANTS)).read() == "precious\n"
    assert os.stat(at(root, WANTS)).st_mode & 0o777 == 0o600


def _fail_on(path, write_file):
    def write(root_, host_path, *args, **kwargs):
        if host_path == path:
            raise OSError(28, "No space left on device", host_path)
        return write_file(root_, host_path, *args, **kwargs)

    return write

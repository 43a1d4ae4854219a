"""The run as a transaction: real buildout, real paths, inside a private mount namespace."""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest
from support.paths import BUILDOUT
from support.results import ok, one_error_line, said, snapshot

APP = """
[buildout]
extends = {base}
parts = app app-config other

[app]
recipe = system_recipes:deployment
user = shopapp

[app-config]
recipe = system_recipes:template
path = ${app:etc-directory}/app.ini
text =
    [server]
    port = {{ port }}
    logs = {{ sections.app.log_directory }}
    price = $$5
port = 8080
group = ${app:group}
mode = 0640

[other]
recipe = system_recipes:template
path = /etc/other.conf
text = other {{ sections['app-config'].port }}
"""


def test_fresh_run_writes_the_expected_tree(host):
    host.write(APP)
    out = ok(host.buildout()).stdout
    assert host.read("/etc/app/app.ini") == (
        "[server]\nport = 8080\nlogs = /var/log/app\nprice = $5\n"
    )
    st = os.stat(host.path("/etc/app/app.ini"))
    assert oct(st.st_mode & 0o7777) == "0o640"
    passwd = host.read("/etc/passwd")
    uid = next(
        int(line.split(":")[2]) for line in passwd.splitlines() if line.startswith("shopapp:")
    )
    assert os.stat(host.path("/var/log/app")).st_uid == uid
    assert oct(os.stat(host.path("/etc/app")).st_mode & 0o7777) == "0o750"
    assert host.read("/etc/other.conf") == "other 8080\n"
    assert said(out, "app-config", "created") and "3 created" in out
    # buildout's own state is under the state directory, private
    installed = "/var/lib/system-recipes/host/installed.cfg"
    assert oct(os.stat(host.path(installed)).st_mode & 0o777) == "0o600"


def test_noop_rerun_touches_nothing(host):
    host.write(APP)
    ok(host.buildout())
    before = snapshot(host, "/etc/app", "/etc/other.conf".rsplit("/", 1)[0] + "/other.conf")
    before = snapshot(host, "/etc/app", "/var/log/app")
    other = os.stat(host.path("/etc/other.conf"))
    # the fast path (nothing changed since the last clean run), then a full run
    assert "system-recipes: nothing to do: " in ok(host.buildout()).stdout
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout
    assert snapshot(host, "/etc/app", "/var/log/app") == before
    after = os.stat(host.path("/etc/other.conf"))
    assert (after.st_ino, after.st_mtime_ns) == (other.st_ino, other.st_mtime_ns)
    assert "0 created, 0 updated, 0 removed, 3 unchanged" in out


def test_editing_one_section_rewrites_only_its_file(host):
    host.write(APP)
    ok(host.buildout())
    other = os.stat(host.path("/etc/other.conf"))
    host.write(APP.replace("mode = 0640", "mode = 0600"))
    out = ok(host.buildout()).stdout
    assert oct(os.stat(host.path("/etc/app/app.ini")).st_mode & 0o777) == "0o600"
    after = os.stat(host.path("/etc/other.conf"))
    assert (after.st_ino, after.st_mtime_ns) == (other.st_ino, other.st_mtime_ns)
    assert (
        said(out, "app-config", "updated")
        and said(out, "other", "unchanged")
        and "1 updated" in out
    )


def test_dropping_a_part_removes_its_files_only(host):
    host.write(APP)
    ok(host.buildout())
    host.sandbox.run("echo mine > /etc/app/local.ini", check=True)
    # [other] refers to [app-config], so buildout keeps app-config as a part: drop other
    host.write(APP.replace("parts = app app-config other", "parts = app app-config"))
    out = ok(host.buildout()).stdout
    assert not host.exists("/etc/other.conf")
    assert host.exists("/etc/app/app.ini")
    assert said(out, "other", "removed")
    # the deployment's directories go only when empty; accounts stay
    host.write(APP.replace("parts = app app-config other", "parts ="))
    out = ok(host.buildout()).stdout
    assert not host.exists("/etc/app/app.ini")
    assert host.read("/etc/app/local.ini") == "mine\n"
    assert not host.exists("/var/log/app")
    assert "shopapp:" in host.read("/etc/passwd")


@pytest.mark.parametrize(
    "change, fragments",
    [
        ("[app]\nbogus = 1", ["[app] bogus: unknown option"]),
        ("[app-config]\nmode = 999", ["[app-config] mode:", "octal"]),
        ("[system-recipes]\nvalidate = maybe", ["[system-recipes] validate:", "one of"]),
        ("[app]\nname = a/b", ["[app] name:", "escape"]),
        ("[other]\npath = /etc/../x", ["[other] path:", ".."]),
        ("[other]\npath = relative/x", ["[other] path:", "absolute"]),
        ("[other]\ntext = {{ nothere }}", ["[other] text:", "nothere"]),
        ("[app-config]\nowner = nobody-here", ["[app-config] owner:", "nobody-here"]),
        ("[app]\nuser = Bad User", ["[app] user:"]),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(host, change, fragments):
    host.write(APP)
    ok(host.buildout())
    before = snapshot(host, "/etc/app", "/var/lib/system-recipes")
    host.write(APP + "\n" + change + "\n")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc/app", "/var/lib/system-recipes") == before


def test_missing_required_option(host):
    host.write(APP.replace("path = /etc/other.conf\n", ""))
    one_error_line(host.buildout(), "[other] path: missing required option")
    assert not host.exists("/etc/app")


def test_recipe_without_the_extension_says_so(host):
    host.write("""
        [buildout]
        parts = x
        [x]
        recipe = system_recipes:template
        path = /etc/x
        text = x
    """)
    line = one_error_line(host.buildout(), "[x]", "extensions = system-recipes")
    assert not host.exists("/etc/x"), line


def test_failure_while_applying_rolls_back_every_file(host):
    """A full disk in the middle of a run: the files written before it are restored."""
    host.write(APP)
    ok(host.buildout())
    host.sandbox.run("mkdir -p /etc/full && mount -t tmpfs -o size=8k tmpfs /etc/full", check=True)
    before = snapshot(host, "/etc/app", "/etc/full")
    other_before = host.read("/etc/other.conf")
    host.write(
        (
            APP
            + """
[big]
recipe = system_recipes:template
path = /etc/full/big.conf
text = {{ 'x' * 100000 }}
"""
        )
        .replace("parts = app app-config other", "parts = app app-config other big")
        .replace("port = 8080", "port = 9090")
    )
    line = one_error_line(host.buildout(), "[big]", "rolled back")
    assert "No space left" in line

    def content(tree):  # a restored file is a new inode with the old content, mode and owner
        return {path: entry[:5] for path, entry in tree.items()}

    assert content(snapshot(host, "/etc/app", "/etc/full")) == content(before)
    assert host.read("/etc/other.conf") == other_before
    assert not host.exists("/var/lib/system-recipes/journal")


def test_killed_run_is_rolled_back_by_the_next_run(host):
    host.write(APP)
    ok(host.buildout())
    before = snapshot(host, "/etc/app")
    host.write(APP.replace("port = 8080", "port = 9090").replace("mode = 0640", "mode = 0600"))
    killed = host.sandbox.run(
        [
            "env",
            "SYSTEM_RECIPES_FAULT_KILL_AFTER=1",
            BUILDOUT,
            "-c",
            os.path.join(host.directory, "host.cfg"),
        ],
        cwd=host.directory,
    )
    assert killed.returncode == -9 or killed.returncode == 137, killed
    assert "port = 9090" in host.read("/etc/app/app.ini")  # half-applied, journal on disk
    assert host.exists("/var/lib/system-recipes/journal/log.jsonl")
    # the next run first rolls back, then converges
    host.write(APP)
    out = ok(host.buildout()).stdout
    assert "rolled back 1 change(s) of an interrupted run" in out
    assert snapshot(host, "/etc/app") == {k: v for k, v in before.items()} or host.read(
        "/etc/app/app.ini"
    ).startswith("[server]\nport = 8080")
    assert host.read("/etc/app/app.ini").startswith("[server]\nport = 8080")
    assert not host.exists("/var/lib/system-recipes/journal")


def test_drift_is_refused_then_forced_with_a_backup(host):
    host.write(APP)
    ok(host.buildout())
    host.sandbox.run("echo 'edited by hand' >> /etc/other.conf", check=True)
    host.write(APP.replace("text = other", "text = changed"))
    one_error_line(host.buildout(), "[other] path:", "changed since", "force = true")
    assert host.read("/etc/other.conf") == "other 8080\nedited by hand\n"
    host.write(APP.replace("text = other", "text = changed") + "force = true\n")
    out = ok(host.buildout()).stdout
    assert host.read("/etc/other.conf") == "changed 8080\n"
    assert "backup in /var/lib/system-recipes/backups/" in out
    backups = host.sandbox.run(
        "cat /var/lib/system-recipes/backups/*/etc/other.conf", check=True
    ).stdout
    assert backups == "other 8080\nedited by hand\n"


def test_drift_left_as_it_is_is_a_warning_not_a_failure(host):
    host.write(APP)
    ok(host.buildout())
    host.sandbox.run("echo 'edited by hand' >> /etc/other.conf", check=True)
    # the run changes another file and has nothing to change in the edited one
    host.write(
        APP.replace("port = 8080", "port = 9090").replace(
            "text = other {{ sections['app-config'].port }}", "text = other 8080"
        )
    )
    result = host.plan()
    assert result.returncode == 2, result.stdout + result.stderr
    assert said(result.stdout, "other", "drifted") and "changed by hand" in result.stdout
    assert said(result.stdout, "app-config", "update") and "+port = 9090" in result.stdout
    out = ok(host.buildout()).stdout
    assert said(out, "other", "drifted") and "1 file drifted" in out
    assert host.read("/etc/other.conf") == "other 8080\nedited by hand\n"
    assert "port = 9090" in host.read("/etc/app/app.ini")
    # drift alone: plan still says there is something to look at, a run changes nothing
    result = host.plan()
    assert result.returncode == 2 and said(result.stdout, "other", "drifted"), result.stdout
    ok(host.buildout())
    assert host.read("/etc/other.conf") == "other 8080\nedited by hand\n"


def test_removed_secret_file_is_never_shown_whatever_its_mode(host):
    secret = """
[secret]
recipe = system_recipes:template
path = /etc/app/secret.conf
text = password = {{ password }}
password = hunter2
secret = true
mode = 0640
"""
    host.write(
        (APP + secret).replace(
            "parts = app app-config other", "parts = app app-config other secret"
        )
    )
    ok(host.buildout())
    assert oct(os.stat(host.path("/etc/app/secret.conf")).st_mode & 0o777) == "0o640"
    host.write(APP + secret)  # the part is dropped: its file is removed
    result = host.plan()
    assert result.returncode == 2 and "hunter2" not in result.stdout + result.stderr
    assert "secret: content of /etc/app/secret.conf not shown" in result.stdout
    out = ok(host.buildout("-v")).stdout
    assert "hunter2" not in out and not host.exists("/etc/app/secret.conf")


def test_unowned_file_is_not_overwritten_unless_identical(host):
    host.sandbox.run("echo precious > /etc/other.conf", check=True)
    host.write(APP)
    one_error_line(host.buildout(), "[other] path:", "not written by system-recipes")
    assert host.read("/etc/other.conf") == "precious\n"
    assert not host.exists("/etc/app")  # nothing of the run happened
    host.sandbox.run("printf 'other 8080\\n' > /etc/other.conf", check=True)
    ok(host.buildout())  # identical content is adopted
    host.write(APP.replace("text = other", "text = again"))
    ok(host.buildout())
    assert host.read("/etc/other.conf") == "again 8080\n"


@pytest.mark.parametrize(
    "plant",
    [
        "ln -s /tmp/sr-planted-target /etc/other.conf",
        "mkdir -p /srv/elsewhere && ln -s /srv/elsewhere /etc/app",
    ],
)
def test_planted_symlink_is_refused(host, plant):
    host.sandbox.run(plant, check=True)
    host.write(APP)
    one_error_line(host.buildout(), "symlink")
    assert not os.path.exists("/tmp/sr-planted-target")
    assert not host.exists("/srv/elsewhere/app.ini")


def test_second_run_waits_for_the_lock_or_fails_clearly(host):
    host.write(APP)
    ok(host.buildout())
    lock = host.path("/var/lib/system-recipes/lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        host.write(APP + "\n[system-recipes]\nlock-timeout = 1\n")
        line = one_error_line(host.buildout(), "another system-recipes run", "lock-timeout")
        assert line
        host.write(
            APP.replace("port = 8080", "port = 7070") + "\n[system-recipes]\nlock-timeout = 30\n"
        )
        waiting = host.sandbox.popen(
            [BUILDOUT, "-c", os.path.join(host.directory, "host.cfg")],
            cwd=host.directory,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = waiting.stdout.readline()
        assert "waiting for another run" in first
        assert "port = 8080" in host.read("/etc/app/app.ini")
    finally:
        os.close(fd)
    rest = waiting.communicate(timeout=60)[0]
    assert waiting.returncode == 0, rest
    assert "port = 7070" in host.read("/etc/app/app.ini")


def test_plan_changes_nothing_and_exits_by_what_it_would_do(host):
    host.write(APP)
    before = snapshot(host, "/etc", "/var/lib")
    result = host.plan()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "+port = 8080" in result.stdout and "[app-config] create" in result.stdout
    assert snapshot(host, "/etc", "/var/lib") == before
    ok(host.buildout())
    state = host.tree("/var/lib/system-recipes")  # installed.cfg and the lock included
    assert host.plan().returncode == 0
    host.write(APP.replace("port = 8080", "port = 9090"))
    result = host.plan()
    assert result.returncode == 2 and "-port = 8080" in result.stdout
    assert "+port = 9090" in result.stdout
    assert host.tree("/var/lib/system-recipes") == state
    host.write(APP + "\n[app]\nbogus = 1\n")
    result = host.plan()
    assert result.returncode == 1 and "[app] bogus: unknown option" in result.stderr


def test_secrets_never_shown(host):
    host.write(
        (
            APP
            + """
[secret]
recipe = system_recipes:template
path = /etc/app/secret.conf
text = password = {{ password }}
password = hunter2
secret = true
"""
        ).replace("parts = app app-config other", "parts = app app-config other secret")
    )
    result = host.plan()
    assert "hunter2" not in result.stdout + result.stderr
    out = ok(host.buildout("-v")).stdout
    assert "hunter2" not in out and "secret: content of /etc/app/secret.conf not shown" in out
    assert oct(os.stat(host.path("/etc/app/secret.conf")).st_mode & 0o777) == "0o600"


def test_a_directory_it_did_not_create_gets_its_mode_and_owner_back(host):
    """/etc/app existed (it holds the host configuration, say): the deployment makes it
    0750 root:shopapp, and dropping the deployment puts back what it found."""
    host.sandbox.run(
        "mkdir -p /etc/app && chmod 0755 /etc/app && echo mine > /etc/app/notes", check=True
    )
    host.write(APP)
    ok(host.buildout())
    st = os.stat(host.path("/etc/app"))
    assert oct(st.st_mode & 0o7777) == "0o750" and st.st_gid != 0
    host.write(
        APP.replace("parts = app app-config other", "parts = other").replace(
            "text = other {{ sections['app-config'].port }}", "text = other"
        )
    )
    out = ok(host.buildout()).stdout
    assert "restore /etc/app" in out, out
    st = os.stat(host.path("/etc/app"))
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o755", 0, 0)
    assert host.read("/etc/app/notes") == "mine\n"
    assert not host.exists("/var/log/app")  # the directories it created are gone


@pytest.mark.parametrize(
    "instances",
    [
        {},
        {"host": {}, "other": {"z": {"files": {}}}},
        {
            "host": {
                "a": {
                    "directories": {"/etc/a": {"mode": 493, "owner": "root"}},
                    "files": {"/etc/a/x": {"mode": 416, "secret": True, "sha256": "ab"}},
                    "links": {"/etc/a/l": {"target": "caf\u00e9\n"}},
                    "recipe": "template",
                    "removal_reloads": [],
                },
                "b": {"facts": {"shop": "1.0-1"}, "recipe": "package"},
            },
        },
    ],
)
def test_the_manifest_is_written_as_jsons_indented_form(instances):
    """dumps() builds the document a part at a time (json's indented encoder holds every
    fragment of it): the bytes stay exactly those of json.dumps(indent=1, sort_keys=True)."""
    import json

    from system_recipes.core.disk.manifest import Manifest

    manifest = Manifest(json.loads(json.dumps(instances)), "host")
    kept = {name: parts for name, parts in manifest.instances.items() if parts}
    document = {"version": 1, "instances": kept}
    expected = json.dumps(document, indent=1, sort_keys=True) + "\n"
    assert manifest.dumps() == expected.encode("utf-8")
    read_back = Manifest.parse(manifest.dumps(), "host").instances
    assert {name: parts for name, parts in read_back.items() if parts} == kept

"""Every command the documentation shows (```sh blocks of README.md, docs/ and profiles/README.md)
runs, and exits as documented.

Each document's commands run in order, in a sandbox whose /etc, /var, /run, /opt, /usr and this
checkout are throw-away overlays (tests/support/sandbox.py): `sudo buildout -c /etc/shop/host.cfg`
really writes /etc/shop, `bash scripts/demo.sh` really writes ./demo-root, and none of it
outlives the test. A documented command that fails -- or a new one this test does not know how
to run -- fails the test. What is changed to run a command here, and why, is listed in
:data:`REWRITES`; what is not run, and why, in :data:`NOT_RUN`.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest
from support.paths import BIN, CACHE, REPO
from support.release import PROJECT, project_copy
from support.rpmbuild import RPM_OVERLAYS, force_debian, rpm_install
from support.sandbox import Sandbox

DOCUMENTS = [
    "README.md",
    *sorted(
        os.path.relpath(p, REPO)
        for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)
    ),
    "profiles/README.md",
]
HOST_DIR = "/etc/shop"  # where the documents put host.cfg
ARCH = platform.machine()
#: rpm's own database (Debian's rpm keeps it in ~/.rpmdb): a host.cfg without ``dbpath`` reads it
DEFAULT_DBPATH = subprocess.run(
    ["rpm", "--eval", "%_dbpath"], capture_output=True, text=True
).stdout.strip()

#: commands not run, with the reason (matched on the command's start, `sudo` removed)
NOT_RUN = {
    "bash scripts/test.sh": "it is this test suite (CI's .ci/run): running it here would recurse",
    "python bench/converge.py": "minutes at N=100 and a bench venv of its own; "
    "tests/bench/test_bench.py runs the same script at N=2",
}

#: what is changed in a command to run it here, and why
REWRITES = [
    (r"^sudo ", "", "the sandbox runs as root"),
    (r"\s*\[--[^\]]*\]", "", "[--option ...] marks what is optional: run without it"),
    (r"\bPROJECT\b|(?<=release )PATH\b", PROJECT, "the documents' example project"),
    (r"\bNAME-VERSION\.tar\.gz", "shop-1.0.tar.gz", "the example project's release"),
    (r"/tmp/stage", "/var/tmp/stage", "/tmp is not overlaid by the sandbox; /var is"),
    (
        r"^rpm (-[iU]) ",
        r"rpm \1 --nodeps --dbpath /var/lib/rpm {force} ",
        "Debian's rpm has no system database and no dependency provider",
    ),
    (r"^rpm -e ", "rpm -e --nodeps --dbpath /var/lib/rpm ", "the same database"),
    (r"^rpm (-q\w*) ", r"rpm \1 --dbpath /var/lib/rpm ", "the same database"),
]
#: ``extends = .../profiles/X.cfg``: this checkout's profiles stand for the installed copy
#: (tests/release/test_installed.py runs the installed one)
EXTENDS = re.compile(r"^(extends[ \t]*=[ \t]*)\S*?((?:roles/|hosts/)?[\w.-]+\.cfg)[ \t]*$", re.M)
#: ``[profiles/roles/app-server.cfg](...)`` just before an ini block: the block is an excerpt
#: of that file, and a host.cfg extending it is what the commands after it mean
EXCERPT_OF = re.compile(r"\]\([^)]*?profiles/((?:roles/|hosts/)?[\w.-]+\.cfg)\)")


@dataclass
class Command:
    document: str
    line: int
    text: str  # as documented: continuation lines joined, heredoc attached, comment cut
    ini: str | None  # the document's host.cfg (its last ```ini block with [buildout]) so far


def documented(document: str) -> list[Command]:
    with open(os.path.join(REPO, document)) as stream:
        lines = stream.read().splitlines()
    commands, ini, fence, block, start, prose = [], None, None, [], 0, []
    for number, line in enumerate(lines, 1):
        if fence is None:
            if line.startswith("```"):
                fence, block, start = line[3:].strip(), [], number
            else:
                prose.append(line)
            continue
        if line.startswith("```"):
            excerpt = EXCERPT_OF.findall("\n".join(prose[-6:]))
            if fence == "ini" and excerpt:
                ini = f"[buildout]\nextends = profiles/{excerpt[-1]}\n"
            elif fence == "ini" and any(b.strip() == "[buildout]" for b in block):
                ini = "\n".join(block) + "\n"
            elif fence == "sh":
                commands += _commands(document, start, block, ini)
            fence, prose = None, []
            continue
        block.append(line)
    return commands


def _commands(document: str, start: int, block: list[str], ini: str | None) -> list[Command]:
    result, index = [], 0
    while index < len(block):
        number, text = start + index + 1, block[index]
        while text.endswith("\\") and index + 1 < len(block):
            index += 1
            text = text[:-1].rstrip() + " " + block[index].strip()
        index += 1
        text = re.sub(r"\s+#\s.*$", "", text).strip()
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", text)
        if heredoc:
            body = []
            while index < len(block) and block[index].strip() != heredoc.group(1):
                body.append(block[index])
                index += 1
            index += 1
            text += "\n" + "\n".join(body) + "\n" + heredoc.group(1)
        if text:
            result.append(Command(document, number, text, ini))
    return result


def runnable(command: Command) -> str | None:
    """The shell text to run, or None when :data:`NOT_RUN` lists it."""
    first, _, rest = command.text.partition("\n")
    for pattern, replacement, _why in REWRITES:
        replacement = replacement.format(force="--force-debian" if force_debian() else "")
        first = re.sub(pattern, replacement, first)
    if any(first.startswith(prefix) for prefix in NOT_RUN):
        return None
    return first + ("\n" + EXTENDS.sub(_extends, rest) if rest else "")


def _extends(match: re.Match) -> str:
    tail = match.group(2)
    return match.group(1) + os.path.join(REPO, "profiles", tail)


def host_config(ini: str) -> str:
    return EXTENDS.sub(_extends, ini)


#: commands whose documented exit status is not only 0 (all others must exit 0)
STATUSES = [
    (r"(\S*/)?system-recipes plan\b", (0, 2), "plan: 0 nothing to change, 2 changes pending"),
    (
        r"rpmlint\b",
        (0, 64, 66),
        "rpmlint exits 64 when it reports errors, as the document says "
        "it does for any venv under /opt; test_release.py judges them",
    ),
]


def expected_statuses(text: str) -> tuple[int, ...]:
    for pattern, statuses, _why in STATUSES:
        if re.match(pattern, text):
            return statuses
    return (0,)


def working_directory(text: str) -> str:
    """Host commands (`-c host.cfg`) run beside the host configuration; a command naming a
    release file without its directory runs where the releases were written (dist/);
    everything else runs in the checkout."""
    if re.match(r"(\S*/)?(buildout|system-recipes (plan|explain))\b", text):
        return HOST_DIR
    if re.search(r"(^|\s)shop-[\d.]+(/|\.tar\.gz|-\d+\.\w+\.rpm)", text) and " dist/" not in text:
        return os.path.join(REPO, "dist")
    return REPO


def test_every_documented_command_is_found():
    everything = [c for d in DOCUMENTS for c in documented(d)]
    texts = [c.text for c in everything]
    assert any(t.startswith("sudo buildout -c") for t in texts), texts
    assert any(t.startswith("system-recipes release") for t in texts), texts
    assert all(any(t.startswith(p) for t in texts) for p in NOT_RUN), "a stale NOT_RUN entry"


def documents_with_commands() -> list[str]:
    return [d for d in DOCUMENTS if documented(d)]


@pytest.mark.sandbox
@pytest.mark.parametrize("document", documents_with_commands())
def test_documented_commands_run(document, example_rpms, tmp_path):
    commands = documented(document)
    # /root too: Debian's rpm database and pip's cache are below it
    with Sandbox(overlays=RPM_OVERLAYS + (REPO, "/root")) as box:
        box.run(["mkdir", "-p", HOST_DIR, "/var/lib/rpm"], check=True)
        if any("rpm -i " in c.text for c in commands):
            _release_2_0(box, tmp_path)  # the document installs its own release RPMs
        else:
            # the application the host.cfg configures, in the database a role names and in
            # rpm's own (a host.cfg that names none reads that one)
            for dbpath in dict.fromkeys(("/var/lib/rpm", DEFAULT_DBPATH)):
                rpm_install(box, example_rpms("1.0"), dbpath=dbpath)
        run_commands(box, commands)


def run_commands(box: Sandbox, commands: list[Command]) -> None:
    """Run ``commands`` in order in ``box``; AssertionError names the first that failed."""
    ini = None
    for command in commands:
        if command.ini is not None and command.ini != ini:
            ini = command.ini
            _write_host(box, host_config(ini))
        text = runnable(command)
        if text is None:
            continue
        where = f"{command.document} line {command.line}: {command.text}"
        if "shop-2.0-1." in text:  # built by _release_2_0, put where the document has it
            box.run(f"cp /var/tmp/two/*.rpm {REPO}/dist/", check=True)
        result = box.run(
            f"cd {shlex.quote(working_directory(text))} && {text}",
            timeout=900,
            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        )
        output = result.stdout + result.stderr
        assert result.returncode in expected_statuses(text), (
            f"{where}\nexit {result.returncode}\n{output[-3000:]}"
        )
        assert "Traceback" not in output and "scriptlet failed" not in output, (
            f"{where}\n{output[-3000:]}"
        )


def _write_host(box: Sandbox, text: str) -> None:
    """The document's host.cfg, and the template its README describes beside it (the README
    says an operator writes `templates/shop.ini.j2` there; a role's templates ship with it)."""
    box.run(f"mkdir -p {HOST_DIR}/templates && cat > {HOST_DIR}/host.cfg", input=text, check=True)
    box.run(
        f"cat > {HOST_DIR}/templates/shop.ini.j2", input="[server]\nport = {{ port }}\n", check=True
    )


def _release_2_0(box: Sandbox, tmp_path) -> None:
    """`rpm -U shop-2.0-1.ARCH.rpm` upgrades to a release the documents do not build: build it
    as they build 1.0."""
    source = project_copy(str(tmp_path / "project-2.0"), "2.0")
    box.run(["mkdir", "-p", "/var/tmp/two"], check=True)
    for args in (
        ["release", source, "-o", "/var/tmp/two", "--cache", os.path.join(CACHE, "pip")],
        ["rpm", "/var/tmp/two/shop-2.0.tar.gz", "-o", "/var/tmp/two"],
    ):
        box.run([os.path.join(BIN, "system-recipes"), *args], check=True, timeout=900)
    assert box.exists(f"/var/tmp/two/shop-2.0-1.{ARCH}.rpm")


@pytest.mark.sandbox
def test_a_broken_documented_command_fails_this_test(tmp_path):
    """The runner itself: a command that exits non-zero is caught, a plan's 2 is not."""
    document = tmp_path / "broken.md"
    document.write_text(
        "```ini\n[buildout]\nextends = /x/profiles/base.cfg\nparts =\n```\n\n"
        "```sh\nsudo system-recipes plan -c host.cfg   # exit 0\n"
        "system-recipes explain -c /nonexistent/host.cfg\n```\n"
    )
    commands = documented(str(document))
    assert [c.text for c in commands] == [
        "sudo system-recipes plan -c host.cfg",
        "system-recipes explain -c /nonexistent/host.cfg",
    ]
    with Sandbox() as box:
        run_commands(box, commands[:1])
        with pytest.raises(AssertionError, match="broken.md line 9: system-recipes explain"):
            run_commands(box, commands)
    assert expected_statuses("system-recipes plan -c host.cfg") == (0, 2)
    assert expected_statuses("buildout -c host.cfg") == (0,)
    command = Command("x.md", 1, "sudo rpm -i shop-1.0-1.x86_64.rpm", None)
    assert runnable(command).startswith("rpm -i --nodeps --dbpath /var/lib/rpm")
    assert working_directory(runnable(command)) == os.path.join(REPO, "dist")
    assert runnable(Command("x.md", 1, "python bench/converge.py --n 1 10 100", None)) is None
    assert (
        host_config("[buildout]\nextends = /opt/shop/profiles/base.cfg\n")
        == f"[buildout]\nextends = {REPO}/profiles/base.cfg\n"
    )
    assert sys.executable.startswith(BIN)

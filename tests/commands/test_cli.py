"""The `system-recipes` command line: every subcommand's --help, --version, the exit statuses
the README documents, and one line (never a traceback) for every mistake an operator can make
on it: a missing or undecodable configuration, a closed pipe."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess

import pytest
from support.paths import BASE_CFG, BUILDOUT, SYSTEM_RECIPES
from support.results import one_error_line

from system_recipes.commands.cli import build_parser

HOST = """
[buildout]
extends = {base}
parts = app-config

[system-recipes]
root = {root}

[app-config]
recipe = system_recipes:template
path = /etc/app/app.ini
text = port = {{ port }}
port = 8080
"""


SERVICE = """
[buildout]
extends = {base}
parts = svc

[system-recipes]
root = {root}

[svc]
recipe = system_recipes:service
command = /bin/sleep 1000
"""


def run(*args: str, cwd: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([SYSTEM_RECIPES, *args], text=True, cwd=cwd, timeout=300, **kwargs)


def subcommands() -> list[str]:
    """Every subcommand, as the parser knows them (a new one is tested without listing it)."""
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def test_the_subcommands_are_found():
    assert {"plan", "explain", "docs", "release", "rpm"} <= set(subcommands())


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: system-recipes {command}"), result.stdout
    assert result.stderr == ""


def test_help_and_version():
    result = run("--help")
    assert result.returncode == 0 and "{" in result.stdout and "--version" in result.stdout
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"system-recipes {importlib.metadata.version('system-recipes')}\n"


def test_a_usage_error_is_exit_1_not_plans_2():
    """plan's 2 means "changes pending": a usage error must not look like one."""
    for args in (["plan", "--no-such-option"], ["no-such-command"], []):
        result = run(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr and "error:" in result.stderr


@pytest.mark.sandbox
def test_plan_exit_statuses(scratch):
    scratch.write(HOST)
    assert run("plan", "-c", "host.cfg", cwd=scratch.directory).returncode == 2  # some changes
    converged = subprocess.run(
        [BUILDOUT, "-c", "host.cfg"], cwd=scratch.directory, capture_output=True, text=True
    )
    assert converged.returncode == 0, converged.stdout + converged.stderr
    result = run("plan", "-c", "host.cfg", cwd=scratch.directory)
    assert result.returncode == 0, result.stdout + result.stderr  # nothing to change
    assert one_error_line(
        run("plan", "-c", "host.cfg", "app-config:mode=999", cwd=scratch.directory),
        "[app-config] mode:",
    )
    assert one_error_line(
        run("plan", "-c", "host.cfg", "nonsense", cwd=scratch.directory)
    ).endswith("expected section:option=value")


def test_explain_exit_statuses(scratch):
    scratch.write(HOST)
    assert run("explain", "-c", "host.cfg", cwd=scratch.directory).returncode == 0
    assert one_error_line(
        run("explain", "-c", "host.cfg", "app-config", cwd=scratch.directory),
        "[app-config] is not a meta-recipe part",
    )


def test_docs_exit_statuses(tmp_path):
    result = run("docs", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(tmp_path / "template.md")


def test_release_and_rpm_bad_input_is_exit_1(tmp_path):
    assert one_error_line(
        run("release", str(tmp_path / "nothing"), "-o", str(tmp_path)), "[release] path:"
    )
    assert one_error_line(
        run("rpm", str(tmp_path / "nothing.tar.gz"), "-o", str(tmp_path)), "[rpm] tarball:"
    )


@pytest.mark.parametrize("command", ["plan", "explain", "converge"])
def test_a_missing_or_unreadable_configuration_is_one_line(command, tmp_path):
    assert one_error_line(run(command, "-c", str(tmp_path / "nothing.cfg"))) == (
        f"Error: {tmp_path}/nothing.cfg: No such file or directory "
        "(expected a readable configuration file)"
    )
    assert one_error_line(run(command, "-c", str(tmp_path))) == (
        f"Error: {tmp_path}: Is a directory (expected a readable configuration file)"
    )


@pytest.mark.parametrize("command", ["plan", "explain", "converge"])
def test_a_configuration_that_is_not_utf8_is_one_line(command, scratch):
    host = scratch.write(HOST)
    with open(host, "ab") as stream:
        stream.write(b"# caf\xe9\n")
    lines = open(host, "rb").read().splitlines()
    offset = len(b"\n".join(lines[:-1])) + 1 + len(b"# caf")
    assert one_error_line(run(command, "-c", host)) == (
        f"Error: {host}: byte {offset} (line {len(lines)}) is not utf-8: b'\\xe9' "
        "(expected a utf-8 text file)"
    )
    # in a file it extends
    other = scratch.write(f"[buildout]\nextends = {host}\n", name="other.cfg")
    assert one_error_line(run(command, "-c", other)).startswith(f"Error: {host}: byte {offset}")


def test_buildout_itself_on_a_configuration_it_cannot_read(scratch):
    """What the README says buildout prints (it parses before any extension loads)."""
    with open(os.path.join(os.path.dirname(BASE_CFG), os.pardir, "README.md")) as stream:
        readme = " ".join(stream.read().split())
    host = scratch.write(HOST)
    with open(host, "ab") as stream:
        stream.write(b"# caf\xe9\n")
    result = subprocess.run([BUILDOUT, "-c", host], capture_output=True, text=True)
    assert result.returncode == 1
    assert "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9" in result.stderr
    assert "UnicodeDecodeError: 'utf-8' codec can't decode byte" in readme
    broken = scratch.write(HOST.replace("[app-config]", "[app-config"))
    result = subprocess.run([BUILDOUT, "-c", broken], capture_output=True, text=True)
    assert result.returncode == 1
    said = result.stderr.strip().splitlines()
    assert (
        said[-2] == f"zc.buildout.configparser.ParsingError: File contains parsing errors: {broken}"
    )
    assert said[-1].strip() == "[line  9]: '[app-config\\n'", said[-1]
    assert "ParsingError: File contains parsing errors: /etc/shop/host.cfg" in readme
    missing = subprocess.run([BUILDOUT, "-c", host + ".gone"], capture_output=True, text=True)
    assert missing.stderr.splitlines() == [
        "While:",
        "  Initializing.",
        f"Error: Couldn't open {host}.gone",
    ]
    assert "`Error: Couldn't open /etc/shop/host.cfg` after `While: Initializing.`" in readme


def test_a_template_file_that_is_not_utf8_is_one_line(scratch):
    os.makedirs(os.path.join(scratch.directory, "templates"))
    with open(os.path.join(scratch.directory, "templates", "app.ini.j2"), "wb") as stream:
        stream.write(b"port = {{ port }}\n# caf\xe9\n")
    scratch.write(HOST.replace("text = port = {{ port }}", "template = app.ini.j2"))
    assert one_error_line(run("plan", "-c", "host.cfg", cwd=scratch.directory)) == (
        "Error: [app-config] template: template 'app.ini.j2': byte 23 (line 2) is not utf-8: "
        "b'\\xe9' (expected a utf-8 text file)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["explain", "-c", "host.cfg"],
        ["plan", "-c", "host.cfg"],
        ["--help"],
        ["plan", "--help"],
        ["docs", "-o", "DOCS"],
    ],
)
def test_a_closed_pipe_ends_quietly(scratch, tmp_path, args):
    """`system-recipes explain ... | head`: the reader is gone before anything is written. The
    output is dropped, no traceback; the exit status is the command's own (plan's 2 still
    says "changes pending"), or 141 when the pipe closed before there was one."""
    scratch.write(SERVICE)
    args = [str(tmp_path) if a == "DOCS" else a for a in args]
    expected = run(*args, cwd=scratch.directory).returncode
    read, write = os.pipe()
    os.close(read)
    try:
        result = run(*args, cwd=scratch.directory, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert result.stderr == "", result.stderr
    assert result.returncode in (expected, 141), (result.returncode, expected)


def test_a_misspelled_option_is_told_by_its_subcommand_with_the_closest_option():
    for argv, usage, closest in (
        (["plan", "--quite"], "usage: system-recipes plan ", "--quiet"),
        (["converge", "--fulll"], "usage: system-recipes converge ", "--full"),
        (
            ["fleet", "plan", "-m", "x.toml", "--forkss", "2"],
            "usage: system-recipes fleet plan ",
            "--forks",
        ),
    ):
        result = run(*argv)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(usage), result.stderr
        assert result.stderr.splitlines()[-1].endswith(
            f"error: unrecognized argument {argv[-2 if argv[-1] == '2' else -1]!r} "
            f"(did you mean {closest}?)"
        ), result.stderr


def test_converge_takes_prefixes_of_its_options_as_every_subcommand_does(tmp_path):
    """argparse's parser, not a hand-written one: ``--ful`` is ``--full``, ``--conf`` is
    ``--config``, and the help is argparse's."""
    missing = str(tmp_path / "nothing.cfg")
    result = run("converge", "--ful", "--conf", missing)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: {missing}: No such file or directory (expected a readable configuration file)"
    )
    helped = run("converge", "--help")
    assert helped.returncode == 0 and "--full" in helped.stdout and "-c CONFIG" in helped.stdout
    assert run("converge", "nonsense").stderr.splitlines()[-1] == (
        "system-recipes converge: error: unrecognized argument 'nonsense' "
        "(expected [section:]option=value)"
    )


def test_explain_without_meta_sections_says_so_and_names_the_level_1_parts(scratch):
    scratch.write(HOST)
    result = run("explain", "-c", "host.cfg", cwd=scratch.directory)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "explain: host.cfg has no meta-recipe section to explain; its 1 part is level-1: "
        "app-config (`system-recipes plan -c host.cfg` shows what it writes)\n"
    )


def test_an_override_or_a_refinement_of_a_section_no_part_uses_is_an_error(scratch):
    """Not "0 files to change": the closest section a part uses is named."""
    scratch.write(HOST)
    for argv in (
        [SYSTEM_RECIPES, "plan", "-c", "host.cfg", "app-confg:port=8081"],
        [SYSTEM_RECIPES, "converge", "-c", "host.cfg", "app-confg:port=8081"],
        [BUILDOUT, "-c", "host.cfg", "app-confg:port=8081"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, cwd=scratch.directory)
        assert (result.returncode, result.stderr) == (
            1,
            "Error: [app-confg] port: set on the command line, but no part uses this section; "
            "did you mean 'app-config'? (expected [section:]option=value naming a part's "
            "section)\n",
        ), argv
    scratch.write(HOST + "\n[app-confg]\nport = 8081\n")
    result = run("plan", "-c", "host.cfg", cwd=scratch.directory)
    assert (result.returncode, result.stderr) == (
        1,
        "Error: [app-confg]: no part uses this section; did you mean 'app-config'? (expected a "
        "part in [buildout] parts, a section a part refers to, or one it refines)\n",
    )
    assert not os.path.exists(scratch.path("/etc/app"))
    # a part that parts leaves out is switched off, and a macro is read through <=
    scratch.write(
        HOST.replace("port = 8080\n", "<= common\n")
        + "\n[off]\nrecipe = system_recipes:template\npath = /etc/app/off.ini\ntext = x\n"
        + "\n[common]\nport = 8080\n"
    )
    assert run("plan", "-c", "host.cfg", cwd=scratch.directory).returncode == 2


def test_a_run_with_no_parts_removes_everything_whatever_the_sections(scratch):
    """``parts =`` (how an RPM's %preun removes what the host buildout wrote) leaves every
    section unused: that is no mistake."""
    scratch.write(HOST + "\n[app-extra]\nport = 1\n")
    result = run("plan", "-c", "host.cfg", "buildout:parts=", cwd=scratch.directory)
    assert result.returncode == 0, result.stderr

"""Every entry point on a corpus of broken inputs: exit 1, no traceback, at most three lines on
stderr, and the file (or section) named.

The corpus is what operators get wrong most: a configuration file's syntax (a header without
``]``, a line without ``=``, an indented line with no option before it, an option before any
section), a byte that is not UTF-8, a missing file, a directory where a file is expected, a
file the user may not read, an ``extends`` that is missing. The entry points are ``plan``,
``explain``, ``converge`` and ``buildout`` for a host.cfg, ``fleet-host`` for its stdin, and
every ``fleet`` command for a system model. ``buildout`` reads its files before any extension
loads: what it prints for those is documented in the README and checked there (test_cli).
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
from support.paths import BASE_CFG, BUILDOUT, SYSTEM_RECIPES

HOST = """\
[buildout]
extends = {base}
parts = app-config

[system-recipes]
root = {root}

[app-config]
recipe = system_recipes:template
path = /etc/app/app.ini
text = port = {{{{ port }}}}
port = 8080
"""

#: name -> (how host.cfg is broken, what the error line says after "Error: ")
HOST_CASES = {
    "header without ]": (
        lambda text: text.replace("[app-config]", "[app-config"),
        "host.cfg line 8: '[app-config' is not a section header (expected [NAME])",
    ),
    "line without =": (
        lambda text: text.replace("port = 8080", "port 8080"),
        "host.cfg line 12: 'port 8080' is not an option (expected NAME = VALUE)",
    ),
    "indented before any option": (
        lambda text: text.replace("[app-config]\n", "[app-config]\n  user = app\n"),
        "host.cfg line 9: '  user = app' is indented with no option before it "
        "(expected an option's continuation, or no indentation)",
    ),
    "option before any section": (
        lambda text: "port = 8080\n" + text,
        "host.cfg line 1: 'port = 8080' comes before any section (expected a [NAME] header first)",
    ),
    "not utf-8": (
        lambda text: text.replace("port = 8080", "port = 8080 caf\udce9"),
        "host.cfg: byte {offset} (line 12) is not utf-8: b'\\xe9' (expected a utf-8 text file)",
    ),
    "missing extends": (
        lambda text: text.replace(BASE_CFG, "/nonexistent/base.cfg"),
        "/nonexistent/base.cfg: No such file or directory (expected a readable configuration file)",
    ),
    "missing": (
        None,
        "host.cfg: No such file or directory (expected a readable configuration file)",
    ),
    "a directory": (None, "host.cfg: Is a directory (expected a readable configuration file)"),
    "unreadable": (None, "host.cfg: Permission denied (expected a readable configuration file)"),
}
#: what plain buildout cannot say in one line (it reads before the extension loads); the
#: README says what it prints instead (test_cli.test_buildout_itself_on_a_configuration_...)
BUILDOUT_READS_FIRST = {
    "header without ]",
    "line without =",
    "indented before any option",
    "option before any section",
    "not utf-8",
    "missing extends",
    "a directory",
    "unreadable",
}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def write_case(directory: str, case: str) -> str:
    """host.cfg in ``directory``, broken as ``case`` says; its root is a scratch directory."""
    path = os.path.join(directory, "host.cfg")
    breaks, _ = HOST_CASES[case]
    if case == "a directory":
        os.mkdir(path)
        return path
    if case == "missing":
        return path
    text = HOST.format(base=BASE_CFG, root=os.path.join(directory, "root"))
    if breaks is not None:
        text = breaks(text)
    with open(path, "wb") as stream:
        stream.write(text.encode("utf-8", "surrogateescape"))
    if case == "unreadable":
        os.chmod(path, 0o600)  # root's: the command runs as nobody
    return path


def expected_line(path: str, case: str) -> str:
    line = HOST_CASES[case][1]
    if case == "not utf-8":
        with open(path, "rb") as stream:
            line = line.format(offset=stream.read().index(b"\xe9"))
    return "Error: " + line


def one_line(result: subprocess.CompletedProcess) -> str:
    """The command's only line on stderr, checked as the issue asks of every entry point."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert 1 <= len(lines) <= 3, result.stderr
    return lines[-1]


@pytest.fixture
def workdir(tmp_path):
    directory = tmp_path / "work"
    directory.mkdir()
    os.chmod(tmp_path, 0o755)  # nobody may enter it (pytest makes its directories 0700)
    os.chmod(directory, 0o755)
    (directory / "root").mkdir()
    return str(directory)


@pytest.mark.parametrize("case", sorted(HOST_CASES))
@pytest.mark.parametrize("command", ["plan", "explain", "converge", "buildout"])
def test_a_host_configuration_that_cannot_be_read_is_one_line(command, case, workdir):
    path = write_case(workdir, case)
    before = sorted(os.walk(workdir))
    argv = [BUILDOUT] if command == "buildout" else [SYSTEM_RECIPES, command]
    argv = [*(NOBODY if case == "unreadable" else []), *argv, "-c", "host.cfg"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=workdir, timeout=300)
    if command == "buildout" and case in BUILDOUT_READS_FIRST:
        assert result.returncode == 1  # a traceback, as the README says
        return
    if command == "buildout":  # a missing host.cfg: buildout's own words, the file named
        assert one_line(result) == f"Error: Couldn't open {path}"
        return
    assert one_line(result) == expected_line(path, case)
    assert sorted(os.walk(workdir)) == before  # nothing written, not even a state directory


def test_a_misspelled_recipe_and_a_bad_value_are_one_line_from_buildout_too(workdir):
    """Once the files are read, every entry point says the same line, without buildout's
    ``While:`` context (which names the part being installed, not always the one at fault)."""
    text = HOST.format(base=BASE_CFG, root=os.path.join(workdir, "root"))
    cases = {
        "recipe = system_recipes:templat": "Error: [app-config] recipe: ",
        "mode = 999": "Error: [app-config] mode: ",
    }
    for extra, start in cases.items():
        with open(os.path.join(workdir, "host.cfg"), "w") as stream:
            stream.write(text.replace("port = 8080", f"port = 8080\n{extra}"))
        for argv in ([BUILDOUT], [SYSTEM_RECIPES, "converge"], [SYSTEM_RECIPES, "plan"]):
            result = subprocess.run(
                [*argv, "-c", "host.cfg"], capture_output=True, text=True, cwd=workdir, timeout=300
            )
            assert one_line(result).startswith(start), (argv, result.stderr)
            assert "While:" not in result.stderr


#: name -> (the model file's bytes, or None for a missing file / "dir", the line's start)
MODEL_CASES = {
    "not toml": (b'[system]\nname = "shop"\n[hosts\n', "not valid TOML: Expected ']'"),
    "not utf-8": (b'[system]\nname = "caf\xe9"\n', "byte 20 (line 2) is not utf-8: b'\\xe9'"),
    "missing": (None, "No such file or directory"),
    "a directory": ("dir", "Is a directory"),
    "unreadable": (b'[system]\nname = "shop"\n', "Permission denied"),
}
FLEET_COMMANDS = {
    "compile": [],
    "plan": [],
    "apply": [],
    "status": [],
    "explain": ["web1"],
    "export": None,  # fleet export ansible DIR
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
@pytest.mark.parametrize("command", sorted(FLEET_COMMANDS))
def test_a_system_model_that_cannot_be_read_is_one_line(command, case, workdir):
    data, start = MODEL_CASES[case]
    model = os.path.join(workdir, "shop.toml")
    if data == "dir":
        os.mkdir(model)
    elif data is not None:
        with open(model, "wb") as stream:
            stream.write(data)
        os.chmod(model, 0o600)
    before = sorted(os.walk(workdir))
    if command == "export":
        argv = ["fleet", "export", "ansible", os.path.join(workdir, "out"), "-m", "shop.toml"]
    else:
        argv = ["fleet", command, "-m", "shop.toml", *FLEET_COMMANDS[command]]
    argv = [*(NOBODY if case == "unreadable" else []), SYSTEM_RECIPES, *argv]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=workdir, timeout=300)
    line = one_line(result)
    assert line.startswith("Error: shop.toml: " + start), line
    assert sorted(os.walk(workdir)) == before


FLEET_HOST_INPUTS = {
    "not json": (b"hello\n[buildout]\n", "the first line is not JSON"),
    "not utf-8": (b'{"model": "sh\xe9p"}\n[buildout]\n', "the header is not utf-8 (byte 13)"),
    "no host.cfg": (b'{"model": "shop", "revision": 1, "digest": "x"}\n', "no host.cfg"),
}


@pytest.mark.parametrize("case", sorted(FLEET_HOST_INPUTS))
@pytest.mark.parametrize("action", ["plan", "apply"])
def test_fleet_host_on_broken_input_is_one_line(action, case):
    """Nothing is read but stdin before these refusals, so the machine's own /etc is safe."""
    data, start = FLEET_HOST_INPUTS[case]
    result = subprocess.run(
        [SYSTEM_RECIPES, "fleet-host", action], input=data, capture_output=True, timeout=120
    )
    result = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )
    assert start in one_line(result), result.stderr


@pytest.mark.sandbox
@pytest.mark.parametrize("case", ["header without ]", "not utf-8"])
def test_fleet_host_on_a_broken_host_configuration_is_one_line(case, sandbox, tmp_path):
    """The host.cfg after a valid header: fleet-host writes its candidate under /etc, so this
    runs in a sandbox."""
    text = textwrap.dedent(HOST).format(base=BASE_CFG, root="/")
    broken = HOST_CASES[case][0](text).encode("utf-8", "surrogateescape")
    header = b'{"model": "shop", "revision": 1, "digest": "x", "host": "web1"}\n'
    result = sandbox.run(
        [SYSTEM_RECIPES, "fleet-host", "plan"], input=header + broken, text=False, timeout=120
    )
    stderr, stdout = result.stderr.decode(), result.stdout.decode()
    assert result.returncode == 1, (stdout, stderr)
    assert "Traceback" not in stderr + stdout
    assert len(stderr.strip().splitlines()) <= 3, stderr
    expected = {
        "header without ]": "host.cfg line 8: '[app-config' is not a section header",
        "not utf-8": f"host.cfg: byte {broken.find(bytes([0xE9]))} (line 12) is not utf-8",
    }
    assert expected[case] in stderr, stderr

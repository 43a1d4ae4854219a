"""The configuration examples the documentation shows, found and made runnable.

Two sources: the ``Example::`` block of every recipe's module docstring (the recipes are the
``zc.buildout`` entry points of the installed distribution, the one list of recipes), and the
```ini / ```cfg blocks of README.md, docs/ and profiles/README.md. An example is run as a host
configuration below a scratch root, given what it refers to and does not define itself.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass
from importlib.metadata import entry_points

import zc.buildout.configparser

from support.paths import BASE_CFG, REPO
from support.rpmbuild import force_debian

DOCUMENTS = [
    "README.md",
    *sorted(
        os.path.relpath(p, REPO)
        for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)
    ),
    "profiles/README.md",
]
FENCES = ("ini", "cfg")
#: ``extends = .../profiles/X.cfg`` (an installed copy, or relative to the profiles): this
#: checkout's profiles stand for it
EXTENDS = re.compile(r"^(extends[ \t]*=[ \t]*)\S*?((?:roles/|hosts/)?[\w.-]+\.cfg)[ \t]*$", re.M)
#: a link to a profile just before a block: the block is an excerpt of that file
EXCERPT_OF = re.compile(r"\]\([^)]*?profiles/((?:roles/|hosts/)?[\w.-]+\.cfg)\)")
REFERENCE = re.compile(r"\$\{([\w.-]+):[\w.-]+\}")
#: rpm's own database (Debian's rpm keeps it in ~/.rpmdb): a package without ``dbpath`` reads it
DEFAULT_DBPATH = subprocess.run(
    ["rpm", "--eval", "%_dbpath"], capture_output=True, text=True
).stdout.strip()
PROGRAM = re.compile(r"(?<![\w$}])(/opt/[\w.-]+/bin/[\w.-]+)")


@dataclass
class Example:
    name: str  # where it is documented: "system_recipes:cron" or "README.md line 58"
    text: str  # the buildout sections
    excerpt_of: str | None = None  # a profile (relative to profiles/) the block quotes
    problem: str | None = None  # why there is no example to run (the test fails with it)

    def profile_text(self) -> str:
        """The example and every profile it extends (what decides what it needs)."""
        text = self.text
        files = [self.excerpt_of] if self.excerpt_of else []
        files += [m.group(2) for m in EXTENDS.finditer(self.text)]
        # a compiled host.cfg extends the installed profiles, one per line
        files += re.findall(r"/opt/[\w.-]+/profiles/((?:roles/|hosts/)?[\w.-]+\.cfg)", self.text)
        seen = set()
        while files:
            name = files.pop()
            path = os.path.join(REPO, "profiles", name)
            if name in seen or not os.path.exists(path):
                continue
            seen.add(name)
            with open(path, encoding="utf-8") as stream:
                more = stream.read()
            text += "\n" + more
            files += [m.group(2) for m in EXTENDS.finditer(more)]
        return text

    def needs_package(self) -> bool:
        """The example reads the facts of the example application's RPM (package ``shop``)."""
        text = self.profile_text()
        return bool(
            re.search(r"^package\s*=\s*shop\b|recipe\s*=\s*system_recipes:package", text, re.M)
        )

    def needs_root(self) -> bool:
        """rpm installs below a root only as root; nagios4 -v reads root's resource.cfg."""
        return self.needs_package() or "system_recipes:nagios" in self.profile_text()


def recipe_examples() -> list[Example]:
    found = []
    for entry in sorted(entry_points(group="zc.buildout"), key=lambda e: e.name):
        if not entry.value.startswith("system_recipes."):
            continue
        name = f"{entry.group}:{entry.name} ({entry.module})"
        try:
            doc = importlib.import_module(entry.module).__doc__ or ""
        except ImportError as error:  # installed metadata ahead of the code: fail that one
            found.append(Example(name, "", problem=f"cannot import {entry.module}: {error}"))
            continue
        blocks = doc.split("Example::")[1:]
        if not blocks:
            found.append(Example(name, "", problem="no Example:: in the module docstring"))
        for block in blocks:
            found.append(Example(name, literal(block)))
    return found


def literal(after: str) -> str:
    """The indented literal block after ``Example::`` in a docstring."""
    lines = after.split("\n")[1:]
    block = []
    for line in lines:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip("\n") + "\n"


def document_examples() -> list[Example]:
    found = []
    for document in DOCUMENTS:
        with open(os.path.join(REPO, document), encoding="utf-8") as stream:
            lines = stream.read().splitlines()
        fence, block, prose, start = None, [], [], 0
        for number, line in enumerate(lines, 1):
            if fence is None:
                if line.startswith("```"):
                    fence, block, start = line[3:].strip(), [], number
                else:
                    prose.append(line)
                continue
            if line.startswith("```"):
                if fence in FENCES:
                    excerpt = EXCERPT_OF.findall("\n".join(prose[-6:]))
                    found.append(
                        Example(
                            f"{document} line {start}",
                            "\n".join(block) + "\n",
                            excerpt[-1] if excerpt else None,
                        )
                    )
                fence, prose = None, []
                continue
            block.append(line)
    return found


def sections(text: str, name: str = "<example>") -> dict[str, dict[str, str]]:
    """buildout's own reading of configuration text: {section: {option: value}}."""
    import io

    return zc.buildout.configparser.parse(io.StringIO(text), name)


#: the profiles as a host has them (a release installs them in /opt/NAME/profiles)
INSTALLED_PROFILES = re.compile(r"/opt/[\w.-]+/profiles/")


def rewrite_extends(text: str) -> str:
    text = INSTALLED_PROFILES.sub(os.path.join(REPO, "profiles") + "/", text)
    return EXTENDS.sub(lambda m: m.group(1) + os.path.join(REPO, "profiles", m.group(2)), text)


def parts_of(text: str) -> list[str]:
    return [name for name, options in sections(text).items() if "recipe" in options]


def host_config(example: Example, root: str, directory: str) -> str:
    """A host configuration below ``root`` that runs ``example`` (written in ``directory``)."""
    settings = os.path.join(directory, "root.cfg")
    with open(settings, "w", encoding="utf-8") as stream:
        stream.write(f"[system-recipes]\nroot = {root}\n")
    body = example.text
    if example.excerpt_of:  # run the file it quotes
        body = f"[buildout]\nextends = {example.excerpt_of}\n"
    body = rewrite_extends(body)
    read = sections(body)
    if "buildout" in read:
        inner = os.path.join(directory, "example.cfg")
        with open(inner, "w", encoding="utf-8") as stream:
            stream.write(body)
        text = f"[buildout]\nextends = {inner} {settings}\n"
    else:
        missing = sorted(
            {m.group(1) for m in REFERENCE.finditer(body)}
            - set(read)
            - {"buildout", "system-recipes"}
        )
        # a ${app:...} of a section the example does not define: an application's deployment
        extra = "".join(f"\n[{name}]\nrecipe = system_recipes:deployment\n" for name in missing)
        body += extra
        text = (
            f"[buildout]\nextends = {BASE_CFG} {settings}\n"
            f"parts = {' '.join(parts_of(body))}\n" + body
        )
    config = os.path.join(directory, "host.cfg")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(text)
    write_templates(read, os.path.join(directory, "templates"))
    return config


def write_templates(read: dict[str, dict[str, str]], directory: str) -> None:
    """Each template a section of the example names, beside the host configuration (where
    the example's own host would keep it): reading every variable its section gives it, as
    a template must."""
    from system_recipes.recipes import template

    for name, options in read.items():
        recipe = options.get("recipe", "")
        if recipe == "system_recipes:template" and "template" in options:
            wanted = options["template"]
            variables = [o for o in options if o not in template.SCHEMA.options and o != "recipe"]
        elif recipe == "system_recipes:service" and "config" in options:
            wanted = options["config"]
            variables = list(read.get(f"{name}-config", {}))
        else:
            continue
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, wanted), "w", encoding="utf-8") as stream:
            stream.write("".join(f"{v} = {{{{ {v.replace('-', '_')} }}}}\n" for v in variables))


def install_references(example: Example, root: str, rpm: str | None) -> None:
    """Below ``root``: the example application's RPM when the example reads its facts, and a
    stand-in program for each /opt/NAME/bin/PROGRAM it names that nothing installs."""
    if rpm is not None:  # in the database the roles name, and in rpm's own (~/.rpmdb here)
        for dbpath in dict.fromkeys(("/var/lib/rpm", DEFAULT_DBPATH)):
            command = ["rpm", "--root", root, "--dbpath", dbpath, "-i", "--nodeps", "--noscripts"]
            subprocess.run(
                command + (["--force-debian"] if force_debian() else []) + [rpm],
                check=True,
                capture_output=True,
            )
    for program in PROGRAM.findall(example.text):
        below = os.path.join(root, program.lstrip("/"))
        if not os.path.exists(below):
            os.makedirs(os.path.dirname(below), exist_ok=True)
            with open(below, "w") as stream:
                stream.write("#!/bin/sh\nexit 0\n")
            os.chmod(below, 0o755)

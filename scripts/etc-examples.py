#!/usr/bin/env python3
"""Regenerate etc-examples/: the exact tree each example host profile writes.

    .venv/bin/python scripts/etc-examples.py           # rewrite etc-examples/
    .venv/bin/python scripts/etc-examples.py --check   # exit 1 and show a diff when stale

Each profiles/hosts/*.cfg is run with the real buildout into a fresh scratch root (its account
files copied from this machine, the example application's RPM installed into its rpm database
when the profile reads package facts). What the run wrote -- everything but the state
directory, the account files and the package's own files -- is copied to etc-examples/HOST/,
and etc-examples/HOST.tree lists every path with its mode and owner (git keeps neither).
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from support.host import link_nagios_plugins, make_scratch_root  # noqa: E402
from support.paths import BUILDOUT  # noqa: E402
from support.rpmbuild import build_example_rpm, install_below_root  # noqa: E402

HOSTS = os.path.join(REPO, "profiles", "hosts")
EXAMPLES = os.path.join(REPO, "etc-examples")
NOT_WRITTEN_BY_THE_PROFILE = (
    "var/lib/system-recipes",
    "var/lib/rpm",
    "opt",
    "usr",
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "etc/os-release",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid",
    "etc/subgid",
    "etc/subuid-",
    "etc/subgid-",
)


def names(root: str, table: str) -> dict[int, str]:
    result = {}
    with open(os.path.join(root, "etc", table)) as stream:
        for line in stream:
            fields = line.split(":")
            result[int(fields[2])] = fields[0]
    return result


def install_example_package(root: str, workdir: str) -> None:
    rpm = build_example_rpm("1.0", "1", workdir)
    install_below_root(root, rpm)


def generate(host: str, out: str, workdir: str) -> None:
    root = make_scratch_root(os.path.join(workdir, "root"))
    link_nagios_plugins(root)
    config = os.path.join(HOSTS, host + ".cfg")
    with open(config) as stream:
        if "system_recipes:package" in stream.read() or host != "demo":
            install_example_package(root, workdir)
    result = subprocess.run(
        [BUILDOUT, "-c", config, f"system-recipes:root={root}"],
        capture_output=True,
        text=True,
        cwd=HOSTS,
    )
    if result.returncode:
        raise SystemExit(f"{host}: buildout failed:\n{result.stdout}{result.stderr}")
    users, groups = names(root, "passwd"), names(root, "group")
    listing = []
    target = os.path.join(out, host)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if os.path.normpath(os.path.join(rel_dir, d)) not in NOT_WRITTEN_BY_THE_PROFILE
        )
        for name in sorted(dirnames + filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in NOT_WRITTEN_BY_THE_PROFILE:
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            owner = f"{users.get(st.st_uid, st.st_uid)}:{groups.get(st.st_gid, st.st_gid)}"
            listing.append(
                f"{st.st_mode & 0o7777:04o} {owner} /{rel}" + ("/" if os.path.isdir(full) else "")
            )
            if os.path.isfile(full):
                os.makedirs(os.path.join(target, os.path.dirname(rel)), exist_ok=True)
                shutil.copyfile(full, os.path.join(target, rel))
    with open(os.path.join(out, host + ".tree"), "w") as stream:
        stream.write("\n".join(sorted(listing, key=lambda line: line.split(" ", 2)[2])) + "\n")


def generate_all(out: str) -> list[str]:
    hosts = sorted(f[:-4] for f in os.listdir(HOSTS) if f.endswith(".cfg"))
    for host in hosts:
        with tempfile.TemporaryDirectory(prefix=f"etc-examples-{host}-") as workdir:
            generate(host, out, workdir)
    return hosts


def differences(left: str, right: str) -> list[str]:
    lines = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        for name in cmp.left_only:
            lines.append(f"only in etc-examples: {prefix}{name}")
        for name in cmp.right_only:
            lines.append(f"only in fresh output: {prefix}{name}")
        for name in cmp.diff_files:
            with open(os.path.join(cmp.left, name)) as a, open(os.path.join(cmp.right, name)) as b:
                lines.extend(
                    difflib.unified_diff(
                        a.read().splitlines(),
                        b.read().splitlines(),
                        f"etc-examples/{prefix}{name}",
                        f"fresh/{prefix}{name}",
                        lineterm="",
                    )
                )
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right, ignore=[]), "")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(EXAMPLES, ignore_errors=True)
        os.makedirs(EXAMPLES)
        for host in generate_all(EXAMPLES):
            print(f"wrote etc-examples/{host}/ and etc-examples/{host}.tree")
        return 0
    with tempfile.TemporaryDirectory(prefix="etc-examples-fresh-") as fresh:
        generate_all(fresh)
        problems = differences(EXAMPLES, fresh)
    for line in problems:
        print(line)
    if problems:
        print("etc-examples/ is stale: run `.venv/bin/python scripts/etc-examples.py`")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The floor: a plain render-compare-write loop over the same five files per service.

    python bench/floor.py SPEC.json [--plan]

SPEC.json (written by bench/converge.py): ``{"root": ..., "templates": ..., "files": [[kind,
template, host path, mode, {variables}, group], ...], "directories": [host path, ...]}``. The
directories are made first (the meta shape's deployment part makes a service's lib and run
directories). Each file is rendered with jinja2 (the settings
system-recipes uses), compared with what is on disk, and written only when it differs: temp
file in the target directory, fsync, rename -- the same atomic write, without validation,
journal, manifest or buildout. ``--plan`` only counts what would change. Prints one summary
line: ``floor: N files changed``.
"""

from __future__ import annotations

import grp
import json
import os
import sys

import jinja2


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as stream:
        spec = json.load(stream)
    plan = "--plan" in argv[2:]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(spec["templates"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    root = spec["root"]
    if not plan:
        for directory in spec["directories"]:
            os.makedirs(os.path.join(root, directory.lstrip("/")), exist_ok=True)
    changed = 0
    for _kind, template, path, mode, variables, group in spec["files"]:
        mode = int(mode, 8)
        content = env.get_template(template).render(**variables).encode("utf-8")
        target = os.path.join(root, path.lstrip("/"))
        try:
            with open(target, "rb") as stream:
                if stream.read() == content:
                    continue
        except FileNotFoundError:
            pass
        changed += 1
        if plan:
            continue
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, "." + os.path.basename(target) + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            os.write(fd, content)
            os.fchown(fd, 0, grp.getgrnam(group).gr_gid)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    print(
        f"floor: {changed} file{'s' if changed != 1 else ''} {'to change' if plan else 'changed'}"
    )
    return 2 if plan and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

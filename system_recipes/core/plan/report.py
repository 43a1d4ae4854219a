"""Output for people: one line per part, a summary, diffs on request (secrets masked)."""

from __future__ import annotations

import difflib
import os
import sys
import threading
from typing import TextIO

from system_recipes.core.declare.specs import Expansion
from system_recipes.core.plan.actions import Action, Plan

VERBS = {
    "create": "create",
    "update": "update",
    "chmod": "owner/mode",
    "remove": "remove",
    "keep": "keep",
    "mkdir": "mkdir",
    "rmdir": "rmdir",
    "account": "add",
    "forget": "forget",
    "link": "link",
    "relink": "relink",
    "unlink": "unlink",
    "drift": "drift",
    "facts": "record",
    "restore": "restore",
}
LINK_VERBS = ("link", "relink", "unlink")


_SAYING = threading.Lock()


def say(line: str) -> None:
    """Print one line, whole: the fleet's host threads say lines at the same time, and
    ``print`` writes a line and its newline separately (two hosts' lines ran together). A
    reader that went away (``| head``) must not stop a run half-way through its reloads: the
    rest of the output goes nowhere."""
    try:
        with _SAYING:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def diff(action: Action) -> str:
    old = action.old.data if action.old is not None and action.old.data is not None else b""
    new = action.file.content if action.file is not None and action.verb != "remove" else b""
    if action.secret:
        return f"    (secret: content of {action.path} not shown)\n"
    try:
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return f"    (binary content of {action.path} not shown)\n"
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"a{action.path}" if action.old else "/dev/null",
        tofile=f"b{action.path}" if action.verb != "remove" else "/dev/null",
    )
    text = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    return text


def describe(action: Action) -> str:
    text = f"{VERBS.get(action.verb, action.verb)} {action.path}"
    if action.link is not None:
        text += f" -> {action.link.target}"
    if action.note:
        text += f" ({action.note})"
    return text


def part_lines(plan: Plan, tense: str, expansions: dict[str, Expansion] | None = None) -> list[str]:
    """One line per part: ``  [web-logrotate] updated: update /etc/logrotate.d/web``; a meta
    section's line (before its generated parts) sums them up."""
    lines = []
    expansions = expansions or {}
    width = max((len(p) for p in [*plan.parts, *expansions]), default=0) + 2
    firsts = {next(iter(e.sections)): name for name, e in expansions.items() if e.sections}
    drift: dict[str, list[Action]] = {}
    for action in plan.drift:
        drift.setdefault(action.part, []).append(action)
    for part, status in plan.parts.items():
        if part in firsts:
            lines.append(_meta_line(plan, firsts[part], expansions[firsts[part]], width, tense))
        actions = plan.for_part(part) + drift.get(part, [])
        label = f"[{part}]".ljust(width)
        shown = (
            status
            if tense == "past"
            else {"created": "create", "updated": "update", "removed": "remove"}.get(status, status)
        )
        details = "; ".join(describe(a) for a in actions)
        lines.append(f"  {label} {shown}" + (f": {details}" if details else ""))
    return lines


def _meta_line(plan: Plan, name: str, expansion: Expansion, width: int, tense: str) -> str:
    """A drifted part is an unchanged one (its file is left as edited), here as in the summary:
    ``[web] unchanged: 4 generated parts; drifted: web-config (left as edited)``."""
    generated = [s for s in expansion.sections if s in plan.parts]
    changed = [s for s in generated if plan.parts[s] not in ("unchanged", "drifted")]
    drifted = sorted({a.part for a in plan.drift} & set(generated), key=generated.index)
    if not changed:
        status = "unchanged"
    elif all(plan.parts[s] == "created" for s in generated):
        status = "created" if tense == "past" else "create"
    else:
        status = "updated" if tense == "past" else "update"
    details = f"{len(generated)} generated parts"
    if changed and status not in ("created", "create"):
        details += f", changed: {', '.join(changed)}"
    if drifted:
        details += f"; drifted: {', '.join(drifted)} (left as edited)"
    return f"  {f'[{name}]'.ljust(width)} {status}: {details}"


def summary(plan: Plan, reloads: str, tense: str) -> str:
    """Parts by what the run did to them, files changed, files drifted. A part whose only news
    is drift is counted unchanged (the run leaves its files as edited), and each drifted file
    is counted after the files changed: ``4 unchanged; 0 files changed; 1 file drifted (left
    as edited)``."""
    counts = {k: 0 for k in ("created", "updated", "removed", "unchanged")}
    for status in plan.parts.values():
        counts[status] = counts.get(status, 0) + 1
    counts["unchanged"] += counts.pop("drifted", 0)
    drifted = len(plan.drift)
    drift = (
        f"; {drifted} file{'s' if drifted != 1 else ''} drifted (left as edited)" if drifted else ""
    )
    files = sum(
        1 for a in plan.actions if a.verb in ("create", "update", "chmod", "remove", *LINK_VERBS)
    )
    head = "system-recipes:" if tense == "past" else "plan:"
    return (
        f"{head} {counts['created']} created, {counts['updated']} updated, "
        f"{counts['removed']} removed, {counts['unchanged']} unchanged; "
        f"{files} file{'s' if files != 1 else ''} {'changed' if tense == 'past' else 'to change'}"
        f"{drift}; reloads: {reloads}"
    )


def link_diff(action: Action) -> str:
    """A symlink has no content to diff: show where it pointed and where it will point."""
    old = action.old.target if action.old is not None and action.old.kind == "symlink" else None
    new = action.link.target if action.link is not None else None
    lines = [f"    {action.verb} {action.path}"]
    if old is not None:
        lines.append(f"    -> {old} (before)")
    if new is not None:
        lines.append(f"    -> {new}")
    return "\n".join(lines) + "\n"


def colour_wanted(stream: TextIO | None = None) -> bool:
    """Colour on a terminal only: never when piped, when ``NO_COLOR`` is set (no-color.org:
    to anything but nothing) or on a ``TERM=dumb`` terminal."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


#: the style of a diff line by how it starts (the first that matches), as git colours them;
#: the file names (``--- a/...``, ``+++ b/...``) only before the first hunk
HEADER_STYLES = (("+++ ", "bold"), ("--- ", "bold"))
DIFF_STYLES = (("@@", "cyan"), ("+", "green"), ("-", "red"), ("\\ ", "dim"))


def coloured(text: str) -> str:
    """A diff's lines in rich's styles (ANSI escapes): file names bold, hunks cyan, added
    lines green, removed lines red. The text itself is unchanged (no markup is read in it)."""
    from rich.color import ColorSystem
    from rich.style import Style

    styles: dict[str, Style] = {}
    lines = []
    header = True
    for line in text.split("\n"):
        header = header and not line.startswith("@@")
        starts = (HEADER_STYLES if header else ()) + DIFF_STYLES
        name = next((s for start, s in starts if line.startswith(start)), None)
        if name is None:
            lines.append(line)
            continue
        style = styles.setdefault(name, Style.parse(name))
        lines.append(style.render(line, color_system=ColorSystem.STANDARD))
    return "\n".join(lines)


def say_diffs(plan: Plan) -> None:
    """Say each diff of ``plan``, coloured on a terminal (:func:`colour_wanted`)."""
    colour = colour_wanted()
    for text in diffs(plan):
        text = text.rstrip("\n")
        say(coloured(text) if colour else text)


def diffs(plan: Plan) -> list[str]:
    return [
        link_diff(a) if a.verb in LINK_VERBS else diff(a)
        for a in plan.actions
        if a.verb in ("create", "update", "remove", *LINK_VERBS)
    ] + [diff(a) for a in plan.drift]

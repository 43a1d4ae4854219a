"""Why ssh or sudo failed, as one line about the host: a host key that is not the pinned one
(and the ``fleet trust`` command that pins the right one), no key pinned, a login refused, an
unreachable host, or sudo asking for a password (and the sudoers rule fleet-host needs).

Separate from :mod:`.transport` (running the commands) because it is the wording: what ssh
and sudo said, turned into one line an operator can act on, beside the sudoers rule it quotes.
"""

from __future__ import annotations

import re
import shlex
from typing import Protocol


# what the wording needs of a transport.Connection, declared here (read-only): transport
# imports this module, and an import back (even for types only) would close a circle
class _Owner(Protocol):
    @property
    def known_hosts(self) -> str: ...
    @property
    def entry_point(self) -> str: ...
    @property
    def model(self) -> str: ...


class _Reply(Protocol):
    @property
    def text(self) -> list[str]: ...


class ConnectionFacts(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def owner(self) -> _Owner: ...

    def raw(self, command: str) -> _Reply: ...


#: the rule a non-root ssh user needs, one line in /etc/sudoers.d
SUDOERS_RULE = "{user} ALL=(root) NOPASSWD: {entry} fleet-host *"
SUDO_PASSWORD = ("a password is required", "a terminal is required")


def explain(connection: ConnectionFacts, stderr: str) -> str:
    """ssh's own words, as one line about this host."""
    where = (
        f"({connection.address}) " if connection.address.split(":")[0] != connection.name else ""
    )
    pinned = connection.owner.known_hosts
    offered = re.search(r"(SHA256:[A-Za-z0-9+/]{43})", stderr)
    trust = (
        f"`system-recipes fleet trust {connection.name} --fingerprint SHA256:... "
        f"-m {connection.owner.model}` with the fingerprint read on the host itself"
    )
    if host_key_problem(stderr) == "mismatch":
        return (
            f"{where}host key mismatch: the host offers "
            f"{offered.group(1) if offered else 'another key'}, not the key pinned for "
            f"{connection.name} in {pinned} (if the host was reinstalled: {trust})"
        )
    if host_key_problem(stderr):
        return (
            f"{where}no host key pinned for {connection.name} in {pinned} (nothing is trusted "
            f"on first use: {trust})"
        )
    if "Permission denied" in stderr:
        return f"{where}ssh login as {connection.user} refused ({last_line(stderr)})"
    # ssh's words say what failed ("connect to host ... Connection refused"); the host's state
    # ("unreachable") is the caller's to say, once
    return f"{where}{last_line(stderr) or 'ssh failed'}"


def sudo_problem(connection: ConnectionFacts) -> str:
    """sudo wanted a password: the sudoers rule that lets fleet-host run without one."""
    entry = connection.owner.entry_point
    if not entry.startswith("/"):  # the rule needs the absolute path the host has
        found = connection.raw(f"command -v {shlex.quote(entry)}").text
        entry = found[0] if found else f"/PATH/TO/{entry}"
    rule = SUDOERS_RULE.format(user=connection.user, entry=entry)
    return (
        f"sudo wants a password for {connection.user}; fleet-host needs this rule in "
        f"/etc/sudoers.d: {rule}"
    )


def host_key_problem(stderr: str) -> str:
    """``mismatch`` (the host offers another key than the pinned one), ``unknown`` (no key is
    pinned for it) or ``""``, from ssh's own words."""
    if "IDENTIFICATION HAS CHANGED" in stderr or "key for" in stderr and "differs" in stderr:
        return "mismatch"
    if "host key is known" in stderr or "Host key verification failed" in stderr:
        return "unknown"
    return ""


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""

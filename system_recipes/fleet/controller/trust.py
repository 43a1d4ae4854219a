"""``system-recipes fleet trust HOST --fingerprint SHA256:... -m MODEL``: pin a host's key.

The pinned keys are a text file beside the model (``shop.toml`` -> ``shop.known_hosts``), in
OpenSSH's known_hosts format under the model's host names (``app1 ssh-ed25519 AAAA...``), kept
in git with the model. Nothing is trusted on first use: a key is added only when the host
offers one (``ssh-keyscan``) whose fingerprint (``ssh-keygen -l``) is exactly the one the
operator read on the host itself; it replaces whatever was pinned for that host.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess

from system_recipes.core.declare.errors import shown
from system_recipes.fleet.files import write_atomic
from system_recipes.fleet.model.spec import load_model
from system_recipes.fleet.model.tables import ModelError

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def known_hosts_path(model_path: str) -> str:
    """``shop.toml`` -> ``shop.known_hosts``, beside it."""
    return f"{os.path.splitext(model_path)[0]}.known_hosts"


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trust = actions.add_parser(
        "trust",
        help="pin a host's ssh key (beside the model) when it has exactly the fingerprint given",
    )
    trust.add_argument("host", help="a host of the model")
    trust.add_argument(
        "--fingerprint",
        required=True,
        metavar="SHA256:...",
        help="the key's fingerprint, read on the host itself (ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub)",
    )
    trust.add_argument("-m", "--model", required=True, help="the system model (TOML)")
    trust.add_argument(
        "-F",
        dest="ssh_config",
        default=None,
        metavar="FILE",
        help="an ssh_config to read the host's name and port from (default: ~/.ssh/config)",
    )
    trust.add_argument("--timeout", type=int, default=5, help="seconds to wait for the host")


def run_trust(args: argparse.Namespace) -> int:
    from system_recipes.core.plan import report

    report.say(trust(args.model, args.host, args.fingerprint, args.ssh_config, args.timeout))
    return 0


def trust(
    model_path: str, host: str, fingerprint: str, ssh_config: str | None = None, timeout: int = 5
) -> str:
    """Pin ``host``'s key with ``fingerprint``; returns the line to print. Raises ModelError
    (one line) when the host offers no such key: nothing is written then."""
    model = load_model(model_path)
    if host not in model.hosts:
        raise ModelError(
            "hosts",
            None,
            f"{shown(host)} is not a host of the model",
            "one of " + ", ".join(model.hosts),
        )
    if not FINGERPRINT.fullmatch(fingerprint):
        raise ModelError(
            f"hosts.{host}",
            "fingerprint",
            f"{shown(fingerprint)} is not a SHA256 fingerprint",
            "SHA256: and 43 characters, as ssh-keygen -l prints it",
        )
    if ssh_config:  # the controller's own mistake: one line, before the host is asked
        try:
            with open(ssh_config, "rb"):
                pass
        except OSError as error:
            raise ModelError(
                None,
                None,
                f"cannot read the ssh_config ({error.strerror}); nothing was trusted",
                source=f"-F {ssh_config}",
            ) from None
    address = model.hosts[host].address
    name, port = resolve(address, ssh_config)
    offered = scan(name, port, timeout)
    if not offered:
        raise ModelError(
            f"hosts.{host}",
            "fingerprint",
            f"{address} offers no host key on port "
            f"{port} (ssh-keyscan got none within {timeout} s); nothing was "
            "trusted",
        )
    match = [line for line, (print_, _) in offered.items() if print_ == fingerprint]
    if not match:
        seen = ", ".join(f"{f} ({kind})" for f, kind in offered.values())
        raise ModelError(
            f"hosts.{host}",
            "fingerprint",
            f"{address} offers {seen}, not {fingerprint}; nothing was trusted",
            "the fingerprint of a key the host offers, read on the host itself",
        )
    path = known_hosts_path(model_path)
    kind, key = match[0].split()[1:3]
    kept = [line for line in (read_lines(path)) if not pinned_for(line, host)]
    write_atomic(path, "".join(f"{line}\n" for line in [*kept, f"{host} {kind} {key}"]))
    return f"{host}: pinned {fingerprint} ({offered[match[0]][1]}) in {path}"


def resolve(address: str, ssh_config: str | None) -> tuple[str, str]:
    """The host name and port ssh would connect to (~/.ssh/config may rename or move it)."""
    command = ["ssh", *(["-F", ssh_config] if ssh_config else []), "-G", address]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:  # its first line is the cause ("FILE line 3: Bad ...")
        cause = next((line for line in result.stderr.splitlines() if line.strip()), "")
        raise ModelError(
            None,
            None,
            f"ssh -G {address}: {cause}; nothing was trusted",
            source=f"-F {ssh_config}" if ssh_config else "~/.ssh/config",
        )
    values = dict(line.partition(" ")[::2] for line in result.stdout.splitlines())
    return values.get("hostname", address), values.get("port", "22")


def scan(name: str, port: str, timeout: int) -> dict[str, tuple[str, str]]:
    """key line -> (fingerprint, type) for every key the host offers."""
    result = subprocess.run(
        ["ssh-keyscan", "-T", str(timeout), "-p", port, name], capture_output=True, text=True
    )
    lines = [
        line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")
    ]
    offered = {}
    for line in lines:  # one at a time: a line ssh-keygen skipped must not shift the others
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", "-"], input=line + "\n", capture_output=True, text=True
        )
        words = listed.stdout.split()  # "256 SHA256:... 10.77.0.11 (ED25519)"
        if listed.returncode == 0 and len(words) >= 4:
            offered[line] = (words[1], words[-1].strip("()"))
    return offered


def pinned_for(line: str, host: str) -> bool:
    names = line.split()[0] if line.split() else ""
    return host in names.split(",")


def read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as stream:
            return [line.rstrip("\n") for line in stream if line.strip()]
    except FileNotFoundError:
        return []

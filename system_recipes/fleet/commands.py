"""``system-recipes fleet compile`` and ``fleet explain``: what system_recipes/cli.py calls.

The meta-recipe expansion is on a floor above this package: cli.py passes it in.
"""

from __future__ import annotations

import os

from ..core import report
from .allocate import update
from .compile import compile_hosts, write
from .lockfile import write_atomic
from .roles import Expander
from .spec import lock_path


def default_output(model_path: str) -> str:
    """``profiles/systems/shop.toml`` -> ``profiles/systems/shop/``: beside the model and its
    lock, one directory per model."""
    return os.path.splitext(model_path)[0]


def run_compile(model_path: str, output: str | None, allow_moves: bool, expander: Expander,
                profiles: str) -> int:
    """Allocate, compile every host, then write the lock and the host.cfg files: one line per
    allocation change and per host. Nothing is written when anything is refused."""
    model, allocation = update(model_path, allow_moves=allow_moves, write=False)
    configs = compile_hosts(model, allocation, expander, profiles)
    lock = lock_path(model_path)
    text = allocation.text(model)
    if read(lock) != text:
        write_atomic(lock, text)
    for line in allocation.changes:
        report.say(line)
    for line in write(output or default_output(model_path), model,
                      {host: config.text() for host, config in configs.items()}):
        report.say(line)
    return 0


def run_explain(model_path: str, host: str, expander: Expander, profiles: str) -> int:
    """Each value of ``host``'s compiled configuration and where it came from. Reads the lock
    as it is (a model that needs a new allocation is refused: compile it first)."""
    model, allocation = update(model_path, allow_moves=False, write=False)
    if host not in model.hosts:
        from .tables import ModelError

        raise ModelError("hosts", None, f"{host[:100]!r} is not a host of the model",
                         "one of " + ", ".join(model.hosts))
    if allocation.changes:
        from .tables import ModelError

        raise ModelError(None, None, f"the lock is not current ({allocation.changes[0]}); run "
                         "`system-recipes fleet compile` first", source=lock_path(model_path))
    config = compile_hosts(model, allocation, expander, profiles)[host]
    instances = [f"{i.name} (port {i.port})" if i.port else i.name
                 for i in allocation.instances(host=host)]
    report.say(f"{host} ({model.hosts[host].address}) runs "
               f"{', '.join(instances) or 'no instance'}; model {os.path.basename(model_path)}, "
               f"lock {os.path.basename(lock_path(model_path))}")
    for section, option, value, origin in config.rows():
        if "\n" in value:
            report.say(f"[{section}] {option} =")
            for line in value.split("\n"):
                report.say(f"    {line}")
        else:
            report.say(f"[{section}] {option} = {value}")
        report.say(f"    <- {origin}")
    return 0


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except FileNotFoundError:
        return None

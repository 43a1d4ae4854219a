"""What a fleet run sends each host: the system compiled in memory, its revision, the waves.

**Revision.** The lock keeps ``revision`` (an integer) and ``digest`` (the sha256 of what was
compiled: every host's host.cfg and packages). A run compiles the system and compares: the same
digest keeps the revision, another one is the next revision -- ``fleet apply`` writes it into
the lock (the only change it makes to the lock on its own; an allocation change needs ``fleet
compile`` or ``--allow-moves``), ``fleet plan`` and ``fleet status`` only use it. A host refuses
a revision older than the one it applied: a checkout that is behind cannot undo what a newer
one applied (``--force`` can).

**Waves.** Links say who must be ready first: a service's wave comes after the waves of the
services it links to and of the backends it balances (database, then app servers, then the load
balancer); a host goes in the wave of its latest service. The monitoring host goes last, so
Nagios learns of checks once they can pass -- or first when checks are removed, so it stops
watching them before they go away.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
from dataclasses import dataclass, field

from .allocate import Allocation, update
from .compile import Compiler
from .roles import Expander
from .spec import Model, lock_path
from .step_basics import write_atomic
from .tables import ModelError


@dataclass
class HostJob:
    """One host's part of a run: where it is, what it gets, when, and how it is checked."""

    name: str
    address: str
    header: dict
    config: str
    checks: list[str]
    services: dict[str, int]  # service -> instances on this host
    wave: int = 0
    clean: bool = False  # its plan found nothing to change (only its record is behind)

    def stdin(self) -> str:
        return json.dumps(self.header) + "\n" + self.config


@dataclass
class System:
    model: Model
    allocation: Allocation
    hosts: dict[str, HostJob]
    revision: int
    digest: str
    model_path: str
    notes: list[str] = field(default_factory=list)

    def write_lock(self) -> bool:
        """Write the lock when its text changed (a new revision, or allowed moves)."""
        path = lock_path(self.model_path)
        text = self.allocation.text(self.model)
        try:
            with open(path, encoding="utf-8") as stream:
                if stream.read() == text:
                    return False
        except FileNotFoundError:
            pass
        write_atomic(path, text)
        return True


def prepare(
    model_path: str, expander: Expander, profiles: str, allow_moves: bool = False
) -> System:
    """Allocate and compile in memory; a lock that would change (a new placement, a move)
    is refused in one line unless ``allow_moves``: it is reviewed with ``fleet compile``."""
    model, allocation = update(model_path, allow_moves=allow_moves, write=False)
    if allocation.changes and not allow_moves:
        more = f" and {len(allocation.changes) - 1} more" if len(allocation.changes) > 1 else ""
        raise ModelError(
            None,
            None,
            f"the lock would change ({allocation.changes[0]}{more}); "
            f"`system-recipes fleet compile -m {os.path.basename(model_path)}` "
            "writes it for review, or pass --allow-moves",
            source=lock_path(model_path),
        )
    compiler = Compiler(model, allocation, expander, profiles)
    configs = {host: config.text() for host, config in compiler.run().items()}
    packages = {
        host: {
            model.services[i.service].package: model.services[i.service].version
            for i in allocation.instances(host=host)
            if model.services[i.service].package
        }
        for host in model.hosts
    }
    digest = (
        "sha256:"
        + hashlib.sha256(
            json.dumps([configs, packages], sort_keys=True).encode("utf-8")
        ).hexdigest()
    )
    revision, stamped = allocation.stamp
    if stamped != digest:
        revision += 1
        allocation.stamp = (revision, digest)
    hosts = {}
    for host, text in configs.items():
        services: dict[str, int] = {}
        for instance in allocation.instances(host=host):
            services[instance.service] = services.get(instance.service, 0) + 1
        header = {
            "model": model.name,
            "revision": revision,
            "digest": digest,
            "host": host,
            "packages": packages[host],
        }
        checks = list(dict.fromkeys(check for _, check, _ in compiler.wiring.checks.get(host, [])))
        hosts[host] = HostJob(host, model.hosts[host].address, header, text, checks, services)
    return System(model, allocation, hosts, revision, digest, model_path)


def service_levels(model: Model) -> dict[str, int]:
    """0 for a service that needs no other; else one more than the latest it needs."""
    levels: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in levels:
            service = model.services[name]
            needs = [*service.links, *([service.backends] if service.backends else [])]
            levels[name] = 1 + max(map(level, needs)) if needs else 0
        return levels[name]

    for name in model.services:
        level(name)
    return levels


def assign_waves(system: System, monitoring_first: bool = False) -> list[list[str]]:
    """The hosts in waves (each job's ``wave`` set, from 1); within a wave, host name order."""
    levels = service_levels(system.model)
    raw = {
        name: max((levels[s] for s in job.services), default=0)
        for name, job in system.hosts.items()
    }
    monitor = system.model.monitoring.host if system.model.monitoring else None
    if monitor is not None:
        others = [level for name, level in raw.items() if name != monitor]
        if monitoring_first and raw[monitor] == 0:
            raw[monitor] = -1
        else:
            raw[monitor] = max([raw[monitor], *(level + 1 for level in others)])
    order = sorted(set(raw.values()))
    waves = [[name for name in sorted(raw) if raw[name] == level] for level in order]
    for number, wave in enumerate(waves, 1):
        for name in wave:
            system.hosts[name].wave = number
    return waves


def removed_checks(old: str | None, new: str) -> list[str]:
    """What the monitoring host's Nagios would stop watching: ``[monitoring]`` hosts and
    checks in the kept host.cfg (``old``) and not in the new one."""

    def watched(text: str | None) -> set[str]:
        if not text:
            return set()
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(text)
        except configparser.Error:
            return set()
        if not parser.has_section("monitoring"):
            return set()
        lines = [
            line.strip()
            for option in ("hosts", "nrpe-checks")
            for line in parser.get("monitoring", option, fallback="").splitlines()
        ]
        return {line for line in lines if line}

    return sorted(watched(old) - watched(new))

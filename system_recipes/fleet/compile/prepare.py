"""What a fleet run sends each host: the system compiled in memory, its revision, the waves.

**Revision.** The lock keeps ``revision`` (an integer) and ``digest`` (the sha256 of what was
compiled: every host's host.cfg and packages). A run compiles the system and compares: the same
digest keeps the revision, another one is the next revision -- ``fleet apply`` writes it into
the lock once a host took it (the only change it makes to the lock on its own; an allocation
change needs ``fleet compile`` or ``--allow-moves``), ``fleet plan`` and ``fleet status`` only
use it. A host refuses a revision older than the one it applied: a checkout that is behind
cannot undo what a newer one applied (``--force`` can).

**Waves.** Links say who must be ready first: a host goes after the hosts running the services
its services link to and the backends they balance (database, then app servers, then the load
balancer, whatever else the app servers run); hosts running the same services share a wave.
The monitoring host goes last, so Nagios learns of checks once they can pass -- or first when
checks are removed, so it stops watching them before they go away.
"""

from __future__ import annotations

import configparser
import graphlib
import hashlib
import json
import os
from dataclasses import dataclass, field

from system_recipes.fleet.compile.compiler import Compiler
from system_recipes.fleet.files import write_atomic
from system_recipes.fleet.model.allocate import Allocation, update
from system_recipes.fleet.model.spec import Model, lock_path
from system_recipes.fleet.model.tables import ModelError


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


def prepare(model_path: str, profiles: str, allow_moves: bool = False) -> System:
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
    compiler = Compiler(model, allocation, profiles)
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
    """The hosts in waves (each job's ``wave`` set, from 1); within a wave, host name order.
    A host goes after the hosts its services need (:func:`host_levels`); the monitoring host
    last, or first when ``monitoring_first``."""
    raw = host_levels(system)
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


#: why one group of hosts needs another: (the needing service's level, the service, the host
#: it runs on, the service it needs, a host of that one, "links to" or "balances")
Need = tuple[int, str, str, str, str, str]


def host_levels(system: System) -> dict[str, int]:
    """0 for a host whose services need no other host; else one more than the latest host
    they need (links and backends). Hosts that run the same services are one group and share
    a level: each of them needs the others, and their instances roll ``max-unavailable`` at a
    time within the wave. Groups that need each other cannot all be ordered: the need of the
    latest service gives way (the database before the app servers, even when the load balancer
    of those runs beside the database), and ``system.notes`` says so in one line."""
    groups: dict[frozenset[str], list[str]] = {}
    for name in sorted(system.hosts):
        groups.setdefault(frozenset(system.hosts[name].services), []).append(name)
    group_of = {host: key for key, hosts in groups.items() for host in hosts}
    levels = service_levels(system.model)
    needs: dict[frozenset[str], dict[frozenset[str], Need]] = {key: {} for key in groups}
    for key, hosts in groups.items():
        for service in sorted(key):
            spec = system.model.services[service]
            wanted = [(link, "links to") for link in spec.links]
            wanted += [(spec.backends, "balances")] if spec.backends else []
            for other, verb in wanted:
                for instance in system.allocation.instances(other):
                    target = group_of.get(instance.host)
                    if target is None or target == key:
                        continue
                    need = (levels[service], service, hosts[0], other, groups[target][0], verb)
                    if target not in needs[key] or need[0] > needs[key][target][0]:
                        needs[key][target] = need
    notes: list[str] = []
    while True:
        sorter = graphlib.TopologicalSorter({key: set(wants) for key, wants in needs.items()})
        try:
            sorter.prepare()
        except graphlib.CycleError as error:
            cycle = error.args[1]  # each group is needed by the next one
            edges = [(cycle[i + 1], cycle[i]) for i in range(len(cycle) - 1)]
            drop = max(range(len(edges)), key=lambda i: needs[edges[i][0]][edges[i][1]][0])
            edges = edges[drop:] + edges[:drop]
            notes.append(cycle_note([needs[group][wanted] for group, wanted in edges]))
            del needs[edges[0][0]][edges[0][1]]
            continue
        found: dict[str, int] = {}
        level = 0
        while sorter.is_active():
            ready = sorter.get_ready()
            for key in ready:
                found.update((host, level) for host in groups[key])
            sorter.done(*ready)
            level += 1
        system.notes[:] = [n for n in system.notes if not n.startswith("waves: ")] + notes
        return {name: found[name] for name in system.hosts}


def cycle_note(chain: list[Need]) -> str:
    """One line: which hosts need each other, and which need gives way (the first)."""
    hosts = [need[2] for need in chain]
    names = " and ".join([", ".join(hosts[:-1]), hosts[-1]])
    why = ", ".join(f"{s} on {host} {verb} {t} on {other}" for _, s, host, t, other, verb in chain)
    _, service, _, other, _, verb = chain[0]
    return (
        f"waves: {names} need each other ({why}): {hosts[0]} goes first, before the {other} "
        f"its {service} {verb}"
    )


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

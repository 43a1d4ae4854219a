"""Automatic management of resources: which host runs each instance, which port each service.

Deterministic and sticky. Given the model and the lock (the last allocation):

- an instance stays on its host while that host exists, still matches the placement (tags,
  explicit hosts) and still has room (instances kept in service, then number order);
- what is missing is placed, largest memory first, on the least loaded eligible host (the
  smallest share of its memory reserved, then the fewest instances, then the name);
- instances beyond ``instances`` (the highest numbers) and services gone from the model are
  released;
- a service with a port runs at most one instance per host (ports are unique per host), as
  does one with ``spread``; two services with the same fixed port never share a host;
- an automatic port is the same on every instance; it is unique in the whole system (so no
  move can make it collide) and keeps its value while it is inside ``[system] port-range``;
  new ones take the lowest free port there.

Moving an instance or changing a service's locked port needs ``allow_moves``. Every change is
a line in :attr:`Allocation.changes`; re-running on its own result changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

from system_recipes.fleet.files import write_atomic
from system_recipes.fleet.model.lockfile import dumps, loads_lock, read_lock
from system_recipes.fleet.model.spec import Model, load_model, lock_path
from system_recipes.fleet.model.tables import ModelError
from system_recipes.fleet.model.values import size


@dataclass(frozen=True)
class Instance:
    service: str
    number: int
    host: str
    port: int | None

    @property
    def name(self) -> str:
        return f"{self.service}.{self.number}"


@dataclass
class Allocation:
    """``ports``: service -> port; ``hosts``: service -> {instance number: host}."""

    ports: dict[str, int] = field(default_factory=dict)
    hosts: dict[str, dict[int, str]] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    #: (revision, digest) that `fleet apply` stamped; kept as it is by every allocation
    stamp: tuple[int, str] = (0, "")

    def instances(self, service: str | None = None, host: str | None = None) -> list[Instance]:
        """The instances, in service and number order; of one service and/or on one host."""
        return [
            Instance(name, number, where, self.ports.get(name))
            for name, numbers in sorted(self.hosts.items())
            if service in (None, name)
            for number, where in sorted(numbers.items())
            if host in (None, where)
        ]

    def text(self, model: Model) -> str:
        """The lock file: the same bytes for the same allocation."""
        header = (
            f"Allocation lock of the system {model.name} ({os.path.basename(model.path)}):"
            " the host of every instance\nand the port of every service. Written by "
            "system-recipes; keep it in git beside the model.\nChange the model, not this "
            "file; a move or a port change needs --allow-moves."
        )
        services = {
            name: {
                **({"port": self.ports[name]} if name in self.ports else {}),
                "instances": {str(n): host for n, host in numbers.items()},
            }
            for name, numbers in self.hosts.items()
        }
        stamp = {"revision": self.stamp[0], "digest": self.stamp[1]} if self.stamp[1] else {}
        return dumps({**stamp, "services": services}, header)


class Usage:
    """What the instances placed so far take on each host."""

    def __init__(self, model: Model, ports: dict[str, int]):
        self.model, self.ports = model, ports
        self.memory = {host: 0 for host in model.hosts}
        self.running: dict[str, dict[str, int]] = {host: {} for host in model.hosts}
        self.listening: dict[str, dict[int, str]] = {host: {} for host in model.hosts}

    def refusal(self, name: str, host: str) -> tuple[str, str] | None:
        """Why ``host`` cannot take one more instance of ``name``: (kind, reason), or None."""
        service = self.model.services[name]
        if host not in self.model.hosts:
            return "gone", f"host {host} is gone from the model"
        missing = [tag for tag in service.placement.tags if tag not in self.model.hosts[host].tags]
        if missing:
            return "tags", f"{host} lacks the tags {', '.join(missing)}"
        if service.placement.hosts and host not in service.placement.hosts:
            return "hosts", f"{host} is not in its placement hosts"
        free = self.model.hosts[host].memory - self.memory[host]
        if service.memory > free:
            return "memory", f"{host} has {size(free)} of memory free"
        if self.running[host].get(name) and (service.placement.spread or name in self.ports):
            return "one", f"{host} runs another instance of {name}"
        other = self.listening[host].get(self.ports.get(name, 0))
        if other is not None and other != name:
            return "port", f"port {self.ports[name]} is taken on {host} by {other}"
        return None

    def add(self, name: str, host: str) -> None:
        self.memory[host] += self.model.services[name].memory
        self.running[host][name] = self.running[host].get(name, 0) + 1
        if name in self.ports:
            self.listening[host][self.ports[name]] = name

    def load(self, host: str) -> tuple:
        capacity = max(self.model.hosts[host].memory, 1)
        return (Fraction(self.memory[host], capacity), sum(self.running[host].values()), host)


def allocate(model: Model, lock: Allocation | None = None, allow_moves: bool = False) -> Allocation:
    """The allocation of ``model`` that changes ``lock`` the least; raises ModelError (one
    line) when something cannot be placed, or would move without ``allow_moves``."""
    lock = lock or Allocation()
    ports, port_reasons = allocate_ports(model, lock)
    usage = Usage(model, ports)
    placed: dict[str, dict[int, str]] = {name: {} for name in model.services}
    evicted: dict[tuple[str, int], str] = {}
    for name, service in model.services.items():
        for number, host in sorted(lock.hosts.get(name, {}).items()):
            if number > service.instances:
                continue
            refusal = usage.refusal(name, host)
            if refusal:
                evicted[name, number] = refusal[1]
            else:
                usage.add(name, host)
                placed[name][number] = host
    missing = sorted(
        (
            (name, number)
            for name, service in model.services.items()
            for number in range(1, service.instances + 1)
            if number not in placed[name]
        ),
        key=lambda item: (-model.services[item[0]].memory, item),
    )
    for name, number in missing:
        refusals = {host: usage.refusal(name, host) for host in model.hosts}
        eligible = [host for host, refusal in refusals.items() if refusal is None]
        if not eligible:
            raise ModelError(
                f"services.{name}",
                "instances",
                f"no host for {name}.{number}",
                wanted(model, name, ports, refusals.values()),
            )
        host = min(eligible, key=usage.load)
        usage.add(name, host)
        placed[name][number] = host
    result = Allocation(
        ports, {name: dict(sorted(numbers.items())) for name, numbers in placed.items()}
    )
    if not allow_moves:
        refuse_moves(lock, result, port_reasons, evicted)
    result.changes = changes(model, lock, result)
    result.stamp = lock.stamp
    return result


def allocate_ports(model: Model, lock: Allocation) -> tuple[dict[str, int], dict[str, str]]:
    """Every service's port, and why a locked automatic port could not be kept."""
    low, high = model.port_range
    ports: dict[str, int] = {}
    reasons: dict[str, str] = {}
    taken: dict[int, str] = {}
    automatic = [name for name, service in model.services.items() if service.port == "auto"]
    for name, service in model.services.items():
        old = lock.ports.get(name)
        if isinstance(service.port, int):
            ports[name] = service.port
            if old is not None and old != service.port:
                reasons[name] = f"the model sets port = {service.port}"
        elif service.port is None:
            if old is not None:
                reasons[name] = "the model sets no port"
        elif old is None:
            pass
        elif not low <= old <= high:
            reasons[name] = f"{old} is outside [system] port-range {low}-{high}"
        elif old in taken:
            reasons[name] = f"{old} is locked for {taken[old]} too"
        else:
            ports[name], taken[old] = old, name
    free = (port for port in range(low, high + 1) if port not in taken)
    for name in automatic:
        if name not in ports:
            port = next(free, None)
            if port is None:
                raise ModelError(
                    "system",
                    "port-range",
                    f"no free port for {name}",
                    f"a range with room for {len(automatic)} automatic ports",
                )
            ports[name], taken[port] = port, name
    return dict(sorted(ports.items())), reasons


def wanted(
    model: Model, name: str, ports: dict[str, int], refusals: Iterable[tuple[str, str] | None]
) -> str:
    """``a host with tags app and 1G of memory free``: the constraints that left no host."""
    service = model.services[name]
    kinds = {refusal[0] for refusal in refusals if refusal}
    parts = []
    if service.placement.tags:
        parts.append("tags " + ", ".join(service.placement.tags))
    if service.memory:
        parts.append(f"{size(service.memory)} of memory free")
    text = "a host"
    if service.placement.hosts:
        text += " among " + ", ".join(service.placement.hosts)
    if parts:
        text += " with " + " and ".join(parts)
    if "one" in kinds:
        text += f", not running {name} already"
    if "port" in kinds:
        text += f", port {ports[name]} free"
    return text


def refuse_moves(
    lock: Allocation,
    result: Allocation,
    port_reasons: dict[str, str],
    evicted: dict[tuple[str, int], str],
) -> None:
    if port_reasons:
        name, reason = min(port_reasons.items())
        old, new = lock.ports[name], result.ports.get(name, "none")
        raise ModelError(
            f"services.{name}",
            "port",
            f"{old} would change to {new} ({reason}); "
            "changing an allocated port needs --allow-moves",
        )
    moves = sorted(evicted.items())
    if moves:
        (name, number), reason = moves[0]
        more = f" ({len(moves) - 1} more)" if len(moves) > 1 else ""
        raise ModelError(
            f"services.{name}",
            "instances",
            f"{name}.{number} would move {lock.hosts[name][number]} -> "
            f"{result.hosts[name][number]} ({reason}); moves need --allow-moves"
            f"{more}",
        )


def changes(model: Model, lock: Allocation, result: Allocation) -> list[str]:
    """One line per change of the allocation, in service and instance order."""
    lines = []
    for name in sorted(set(lock.hosts) | set(lock.ports) | set(result.hosts)):
        old, new = lock.ports.get(name), result.ports.get(name)
        if old is not None and new is None:
            lines.append(f"{name}: port {old} released")
        elif old is None and new is not None:
            auto = model.services[name].port == "auto"
            lines.append(f"{name}: port auto -> {new}" if auto else f"{name}: port {new}")
        elif old != new:
            lines.append(f"{name}: port {old} -> {new}")
        before, after = lock.hosts.get(name, {}), result.hosts.get(name, {})
        for number in sorted(set(before) | set(after)):
            if number not in after:
                lines.append(f"{name}.{number}: released")
            elif number not in before:
                lines.append(f"{name}.{number}: placed on {after[number]}")
            elif before[number] != after[number]:
                lines.append(f"{name}.{number}: moved {before[number]} -> {after[number]}")
    return lines


def load_lock(path: str) -> Allocation:
    """The lock in ``path`` (empty when there is none yet)."""
    ports, hosts, stamp = read_lock(path)
    return Allocation(ports, hosts, stamp=stamp)


def parse_lock(text: str, source: str = "lock") -> Allocation:
    """The lock in ``text``."""
    ports, hosts, stamp = loads_lock(text, source)
    return Allocation(ports, hosts, stamp=stamp)


def update(
    model_path: str, allow_moves: bool = False, write: bool = True
) -> tuple[Model, Allocation]:
    """Load the model and its lock, allocate, and (``write``) replace the lock when its text
    changed. Nothing is written when anything is refused."""
    model = load_model(model_path)
    path = lock_path(model_path)
    allocation = allocate(model, load_lock(path), allow_moves)
    text = allocation.text(model)
    try:
        with open(path, encoding="utf-8") as stream:
            current = stream.read()
    except FileNotFoundError:
        current = None
    if write and current != text:
        write_atomic(path, text)
    return model, allocation

"""``system-recipes fleet plan|apply|status -m MODEL``: a whole system, host by host, over ssh.

The system is compiled in memory (:mod:`.prepare`); each host gets one remote call of
``fleet-host`` through its control master (:mod:`.transport`), at most ``--forks`` at a time.

- ``plan``: every host plans its host.cfg; exit 0 nothing pending, 2 changes pending, 3 some
  hosts unreachable or failed (a stale revision too), 1 a model error (no host contacted).
- ``apply``: a preflight (:mod:`.preflight`) connects, reads and plans every host (a revision
  newer than this model's, or the same one of another digest, refuses the run: exit 1, nothing
  changed; a host with nothing to do is only checked); then the waves. Within a wave at most
  ``max-unavailable`` instances of a service are down at once -- a host in flight, failed or
  unreachable holds its instances -- and a host is done when its apply succeeded and its own
  NRPE checks pass on it. Once more hosts failed than ``--max-fail`` allows (N or P% of the
  hosts; a host unreachable before its command ran does not count, one whose connection was
  lost during its apply or checks does) or on Ctrl-C, no new host starts, the hosts in flight
  finish their own transaction, and the hosts never started are listed. Exit 0 all
  converged, 3 some hosts failed or unreachable, 4 stopped by the threshold in the waves, 130
  interrupted, 1 model error or failed preflight (more failed than ``--max-fail`` there too).
- ``status``: each host's record and drift; exit 0 every host on the current revision with no
  drift, 2 some behind, drifted or never applied, 3 some unreachable.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

from system_recipes.fleet.compile.prepare import (
    HostJob,
    System,
    assign_waves,
    removed_checks,
)
from system_recipes.fleet.controller.checks import run_checks
from system_recipes.fleet.controller.output import Output, counted
from system_recipes.fleet.controller.preflight import preflight
from system_recipes.fleet.controller.transport import (
    Connection,
    Connections,
    Result,
    Target,
    TransportError,
)
from system_recipes.fleet.protocol import Exit, HostState, Step, event


@dataclass
class RunOptions:
    """A fleet run's options, from the command line (--forks, --max-fail, --diff, --force,
    --confirm-timeout, ...); a host's own ``[system-recipes]`` settings are
    core/declare/settings.Settings."""

    forks: int = 10
    max_fail: str = "0"
    known_hosts: str = ""
    ssh_config: str | None = None
    entry_point: str = "system-recipes"
    diff: bool = False
    force: bool = False
    check_timeout: float = 30.0
    check_interval: float = 1.0
    confirm_timeout: float = 0.0  # 0: no confirmed apply


def failure_limit(text: str, hosts: int) -> int:
    """``--max-fail``: ``N`` hosts or ``P%`` of the hosts (rounded down)."""
    text = text.strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return int(hosts * percent / 100)
        value = int(text)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise ValueError(
            f"--max-fail: {text[:40]!r} (expected a number of hosts such as 2, "
            "or a share such as 10%)"
        ) from None


def controller_connections(
    system: System, settings: RunOptions, check: bool = False
) -> Connections:
    """The run's connections; ``check``: first make sure the files the controller reads (the
    ssh_config, the pinned keys, the identity files) can be read, before any host is tried
    (raises :class:`~.transport.ControllerError`)."""
    connections = Connections(
        settings.known_hosts,
        config=settings.ssh_config,
        entry_point=settings.entry_point,
        model=system.model_path,
    )
    if check:
        try:
            connections.check(
                [Target(name, job.address) for name, job in system.hosts.items()],
                forks=settings.forks,
            )
        except BaseException:
            connections.close()
            raise
    return connections


class FleetRun:
    def __init__(
        self,
        action: str,
        system: System,
        settings: RunOptions,
        output: Output,
        connections: Connections | None = None,
    ):
        self.action, self.system, self.settings, self.out = action, system, settings, output
        self.jobs = system.hosts
        self.connections = connections or controller_connections(system, settings)
        self.interrupted = threading.Event()
        self.refusals: list[str] = []  # why the preflight refused an apply
        self.drifted: set[str] = set()  # hosts an apply left with drift (exit 2)
        self.stamp = threading.Lock()  # taken once the revision went into the lock
        self.lost: set[str] = set()  # hosts whose connection was lost during their apply

    # -- the three commands -------------------------------------------------------------------

    def run(self) -> int:
        previous = signal.signal(signal.SIGINT, lambda *_: self.interrupt())
        try:
            code = getattr(self, self.action)()
        finally:
            signal.signal(signal.SIGINT, previous)
            self.connections.close()
        return code

    def interrupt(self) -> None:
        if not self.interrupted.is_set():
            self.out.say(
                "interrupted: no new host starts; the hosts in flight finish their own transaction"
            )
        self.interrupted.set()

    def plan(self) -> int:
        results = self.each(self.plan_host)
        code = self.close_code(results, pending=(HostState.PENDING,))
        return self.finish(Exit.INTERRUPTED if self.interrupted.is_set() else code)

    def status(self) -> int:
        results = self.each(self.status_host)
        pending = (HostState.BEHIND, HostState.DRIFTED, HostState.NEVER_APPLIED)
        code = self.close_code(results, pending=pending)
        return self.finish(Exit.INTERRUPTED if self.interrupted.is_set() else code)

    def apply(self) -> int:
        found = preflight(self)
        if self.refusals:
            return self.refused()
        failures = sum(1 for line in self.out.hosts.values() if line.state == HostState.FAILED)
        limit = failure_limit(self.settings.max_fail, len(self.jobs))
        stopped = "interrupted" if self.interrupted.is_set() else None
        if (
            not stopped
            and failures > limit
            and any(self.out.hosts[name].state == HostState.WAITING for name in found)
        ):  # a failed preflight: nothing changed, exit 1 (docs/systems.md, exit statuses)
            return self.preflight_failed(failures)
        if not stopped:
            stopped = self.run_waves(found, failures, limit)
        return self.apply_end(stopped)

    def refused(self) -> int:
        """The preflight refused the run: its reasons said, no host started."""
        for line in self.refusals:
            self.out.say(line)
        for name in self.jobs:
            if not self.out.hosts[name].final:
                self.out.state(name, HostState.NOT_STARTED, "the preflight refused the run")
        return self.finish(Exit.ERROR, "preflight")

    def preflight_failed(self, failures: int) -> int:
        """More hosts failed their preflight than --max-fail: no host started."""
        stopped = f"{failures} failed, more than --max-fail {self.settings.max_fail}"
        for name in self.jobs:
            if not self.out.hosts[name].final:
                self.out.state(name, HostState.NOT_STARTED, stopped)
        return self.finish(Exit.ERROR, f"preflight: {stopped}")

    def run_waves(
        self, found: dict[str, tuple[dict, str | None]], failures: int, limit: int
    ) -> str | None:
        """The hosts the preflight left waiting, wave by wave; why the run stopped, if it did."""
        if self.system.allocation.changes:  # --allow-moves: the run's allocation
            self.stamp_lock()
        monitor = self.system.model.monitoring
        first = bool(
            monitor
            and monitor.host in found
            and removed_checks(found[monitor.host][1], self.jobs[monitor.host].config)
        )
        waves = assign_waves(self.system, monitoring_first=first)
        for note in self.system.notes:  # hosts that need each other
            self.out.say(note)
        for name, job in self.jobs.items():
            self.out.hosts[name].wave = job.wave
        ready = {name for name in found if self.out.hosts[name].state == HostState.WAITING}
        return self.waves(waves, ready, failures, limit)

    def apply_end(self, stopped: str | None) -> int:
        """The hosts never started said so; the run's exit status."""
        for name in self.jobs:
            if not self.out.hosts[name].final:
                self.out.state(name, HostState.NOT_STARTED, stopped or "blocked by max-unavailable")
        if stopped == "interrupted":
            return self.finish(Exit.INTERRUPTED, stopped)
        if stopped:
            return self.finish(Exit.STOPPED, stopped)
        failed = any(line.state.failed for line in self.out.hosts.values())
        if failed:
            return self.finish(Exit.FAILED)
        # converged, but a file edited by hand was left as it is: not as the model says, as
        # `fleet status` (drifted) and `fleet plan` (pending) exit too
        return self.finish(Exit.PENDING if self.drifted else Exit.OK)

    def finish(self, code: int, stopped: str | None = None) -> int:
        self.out.close(code, self.system.revision, stopped)
        return code

    def stamp_lock(self) -> None:
        """The revision into the lock, once: when the allocation changed, or when the first
        host took the revision. A run that applied nothing leaves the lock as it was."""
        if self.stamp.acquire(blocking=False) and self.system.write_lock():
            self.out.say(
                f"{self.system.model.name}: revision {self.system.revision} "
                f"({self.system.digest[:19]}...) written into the lock"
            )

    def close_code(self, results: dict[str, HostState], pending: tuple[HostState, ...]) -> Exit:
        if any(state.failed for state in results.values()):
            return Exit.FAILED
        return Exit.PENDING if any(state in pending for state in results.values()) else Exit.OK

    # -- running hosts ------------------------------------------------------------------------

    def each(self, work: Callable[[HostJob], HostState]) -> dict[str, HostState]:
        """``work(job)`` on every host, ``forks`` at a time (plan, status, preflight)."""
        results: dict[str, HostState] = {}
        with ThreadPoolExecutor(max_workers=self.settings.forks) as pool:
            futures = {}
            for name, job in self.jobs.items():
                if self.interrupted.is_set():
                    break
                futures[pool.submit(self.guarded, work, job)] = name
            for future, name in futures.items():
                results[name] = future.result()
        for name in self.jobs:
            if name not in results:
                self.out.state(name, HostState.NOT_STARTED, "interrupted")
                results[name] = HostState.NOT_STARTED
        return results

    def guarded(self, work: Callable[[HostJob], HostState], job: HostJob) -> HostState:
        if self.interrupted.is_set():
            self.out.state(job.name, HostState.NOT_STARTED, "interrupted")
            return HostState.NOT_STARTED
        try:
            return work(job)
        except TransportError as error:
            # a host whose key is not the pinned one answered, and was refused; one whose
            # connection failed or was lost is unreachable, whatever step it was at
            state = (
                HostState.REFUSED
                if error.refused
                else HostState.UNREACHABLE
                if error.unreachable
                else HostState.FAILED
            )
            if error.unreachable == "during" and self.out.hosts[job.name].state.in_flight:
                self.lost.add(job.name)  # its apply ran, or its checks: not known how far
            self.out.state(job.name, state, error.problem)
            return state
        except Exception as error:  # a bug must not leave the other hosts' threads hanging
            self.out.state(job.name, HostState.FAILED, f"{type(error).__name__}: {error}")
            return HostState.FAILED

    def connect(self, job: HostJob) -> Connection:
        existing = self.connections.connections.get(job.name)
        if existing is not None:
            return existing
        self.out.state(job.name, HostState.CONNECTING, job.address)
        return self.connections.open(Target(job.name, job.address))

    def remote(
        self, job: HostJob, action: str, stdin: str = "", arguments: Sequence[str] = ()
    ) -> Result:
        connection = self.connect(job)
        self.out.log(job.name, f"# fleet-host {action} {' '.join(arguments)}")
        result = connection.run(
            action, stdin, list(arguments), on_event=lambda event: self.out.event(job.name, event)
        )
        if result.stderr.strip():
            self.out.log(job.name, "# stderr:\n" + result.stderr)
        return result

    def plan_host(self, job: HostJob) -> HostState:
        self.connect(job)
        self.out.state(job.name, HostState.PLANNING)
        arguments = ["--diff"] * self.settings.diff + ["--force"] * self.settings.force
        result = self.remote(job, "plan", job.stdin(), arguments)
        if result.code not in (Exit.OK, Exit.PENDING):
            return self.failed(job, result)
        plan = event(result.events, Step.PLAN)
        packages = event(result.events, Step.PACKAGES)
        diffs = [
            e.get("text", "").rstrip("\n") for e in result.events if e.get("step") == Step.DIFF
        ]
        if diffs:  # one block per host: other hosts' lines never come between
            self.out.say(f"{job.name}: diff\n" + "\n".join(diffs))
        if result.code == Exit.OK:
            self.out.state(job.name, HostState.IN_SYNC)
            return HostState.IN_SYNC
        changes = (
            "file changes known once the packages are in"
            if plan.get("result") == "after-packages"
            else counted(plan.get("changed", 0), "file change")
        )
        parts = (
            [changes]
            + [f"drift {', '.join(plan['drift'])}"] * bool(plan.get("drift"))
            + [f"packages {' '.join(packages['pending'])}"] * bool(packages.get("pending"))
        )
        self.out.state(job.name, HostState.PENDING, "; ".join(parts))
        return HostState.PENDING

    def status_host(self, job: HostJob) -> HostState:
        self.connect(job)
        self.out.state(job.name, HostState.ASKING)
        result = self.remote(job, "status", arguments=[self.system.model.name])
        status = event(result.events, Step.STATUS)
        if not status or status.get("result") == "error":
            return self.failed(job, result)
        applied = status.get("applied") or {}
        if status["result"] == "never-applied":
            state, detail = HostState.NEVER_APPLIED, ""
        elif (applied.get("revision"), applied.get("digest")) != (
            self.system.revision,
            self.system.digest,
        ):
            state, detail = (
                HostState.BEHIND,
                f"revision {applied.get('revision')} applied, {self.system.revision} is current",
            )
        elif status["result"] == "drifted":
            state = HostState.DRIFTED
            detail = ", ".join(status.get("drift") or []) or counted(
                status.get("changed", 0), "change"
            )
        else:
            state, detail = HostState.IN_SYNC, f"revision {applied.get('revision')}"
        self.out.state(job.name, state, detail)
        return state

    def failed(self, job: HostJob, result: Result) -> HostState:
        errors = [e for e in result.events if e.get("error")]
        refused = any(e.get("result") == "refused" for e in errors)
        detail = (
            errors[0]["error"]
            if errors
            else (result.stderr.strip().splitlines() or [f"fleet-host exited {result.code}"])[-1]
        )
        state = HostState.REFUSED if refused else HostState.FAILED
        self.out.state(job.name, state, detail)
        return state

    # -- apply --------------------------------------------------------------------------------

    def waves(
        self, waves: list[list[str]], ready: set[str], failures: int, limit: int
    ) -> str | None:
        """Run the waves in order; returns why the run stopped early, or None."""
        down: dict[str, int] = {}
        lost = 0  # of the failures: hosts whose connection was lost during their apply
        for name, line in self.out.hosts.items():
            if line.state.failed:  # unreachable or failed: its instances count as down
                self.hold(self.jobs[name], down)
        with ThreadPoolExecutor(max_workers=self.settings.forks) as pool:
            for wave in waves:
                queue = [self.jobs[name] for name in wave if name in ready]
                inflight: dict = {}
                while queue or inflight:
                    stopping = self.interrupted.is_set() or failures > limit
                    for job in list(queue):
                        if stopping or len(inflight) >= self.settings.forks:
                            break
                        if self.fits(job, down):
                            queue.remove(job)
                            self.hold(job, down)
                            inflight[pool.submit(self.guarded, self.apply_host, job)] = job
                    if not inflight:
                        break  # the rest of the wave waits for instances that stay down
                    done, _ = wait(inflight, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = inflight.pop(future)
                        state = future.result()
                        if state == HostState.UNREACHABLE and job.name not in self.lost:
                            pass  # lost before its command ran: not a failure (still down)
                        elif state.failed:
                            failures += 1  # a failed host's instances stay down
                            lost += state == HostState.UNREACHABLE
                        else:
                            self.hold(job, down, -1)
                if self.interrupted.is_set():
                    return "interrupted"
                left = [name for name in ready if not self.out.hosts[name].final]
                if failures > limit and left:  # the threshold stopped something
                    counts = [f"{failures - lost} failed"] * (failures > lost)
                    counts += [f"{lost} lost during their apply"] * bool(lost)
                    return f"{', '.join(counts)}, more than --max-fail {self.settings.max_fail}"
        return None

    def fits(self, job: HostJob, down: dict[str, int]) -> bool:
        if job.clean:
            return True
        for service, count in job.services.items():
            allowed = self.system.model.services[service].max_unavailable
            if down.get(service, 0) and down[service] + count > allowed:
                return False
        return True

    def hold(self, job: HostJob, down: dict[str, int], sign: int = 1) -> None:
        if job.clean:  # its apply touches no instance
            return
        for service, count in job.services.items():
            down[service] = down.get(service, 0) + sign * count

    def apply_host(self, job: HostJob) -> HostState:
        self.out.state(job.name, HostState.APPLYING, f"wave {job.wave}")
        arguments = ["--force"] * self.settings.force
        if self.settings.confirm_timeout:
            arguments += ["--confirm-timeout", f"{self.settings.confirm_timeout:g}"]
        try:
            result = self.remote(job, "apply", job.stdin(), arguments)
        except TransportError:
            self.stamp_lock()  # lost during its apply: the host may have taken the revision
            raise
        if result.code:
            return self.failed(job, result)
        self.stamp_lock()  # the host took the revision
        plan = event(result.events, Step.PLAN)
        return self.done(
            job,
            self.connect(job),
            result.last.get("changed", 0),
            result.last.get("confirm"),
            plan.get("drift") or [],
        )

    def done(
        self,
        job: HostJob,
        connection: Connection,
        changed: int,
        confirm: dict | None = None,
        drift: list[str] | None = None,
    ) -> HostState:
        """Done when its checks pass (and, after a confirmed apply, it is confirmed anew);
        ``drift``: the files edited by hand its apply left as they are, said as plan says them."""
        if job.checks:
            self.out.state(job.name, HostState.CHECKING, ", ".join(job.checks))
            problem = run_checks(self, job)
            if problem:
                if confirm:
                    problem += (
                        "; not confirmed: the host rolls back by itself within "
                        f"{confirm['timeout']:g} s"
                    )
                self.out.state(job.name, HostState.FAILED, problem)
                return HostState.FAILED
        if confirm:
            from system_recipes.fleet.controller.confirmation import confirm_from_controller

            self.out.state(job.name, HostState.CONFIRMING, "over a new connection")
            problem = confirm_from_controller(self, job, confirm)
            if problem:
                self.out.state(job.name, HostState.FAILED, problem)
                return HostState.FAILED
        state = HostState.CHANGED if changed else HostState.UNCHANGED
        detail = [counted(changed, "file")] if changed else []
        if drift:
            self.drifted.add(job.name)
            detail.append(f"drift {', '.join(drift)} (left as edited)")
        self.out.state(job.name, state, "; ".join(detail))
        return state

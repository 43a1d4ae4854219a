"""PostgreSQL: a cluster restarted after the commit, when a changed setting takes effect only at
a restart (``postgresql-access``'s ``restart = on``).

The reload kind ``postgresql-restart`` reloads each cluster as ``postgresql`` does; a cluster
that then reports parameters pending a restart (``port``, ``listen_addresses``, ``hba_file``:
PostgreSQL's own ``pg_settings.pending_restart``) is restarted once -- ``systemctl restart``
under systemd, else ``pg_ctlcluster VERSION CLUSTER restart`` (Debian's postgresql-common),
else ``pg_ctl restart`` as the account owning the data -- and asked again: still pending, or
pg_hba rules it refused, is a problem. A cluster that is not running stays stopped, and one
with nothing pending is not restarted (an hba change needs only the reload).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile

from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload
from system_recipes.core.plan import report
from system_recipes.daemons.common import systemd_running
from system_recipes.daemons.postgresql import (
    HBA_ERRORS,
    PENDING_RESTART,
    ask_cluster,
    postmaster,
    reload_postgresql,
)

RESTART_TIMEOUT = 120


@reload.register("postgresql-restart")
def restart_postgresql(targets: list[str], settings: Settings) -> reload.Outcome:
    return reload_postgresql(targets, settings, restart=restart_cluster)


def restart_cluster(
    service: str, version: str, cluster: str, programs: str, data: str, pending: str
) -> str | None:
    """Restart one running cluster; None once it runs again with nothing pending."""
    owner = os.stat(data)
    user: dict = {}
    if systemd_running():
        command = ["systemctl", "restart", service]
    elif version and shutil.which("pg_ctlcluster"):
        command = ["pg_ctlcluster", version, cluster, "restart"]
    else:
        command = [posixpath.join(programs, "pg_ctl"), "-D", data, "-w", "-m", "fast", "restart"]
        user = {"user": owner.st_uid, "group": owner.st_gid, "extra_groups": []}
    # the new postmaster keeps whatever output it was given: a file, never a pipe of ours
    with tempfile.TemporaryFile("w+") as output:
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=RESTART_TIMEOUT,
                **user,
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} did not finish within {RESTART_TIMEOUT} s"
        output.seek(0)
        said = [line.strip() for line in output.read().splitlines() if line.strip()]
    if result.returncode:
        return (
            f"{' '.join(command)} exited {result.returncode}"
            + (f": {said[-1]}" if said else "")
            + f" (restarting {service} for {pending})"
        )
    report.say(f"system-recipes: postgresql: restarted {service} for {pending}")
    where = postmaster(data)
    if where is None:
        return f"{service} was restarted for {pending}, but does not run (see its log)"
    try:
        still = ask_cluster(programs, data, where, PENDING_RESTART)
        errors = ask_cluster(programs, data, where, HBA_ERRORS)
    except (ValueError, OSError) as error:
        return f"{service} was restarted, but could not be asked whether it took the rules: {error}"
    if still:
        return f"{service} was restarted, and still has {still} pending a restart"
    if errors:
        return f"{service} was restarted, and refused its pg_hba file: {errors}"
    return None

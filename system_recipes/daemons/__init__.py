"""What each daemon knows, between ``core`` and ``recipes``: per tool, what it reads on disk,
how it judges a file (the batched validators of :mod:`system_recipes.core.validate`) and how it
is reloaded (the handlers of :mod:`system_recipes.core.reload`).

Importing this package registers every validator and reload handler; nothing is imported by
name. Recipes import ``core`` and their daemon module, never the reverse.
"""

from . import (  # noqa: F401
    cron,
    haproxy,
    logrotate,
    nagios,
    nrpe,
    nrpe_server,
    postgresql,
    postgresql_hba,
    postgresql_restart,
    programs,
    supervisor,
    supervisor_exec,
    systemd,
    sysv,
)

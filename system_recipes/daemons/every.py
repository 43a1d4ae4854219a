"""Every daemon module: importing this registers every validator and reload handler (the
recipes, the extension and the command line import it)."""

from system_recipes.daemons import (  # noqa: F401
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

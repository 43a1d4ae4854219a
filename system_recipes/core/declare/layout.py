"""Where things go on a Debian-like or a Red Hat-like host: the profile never spells this out."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    name: str
    supervisor_include: str
    supervisor_suffix: str
    supervisor_service: str
    supervisor_config: str
    nrpe_include: str
    nrpe_service: str
    nagios_objects: str
    nagios_service: str
    nagios_plugins: str
    cron_directory: str = "/etc/cron.d"
    logrotate_directory: str = "/etc/logrotate.d"
    systemd_directory: str = "/etc/systemd/system"
    init_directory: str = "/etc/init.d"
    rc_directory: str = "/etc"  # where rcN.d live
    nologin_shell: str = "/usr/sbin/nologin"
    # haproxy: one file per section in a directory haproxy is started with (-f DIR) after the
    # package's main file; Red Hat's unit reads it (CFGDIR), Debian's needs the drop-in
    haproxy_config: str = "/etc/haproxy/haproxy.cfg"
    haproxy_include: str = "/etc/haproxy/conf.d"
    haproxy_service: str = "haproxy"
    haproxy_dropin: str = "/etc/systemd/system/haproxy.service.d"  # "": not needed
    # a PostgreSQL cluster: {version} and {cluster} are filled in by the postgresql recipes
    # (Debian's postgresql-common keeps several clusters, each with its own config directory)
    postgresql_config: str = "/etc/postgresql/{version}/{cluster}"
    postgresql_service: str = "postgresql@{version}-{cluster}"
    postgresql_programs: str = "/usr/lib/postgresql/{version}/bin"


LAYOUTS = {
    "debian": Layout(
        name="debian",
        supervisor_include="/etc/supervisor/conf.d",
        supervisor_suffix=".conf",
        supervisor_service="supervisor",
        supervisor_config="/etc/supervisor/supervisord.conf",
        nrpe_include="/etc/nagios/nrpe.d",
        nrpe_service="nagios-nrpe-server",
        nagios_objects="/etc/nagios4/conf.d",
        nagios_service="nagios4",
        nagios_plugins="/usr/lib/nagios/plugins",
    ),
    "redhat": Layout(
        name="redhat",
        supervisor_include="/etc/supervisord.d",
        supervisor_suffix=".ini",
        supervisor_service="supervisord",
        supervisor_config="/etc/supervisord.conf",
        nrpe_include="/etc/nrpe.d",
        nrpe_service="nrpe",
        nagios_objects="/etc/nagios/conf.d",
        nagios_service="nagios",
        nagios_plugins="/usr/lib64/nagios/plugins",
        # /etc/init.d and /etc/rcN.d are symlinks into /etc/rc.d there; writes never follow them
        init_directory="/etc/rc.d/init.d",
        rc_directory="/etc/rc.d",
        haproxy_dropin="",
        # one cluster, its configuration inside the data directory (postgresql-server)
        postgresql_config="/var/lib/pgsql/data",
        postgresql_service="postgresql",
        postgresql_programs="/usr/bin",
    ),
}

REDHAT_IDS = {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn"}
DEBIAN_IDS = {"debian", "ubuntu", "raspbian", "linuxmint"}


def read_os_release(root: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = os.path.join(root, candidate)
        try:
            with open(path, encoding="utf-8") as stream:
                for line in stream:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        result[key] = value.strip().strip('"').strip("'")
            return result
        except OSError:
            continue
    return result


def detect_layout(root: str) -> str | None:
    """The layout family named by os-release below ``root``, or None when it says nothing."""
    release = read_os_release(root)
    ids = {release.get("ID", "")} | set(release.get("ID_LIKE", "").split())
    if ids & REDHAT_IDS:
        return "redhat"
    if ids & DEBIAN_IDS:
        return "debian"
    return None

"""The converge benchmark's workload: N services of five files each, in two shapes.

``explicit``: five level-1 sections per service (template, cron, logrotate, supervisor, nrpe).
``meta``: one ``system_recipes:service`` section per service (what the profiles and the README
recommend) plus its ``NAME-config`` refinement holding the template's variables. The service
section cannot say everything the explicit sections say, so its five files differ a little
(see bench/README.md, "The work"); the floor and the peers render the shape's own templates,
so every tool still writes the same bytes within a shape.
"""

from __future__ import annotations

import os
import shutil

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
TEMPLATES = os.path.join(BENCH, "templates")
BASE_CFG = os.path.join(REPO, "profiles", "base.cfg")
SHAPES = ("meta", "explicit")
KINDS = ("config", "cron", "logrotate", "supervisor", "nrpe")
#: the recipe module each kind of file needs (system_recipes/recipes/NAME.py)
RECIPE_OF = {
    "config": "template",
    "cron": "cron",
    "logrotate": "logrotate",
    "supervisor": "supervisor",
    "nrpe": "nrpe",
}
#: the kinds a template part can stand in for while their recipe is being written
STANDS_IN = ("cron", "logrotate", "supervisor")
CHANGED_PORT = 18000
#: the account every service runs as (exists in the scratch root's copied /etc/passwd)
USER = "www-data"


def service(i: int, changed: bool = False) -> dict:
    """Service number ``i``; ``changed`` moves svc0000 to another port (one option)."""
    return {
        "service": f"svc{i:04d}",
        "app_port": CHANGED_PORT if changed and i == 0 else 8000 + i,
        "minute": i % 60,
    }


def service_files(svc: dict, shape: str) -> list[tuple[str, str, str, str, dict, str]]:
    """The five files of a service as ``(kind, template, host path, mode, variables, group)``:
    what the peers and the floor render (bench/templates/ mirrors what the recipes write)."""
    name = svc["service"]
    if shape == "meta":
        # the service section's own choices: the config file in its etc directory, 0640,
        # group of the service; logrotate with copytruncate and su; supervisor's default log
        config = ("config", "app.ini.j2", f"/etc/{name}/app.ini", "0640", svc, USER)
        logrotate_template = "bench-meta-logrotate.j2"
        supervisor_template = "bench-meta-supervisor.conf.j2"
    else:
        config = ("config", "app.ini.j2", f"/etc/bench/{name}.ini", "0644", svc, "root")
        logrotate_template = "bench-logrotate.j2"
        supervisor_template = "bench-supervisor.conf.j2"
    return [
        config,
        ("cron", "bench-cron.j2", f"/etc/cron.d/{name}", "0644", svc, "root"),
        ("logrotate", logrotate_template, f"/etc/logrotate.d/{name}", "0644", svc, "root"),
        (
            "supervisor",
            supervisor_template,
            f"/etc/supervisor/conf.d/{name}.conf",
            "0644",
            svc,
            "root",
        ),
        ("nrpe", "bench-nrpe.cfg.j2", f"/etc/nagios/nrpe.d/{name}.cfg", "0644", svc, "root"),
    ]


def service_directories(svc: dict, shape: str) -> list[str]:
    """Directories a service has beyond its files' own: the meta shape's deployment part makes
    the service's lib and run directories (its etc and log directories hold files)."""
    if shape != "meta":
        return []
    return [f"/var/lib/{svc['service']}", f"/run/{svc['service']}"]


def meta_sections(svc: dict) -> list[tuple[str, dict[str, str]]]:
    """One ``system_recipes:service`` section and its config refinement (the README's shape:
    the template's variables live in ``[NAME-config]``)."""
    name = svc["service"]
    port = f"${{{name}-config:app-port}}"
    return [
        (
            name,
            {
                "recipe": "system_recipes:service",
                "command": f"/usr/bin/python3 -m http.server {port}",
                "user": USER,
                "config": "app.ini.j2",
                "check": f"http {port} /health",
                "cron": f"{svc['minute']} 3 * * * /usr/bin/find ${{{name}:lib-directory}}/tmp "
                "-type f -mtime +7 -delete",
            },
        ),
        (f"{name}-config", {"app-port": str(svc["app_port"]), "service": name}),
    ]


def explicit_sections(svc: dict, real: dict[str, bool]) -> list[tuple[str, dict[str, str]]]:
    """The five level-1 sections of one service. A kind whose recipe is missing (``real[kind]``
    false) is a template part writing the same file: a stand-in."""
    name = svc["service"]
    port = f"${{{name}-config:app-port}}"
    command = f"/usr/bin/find /var/lib/{name}/tmp -type f -mtime +7 -delete"
    made: dict[str, dict[str, str]] = {
        "config": {
            "recipe": "system_recipes:template",
            "path": f"/etc/bench/{name}.ini",
            "template": "app.ini.j2",
            "service": name,
            "app-port": str(svc["app_port"]),
        },
        "cron": {
            "recipe": "system_recipes:cron",
            "name": name,
            "user": USER,
            "entries": f"{svc['minute']} 3 * * * {command}",
        },
        "logrotate": {
            "recipe": "system_recipes:logrotate",
            "name": name,
            "paths": f"/var/log/{name}/*.log",
            "frequency": "daily",
            "rotate": "14",
            "compress": "true",
            "delaycompress": "true",
            "missingok": "true",
            "notifempty": "true",
        },
        "supervisor": {
            "recipe": "system_recipes:supervisor",
            "name": name,
            "command": f"/usr/bin/python3 -m http.server {port}",
            "user": USER,
            "stdout_logfile": f"/var/log/{name}/stdout.log",
            "redirect_stderr": "true",
        },
        "nrpe": {
            "recipe": "system_recipes:nrpe",
            "name": name,
            "checks": f"check_{name}_http check_http -H 127.0.0.1 -p {port} -u /health "
            "warning=2 critical=5",
        },
    }
    for kind, template, path, *_ in service_files(svc, "explicit"):
        if kind not in STANDS_IN or real[kind]:
            continue
        options = {
            "recipe": "system_recipes:template",
            "path": path,
            "template": template,
            "service": name,
        }
        if kind == "cron":  # a template part refuses an option its template does not use
            options["minute"] = str(svc["minute"])
        if kind == "supervisor":
            options["app-port"] = port
        made[kind] = options
    return [(f"{name}-{kind}", made[kind]) for kind in KINDS]


def host_cfg(n: int, root: str, real: dict[str, bool], shape: str, changed: bool = False) -> str:
    parts, body = [], []
    for i in range(n):
        svc = service(i, changed)
        sections = meta_sections(svc) if shape == "meta" else explicit_sections(svc, real)
        for section, options in sections:
            if "recipe" in options:  # a refinement is not a part
                parts.append(section)
            body.append(f"[{section}]")
            body.extend(f"{key} = {value}" for key, value in options.items())
            body.append("")
    head = [
        "[buildout]",
        f"extends = {BASE_CFG}",
        "parts =",
        *(f"    {p}" for p in parts),
        "",
        "[system-recipes]",
        f"root = {root}",
        "reload = off",
        f"templates = {TEMPLATES}",
        "",
    ]
    return "\n".join(head + body)


def files_json(n: int, root: str, shape: str, changed: bool = False) -> dict:
    """What the floor and the peers read: every file, and every directory to make."""
    services = [service(i, changed) for i in range(n)]
    files = [list(f) for svc in services for f in service_files(svc, shape)]
    directories = {os.path.dirname(f[2]) for f in files}
    directories.update(d for svc in services for d in service_directories(svc, shape))
    return {
        "root": root,
        "templates": TEMPLATES,
        "files": files,
        "directories": sorted(directories),
    }


def make_scratch_root(path: str) -> str:
    """An install root with just enough of /etc for accounts and layout detection (what
    tests/conftest.py's scratch fixture makes)."""
    os.makedirs(os.path.join(path, "etc"), exist_ok=True)
    for name in ("passwd", "group", "shadow", "gshadow", "os-release"):
        source = os.path.join("/etc", name)
        if os.path.exists(source):
            shutil.copy2(os.path.realpath(source), os.path.join(path, "etc", name))
    return path


def fresh_root(root: str, n: int) -> None:
    """An empty install root, with what the application's package would have made: the
    NRPE plugins (the nrpe recipe checks they exist) and each service's log directory (the
    supervisor recipe checks that stdout_logfile's directory exists)."""
    shutil.rmtree(root, ignore_errors=True)
    make_scratch_root(root)
    os.makedirs(os.path.join(root, "usr/lib/nagios"))
    os.symlink("/usr/lib/nagios/plugins", os.path.join(root, "usr/lib/nagios/plugins"))
    for i in range(n):
        os.makedirs(os.path.join(root, "var/log", service(i)["service"]))


def service_contents(root: str, n: int, shape: str) -> dict[str, bytes | None]:
    """The content of every service file below ``root`` (None: missing)."""
    result: dict[str, bytes | None] = {}
    for i in range(n):
        for _kind, _template, path, *_ in service_files(service(i), shape):
            try:
                with open(os.path.join(root, path.lstrip("/")), "rb") as stream:
                    result[path] = stream.read()
            except FileNotFoundError:
                result[path] = None
    return result

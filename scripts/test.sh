#!/bin/bash
# Install what the tests need (Debian packages and a venv) and run them. Run as root.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PACKAGES="supervisor logrotate cron nagios4-core nagios-nrpe-server nagios-nrpe-plugin
          monitoring-plugins-basic rpm openssh-server openssh-client passwd iproute2
          util-linux systemd rpmlint haproxy postgresql sudo python3-dnf createrepo-c"
missing=$(for p in $PACKAGES; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
          | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    . scripts/apt.sh  # waits for another apt (a fresh machine's daily jobs) to finish
    apt_install $missing
fi
if [ ! -x .venv/bin/buildout ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# the same lint steps as tox -e lint and .pre-commit-config.yaml
.venv/bin/ruff check system_recipes tests bench scripts
.venv/bin/ruff format --check system_recipes tests bench scripts
.venv/bin/mypy  # system_recipes/, as configured in pyproject.toml
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

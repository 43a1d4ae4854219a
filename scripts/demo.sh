#!/bin/bash
# Set up (a venv with system-recipes) and run the demo host profile into ./demo-root,
# then print what it wrote. Nothing outside the checkout changes. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/buildout ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
# an install root needs the account files its deployment parts add users to
mkdir -p demo-root/etc
for f in passwd group shadow gshadow os-release; do
    [ -e "demo-root/etc/$f" ] || cp "$(readlink -f /etc/$f)" "demo-root/etc/$f"
done
.venv/bin/buildout -c profiles/hosts/demo.cfg "$@"
echo
echo "demo-root now holds:"
find demo-root -path demo-root/var/lib/system-recipes -prune -o -newer demo-root/etc/os-release \
    -printf '%M %u:%g %p\n' | sort -k3

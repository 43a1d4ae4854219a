#!/bin/bash
# Set up (a venv with system-recipes) and run the demo host profile into ./demo-root,
# then print what it wrote. Nothing outside the checkout changes. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/buildout ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
# the real tools that check what the demo writes (crontab -n, logrotate -d)
. scripts/apt.sh  # waits for another apt (a fresh machine's daily jobs) to finish
for tool in cron logrotate; do
    dpkg-query -W -f='${Status}\n' "$tool" 2>/dev/null | grep -q "install ok installed" \
        || apt_install "$tool"
done
# an install root needs the account files its deployment parts add users to
mkdir -p demo-root/etc
for f in passwd group shadow gshadow os-release; do
    [ -e "demo-root/etc/$f" ] || cp "$(readlink -f /etc/$f)" "demo-root/etc/$f"
done
.venv/bin/buildout -c profiles/hosts/demo.cfg "$@"
echo
echo "demo-root now holds (owners as demo-root/etc/passwd names them):"
.venv/bin/python - <<'PYTHON'
import os
root = "demo-root"
def names(table):
    with open(os.path.join(root, "etc", table)) as stream:
        return {int(line.split(":")[2]): line.split(":")[0] for line in stream if line.strip()}
users, groups = names("passwd"), names("group")
skip = ("var/lib/system-recipes", "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow",
        "etc/os-release")
paths = sorted(os.path.join(directory, name) for directory, dirs, files in os.walk(root)
               for name in dirs + files)
for path in paths:
    rel = os.path.relpath(path, root)
    if rel.startswith(skip):
        continue
    st = os.lstat(path)
    kind = "d" if os.path.isdir(path) else "-"
    print(f"{kind}{st.st_mode & 0o7777:04o} {users.get(st.st_uid, st.st_uid)}:"
          f"{groups.get(st.st_gid, st.st_gid)} /{rel}")
PYTHON

# Sourced by scripts/demo.sh and scripts/test.sh: apt-get that waits for the package lock.
#
# On a fresh machine apt's daily jobs (or another install) often hold the lock for minutes;
# failing at once then makes a first run look broken. apt-get install waits for the dpkg lock
# with -o DPkg::Lock::Timeout, but apt-get update (apt 2.6) ignores that option for its own
# lock on /var/lib/apt/lists: apt_update retries while, and only while, the lock is held.
# Both give up after APT_LOCK_WAIT seconds (default 600).

APT_LOCK_WAIT=${APT_LOCK_WAIT:-600}

apt_update() {  # apt_update [apt-get options...]
    local waited=0 output
    until output=$(apt-get -qq "$@" update 2>&1); do
        case $output in
            *"Could not get lock"*) ;;
            *) printf '%s\n' "$output" >&2; return 1 ;;
        esac
        if [ "$waited" -ge "$APT_LOCK_WAIT" ]; then
            printf '%s\n' "$output" >&2
            return 1
        fi
        [ "$waited" -gt 0 ] || echo "apt-get update: waiting for another apt to finish" >&2
        sleep 2
        waited=$((waited + 2))
    done
    [ -z "$output" ] || printf '%s\n' "$output"
}

apt_install() {  # apt_install PACKAGE...: update the lists, then install
    apt_update || return 1
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" \
        install -y -qq --no-install-recommends "$@" >/dev/null
}

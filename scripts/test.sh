#!/usr/bin/env bash
# The one test command (README, CI): formatting, lints, then every test suite of the workspace.
# Suites that read ../shared (the CrowdSec hub conformance data) print "skipped: ..." when it is
# absent instead of passing silently.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    # Machines of this project ship rustup's toolchain; a bare Debian gets its packaged one.
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    else
        apt-get update -q && apt-get install -y -q cargo rustc rustfmt
    fi
fi

if [ ! -d ../shared/compat/crowdsec-hub ]; then
    echo "skipped: CrowdSec hub conformance suites (../shared/compat/crowdsec-hub not found next to this checkout)"
fi

# CrowdSec's own programs for the end-to-end compatibility suite (crates/rampart/tests/compat_crowdsec.rs):
# Debian's crowdsec 1.4.6 agent, its firewall (nftables) and custom bouncers. Installed once, as root;
# without them that suite says "skipped: ..." on stderr (and fails under CI=true).
compat_pkgs="crowdsec crowdsec-firewall-bouncer crowdsec-custom-bouncer nftables systemd-journal-remote ipset iptables iputils-ping"
compat_installed() {
    command -v dpkg-query >/dev/null 2>&1 || return 1
    local p
    for p in $compat_pkgs; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || return 1
    done
}
if compat_installed; then
    :
elif [ "$(id -u)" != 0 ]; then
    echo "skipped: installing $compat_pkgs (not root): the CrowdSec compatibility suite will skip" >&2
elif ! command -v apt-get >/dev/null 2>&1; then
    echo "skipped: installing $compat_pkgs (no apt-get): the CrowdSec compatibility suite will skip" >&2
else
    echo "== apt-get install $compat_pkgs"
    # crowdsec's post-install registers with the central API on the internet unless this file
    # already holds something; the suite never uses it.
    mkdir -p /etc/crowdsec
    if [ ! -s /etc/crowdsec/online_api_credentials.yaml ]; then
        echo "# offline: no Central API (written by rampart's scripts/test.sh)" >/etc/crowdsec/online_api_credentials.yaml
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    # shellcheck disable=SC2086
    if ! { apt-get install -y -q $compat_pkgs || { apt-get update -q && apt-get install -y -q $compat_pkgs; } ||
        { dpkg --configure -a && apt-get install -y -q $compat_pkgs; }; } >"$apt_log" 2>&1 || ! compat_installed; then
        tail -n 20 "$apt_log" >&2
        echo "skipped: installing $compat_pkgs (apt-get failed, see above): the CrowdSec compatibility suite will skip" >&2
    fi
    rm -f "$apt_log"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
# A summary line the CI reader understands, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' target/test-output.txt

#!/usr/bin/env bash
# Check Rampart's default content against CrowdSec itself (the reference implementation).
#
#   bash hub/validate-with-crowdsec.sh            # hub tests + demo replay
#   bash hub/validate-with-crowdsec.sh tests      # only `cscli hubtest` on hub/tests
#   bash hub/validate-with-crowdsec.sh demo       # only the demo replay
#
# Needs the crowdsec and cscli binaries (Debian's `crowdsec` package, 1.4.6; offline its
# post-install step needs a non-empty /etc/crowdsec/online_api_credentials.yaml written
# before `apt-get install -y crowdsec`). Everything runs in a temporary directory, with
# private ports on 127.0.0.1, and is removed at the end, with one exception:
# `cscli hubtest` 1.4.6 always takes its grok patterns from /etc/crowdsec/patterns, so
# hub/patterns/rampart is copied there for the duration of the run and removed after.
#
# 1. tests: a scratch copy of hub/ gets the tests as .tests/ (where cscli hubtest looks),
#    the three template files hubtest needs, and data-file URLs pointing at a throw-away
#    HTTP server on 127.0.0.1 (hubtest always downloads data files).
# 2. demo: a private CrowdSec configuration with only hub/'s items installed and only
#    hub/patterns as its pattern directory replays each demo log in time-machine mode
#    (a local API runs beside it) and prints the alerts: scenario, source, count.
set -euo pipefail

HUB=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HUB")
WHAT=${1:-all}
LAPI_PORT=${LAPI_PORT:-18181}
DATA_PORT=${DATA_PORT:-18999}
command -v cscli >/dev/null && command -v crowdsec >/dev/null || {
    echo "crowdsec/cscli not found: apt-get install -y crowdsec (see the comment at the top)" >&2
    exit 2
}
W=$(mktemp -d)
PIDS=()
PATTERN_COPY=""
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$PATTERN_COPY" ] && rm -f "$PATTERN_COPY"
    rm -rf "$W"
}
trap cleanup EXIT

run_tests() {
    local H=$W/hubtest
    mkdir -p "$H/.tests"
    cp -r "$HUB/parsers" "$HUB/scenarios" "$HUB/collections" "$HUB/.index.json" "$H/"
    sed -i "s#https://hub.rampart.invalid/#http://127.0.0.1:$DATA_PORT/#" "$H"/scenarios/*/*.yaml
    cp -r "$HUB/tests/." "$H/.tests/"
    cat > "$H/.tests/template_config.yaml" <<EOF
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: ./runtime/log/
  working_dir: .
config_paths:
  config_dir: ./runtime/
  data_dir: ./runtime/data/
  simulation_path: ./runtime/simulation.yaml
  hub_dir: ./runtime/hub/
  index_path: ./runtime/hub/.index.json
  notification_dir: ./runtime/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  parser_routines: 1
cscli:
  output: human
db_config:
  log_level: info
  type: sqlite
  db_path: ./runtime/data/crowdsec.db
api:
  client:
    insecure_skip_verify: false
    credentials_path: ./runtime/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:$((LAPI_PORT + 1))
    profiles_path: ./runtime/profiles.yaml
prometheus:
  enabled: false
  level: full
  listen_addr: 127.0.0.1
  listen_port: $((LAPI_PORT + 2))
EOF
    cat > "$H/.tests/template_profiles.yaml" <<'EOF'
name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
on_success: break
EOF
    echo "simulation: off" > "$H/.tests/template_simulation.yaml"
    (cd "$HUB" && exec python3 -m http.server "$DATA_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
    PIDS+=($!)
    if [ -e /etc/crowdsec/patterns/rampart ] && ! cmp -s /etc/crowdsec/patterns/rampart "$HUB/patterns/rampart"; then
        echo "/etc/crowdsec/patterns/rampart exists and differs from hub/patterns/rampart: not overwriting" >&2
        return 1
    fi
    if [ ! -e /etc/crowdsec/patterns/rampart ]; then
        mkdir -p /etc/crowdsec/patterns
        cp "$HUB/patterns/rampart" /etc/crowdsec/patterns/rampart
        PATTERN_COPY=/etc/crowdsec/patterns/rampart
    fi
    sleep 1
    (cd "$H" && cscli hubtest run --all --clean --hub "$H" </dev/null) 2>&1 | grep -v 'level=info'
    (cd "$H" && cscli hubtest coverage --hub "$H") 2>&1 | grep -E 'COVERAGE|coverage' || true
}

run_demo() {
    local R=$W/cs
    mkdir -p "$R"/etc/{parsers/s00-raw,parsers/s01-parse,parsers/s02-enrich,scenarios,collections,patterns} "$R/data" "$R/hub"
    cp -r "$HUB/parsers" "$HUB/scenarios" "$HUB/collections" "$HUB/.index.json" "$R/hub/"
    cp "$HUB"/patterns/* "$R/etc/patterns/"
    find "$HUB/data" -type f -name '*.txt' -exec cp {} "$R/data/" \;
    for f in "$R"/hub/parsers/*/*/*.yaml; do
        ln -s "$f" "$R/etc/parsers/$(basename "$(dirname "$(dirname "$f")")")/$(basename "$f")"
    done
    for f in "$R"/hub/scenarios/*/*.yaml; do ln -s "$f" "$R/etc/scenarios/"; done
    for f in "$R"/hub/collections/*/*.yaml; do ln -s "$f" "$R/etc/collections/"; done
    cat > "$R/etc/config.yaml" <<EOF
common:
  daemonize: false
  log_media: stdout
  log_level: warning
  working_dir: .
config_paths:
  config_dir: $R/etc/
  data_dir: $R/data/
  simulation_path: $R/etc/simulation.yaml
  hub_dir: $R/hub/
  index_path: $R/hub/.index.json
  notification_dir: $R/etc/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: $R/etc/acquis.yaml
  parser_routines: 1
cscli:
  output: human
  hub_branch: master
db_config:
  log_level: warning
  type: sqlite
  db_path: $R/data/crowdsec.db
api:
  client:
    insecure_skip_verify: false
    credentials_path: $R/etc/local_api_credentials.yaml
  server:
    log_level: warning
    listen_uri: 127.0.0.1:$LAPI_PORT
    profiles_path: $R/etc/profiles.yaml
prometheus:
  enabled: false
  level: full
  listen_addr: 127.0.0.1
  listen_port: $((LAPI_PORT + 3))
EOF
    echo "simulation: off" > "$R/etc/simulation.yaml"
    printf 'filenames: [/dev/null]\nlabels:\n  type: syslog\n' > "$R/etc/acquis.yaml"
    cat > "$R/etc/profiles.yaml" <<'EOF'
name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
on_success: break
EOF
    local C=$R/etc/config.yaml
    cscli -c "$C" hub list 2>/dev/null | grep -E 'rampart/' | sed 's/^/  /'
    cscli -c "$C" machines add rampart-validate --auto -f "$R/etc/local_api_credentials.yaml" >/dev/null 2>&1
    crowdsec -c "$C" -no-cs >"$W/lapi.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 50); do
        grep -q "listening on" "$W/lapi.log" 2>/dev/null && break
        sleep 0.2
    done
    for spec in auth.log:syslog nginx-access.log:nginx apache-access.log:apache2; do
        local file=${spec%%:*} type=${spec##*:}
        cscli -c "$C" alerts delete --all >/dev/null 2>&1 || true
        crowdsec -c "$C" -dsn "file://$ROOT/demo/$file" -type "$type" -no-api >"$W/replay-$type.log" 2>&1
        echo "== demo/$file (type $type)"
        cscli -c "$C" alerts list -o json -l 0 2>/dev/null | python3 -c '
import collections, json, sys
alerts = json.load(sys.stdin) or []
counts = collections.Counter((a["scenario"], a["source"]["value"]) for a in alerts)
for (scenario, source), n in sorted(counts.items()):
    print("  %-32s %-18s %d" % (scenario, source, n))
print("  %d alerts" % len(alerts))'
    done
}

case "$WHAT" in
    tests) run_tests ;;
    demo) run_demo ;;
    all) run_tests; run_demo ;;
    *) echo "usage: $0 [tests|demo|all]" >&2; exit 2 ;;
esac
